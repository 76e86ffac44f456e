#!/bin/sh
# check-layers: the daemon's #include graph against the layer list of
# docs/architecture.md (the block between <!-- layers --> and
# <!-- /layers -->, bottom layer first).  An include may point down the
# list or within a layer, never up; the module graph has no cycle.
# Modules are file names without extension: daemon/x.c and include/x.h are
# module x.  The programs harmonic-sim (daemon/sim/) and harmonicctl
# (daemon/ctl/) sit above every daemon layer: a daemon module must not
# include them, and each is checked for cycles of its own.
# Usage: scripts/check-layers.sh [ROOT]   (default: the checkout)
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
doc=$root/docs/architecture.md
[ -f "$doc" ] || { echo "check-layers: $doc missing" >&2; exit 2; }

layers=$(awk '/<!-- layers -->/ {on = 1; next} /<!-- \/layers -->/ {on = 0}
	on && /^[0-9]+\. [a-z -]+:/ {
		n++; sub(/^[0-9]+\. [^:]*:/, "")
		for (i = 1; i <= NF; i++) print n, $i
	}' "$doc")
[ -n "$layers" ] || { echo "check-layers: no layer list in $doc" >&2; exit 2; }

# One line per include: "from-file to-module".
edges=$(cd "$root" && for f in daemon/*.c include/*.h daemon/sim/*.[ch] daemon/ctl/*.[ch]; do
	[ -f "$f" ] || continue
	sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)\.h".*/\1/p' "$f" |
		while read -r inc; do echo "$f ${inc##*/}"; done
done)

printf '%s\n' "$layers" | awk -v edges="$edges" '
function mod(path,   m) { m = path; sub(/.*\//, "", m); sub(/\.[ch]$/, "", m); return m }
function prog(path) { return path ~ /^daemon\/sim\// ? "harmonic-sim" : path ~ /^daemon\/ctl\// ? "harmonicctl" : "" }
function visit(m,   i, t) {
	state[m] = 1; stack[++depth] = m
	for (i = 1; i <= nout[m]; i++) {
		t = out[m, i]
		if (state[t] == 1) {
			path = t
			for (k = depth; k >= 1 && stack[k] != t; k--) path = stack[k] " -> " path
			print "check-layers: include cycle: " t " -> " path
			bad = 1
		} else if (state[t] == 0)
			visit(t)
	}
	depth--; state[m] = 2
}
{ layer[$2] = $1 }
END {
	n = split(edges, e, "\n")
	for (i = 1; i <= n; i++) {
		if (split(e[i], f, " ") != 2) continue
		from = mod(f[1]); to = f[2]; p = prog(f[1])
		if (from == to) continue
		if (p == "") {
			if (!(from in layer)) { if (!(from in told)) print "check-layers: " f[1] ": module " from " is in no layer of docs/architecture.md"; told[from] = 1; bad = 1; continue }
			if (!(to in layer)) {
				if (!(to in told)) print "check-layers: " f[1] " includes " to ".h, which is in no layer of docs/architecture.md"
				told[to] = 1; bad = 1; continue
			}
			if (layer[to] > layer[from]) {
				print "check-layers: " f[1] " includes " to ".h: " from " (layer " layer[from] ") -> " to " (layer " layer[to] ") points up"
				bad = 1
			}
		} else if (!(to in layer)) {
			from = p ":" from; to = p ":" to
		} else
			continue # a program using a daemon module: always downward
		if (!((from, to) in seen)) { seen[from, to] = 1; out[from, ++nout[from]] = to; nodes[from] = 1; nodes[to] = 1 }
	}
	for (m in nodes) if (state[m] == 0) visit(m)
	if (bad) exit 1
	print "check-layers: " n " includes, every one pointing down the layer list, no cycle"
}'
