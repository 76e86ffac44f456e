/*
 * notify: the systemd side of the lifecycle (sd_notify).  READY=1 once the
 * daemon listens and has probed its hosts, STATUS= with a one-line summary
 * every few seconds, WATCHDOG=1 at half of WATCHDOG_USEC from the event
 * loop itself (a stuck loop stops the pings), RELOADING=1/READY=1 around a
 * reload and STOPPING=1 at shutdown.  Without NOTIFY_SOCKET every call is
 * a cheap no-op.
 */
#ifndef HARMONIC_NOTIFY_H
#define HARMONIC_NOTIFY_H

/* Start the watchdog and status timers. */
void notify_init(void);
void notify_shutdown(void);
void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
/* Send STATUS= now (also done periodically). */
void notify_status(void);

#endif
