#!/usr/bin/env python3
"""Receive sd_notify datagrams on a private NOTIFY_SOCKET path and print
each one as a line of JSON (node's dgram has no AF_UNIX support)."""
import json
import os
import socket
import sys

path = sys.argv[1]
if os.path.exists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print(json.dumps({"listening": path}), flush=True)
while True:
    data = s.recv(4096)
    print(json.dumps({"msg": data.decode(errors="replace")}), flush=True)
