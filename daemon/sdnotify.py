"""Tell systemd how the service is doing (the sd_notify protocol), without libsystemd.

`notify("READY=1", "STATUS=connected")` sends one datagram to $NOTIFY_SOCKET; outside
systemd (no $NOTIFY_SOCKET) it does nothing. It never raises for a socket that is gone
or refuses the message: it logs and returns False, because a status report must never
take the dialer down. `watchdog_period()` says how often to send "WATCHDOG=1".
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("autocall.sdnotify")


def notify(*states: str, environ=None) -> bool:
    """Send `states` ("KEY=value" each) as one message; True if systemd got it.

    A newline inside a state becomes a space, so a STATUS built from an error message
    cannot forge another state. A state without "=" raises ValueError (a caller's bug).
    """
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    message = "\n".join(_one_line(state) for state in states).encode()
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace: no file, a leading NUL byte instead
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        log.debug("sd_notify: no listener at %r: %s", environ["NOTIFY_SOCKET"], e)
        return False
    except OSError as e:
        log.warning("sd_notify: cannot send %r: %s", message, e)
        return False
    return True


def watchdog_period(environ=None, pid: int | None = None) -> float | None:
    """Seconds between two "WATCHDOG=1", or None when systemd watches no watchdog for us.

    Half of $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises. None also when
    $WATCHDOG_PID names another process (the variable was inherited, not meant for us).
    """
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 2_000_000


def _one_line(state: str) -> str:
    if "=" not in state:
        raise ValueError(f"sd_notify state must look like KEY=value, got {state!r}")
    return state.replace("\r", " ").replace("\n", " ")
