"""Listening sockets for the programs' HTTP servers (the API, the metrics): bound at start-up,
before anything else is opened, a bind error said as what to change in the key that gave the
address."""

from __future__ import annotations

import errno
import socket

from daemon.config_values import Address
from daemon.errors import AutocallError, ConfigError, Unavailable


def bind(listen: Address, key: str) -> socket.socket:
    """A listening socket on `listen` (the value of config key `key`); a bind error becomes
    ConfigError (fix the key) or Unavailable (retry: the port may be free later)."""
    sock = socket.socket(socket.AF_INET6 if ":" in listen.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
        sock.listen(socket.SOMAXCONN)
    except OSError as e:
        sock.close()
        raise _bind_error(listen, key, e) from None
    return sock


def _bind_error(listen: Address, key: str, e: OSError) -> AutocallError:
    if isinstance(e, socket.gaierror):
        return ConfigError(f"{key}: cannot resolve {listen.host!r}: {e.strerror}")
    if e.errno == errno.EADDRNOTAVAIL:
        return ConfigError(f"{key}: {listen.host} is not an address of this host")
    if e.errno == errno.EACCES:
        return ConfigError(
            f"{key}: port {listen.port} needs privileges this program does not have; use a port above 1024"
        )
    if e.errno == errno.EADDRINUSE:
        return Unavailable(f"{key}: {listen} is already in use by another process")
    return Unavailable(f"{key}: cannot listen on {listen}: {e.strerror}")
