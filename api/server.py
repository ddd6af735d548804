"""`autocall-api`: serve the API with gevent's WSGI server (never Flask's development server)."""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after patching, as every entry point does)
import errno  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

from api.http import MAX_REFUSING, ApiServer, Limits  # noqa: E402
from daemon import config as config_mod  # noqa: E402
from daemon import logs  # noqa: E402
from daemon.errors import AutocallError, ConfigError, Unavailable, exit_code  # noqa: E402

FD_RESERVE = 64  # files besides connections: the database, its WAL, logs, the listener

log = logging.getLogger("autocall.api")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="autocall-api",
        description="Serve the autocall REST API (the collections platform's five commands and "
                    "the report reads) over HTTP. Settings come from the config file and the "
                    "AUTOCALL_* environment variables; see autocall.example.toml.")
    parser.add_argument("--config", metavar="PATH",
                        help="TOML config file (default: $AUTOCALL_CONFIG, else built-in defaults)")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="override api.listen / $AUTOCALL_API_LISTEN (port 0 picks a free port)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logs.setup(args.log_level)
    try:
        config = config_mod.load(args.config)
        listen = config_mod.parse_address(args.listen) if args.listen else config.api.listen
        from api.app import create_app
        app = create_app(config)
        ensure_file_limit(config.api.max_connections)
        server = ApiServer((listen.host, listen.port), app, limits_of(config.api), log=None,
                           error_log=logging.getLogger("autocall.api.wsgi"))
        # Access logs are off: they would carry nothing useful that nginx's do not, and tokens never reach the journal.
        bind(server, listen)
    except ValueError as e:
        print(f"autocall-api: {e}", file=sys.stderr)
        return 2
    except AutocallError as e:
        print(f"autocall-api: {e}", file=sys.stderr)
        return exit_code(e)
    host, port = server.address[:2]
    log.info("listening on http://%s:%d (database %s)", host, port, config.db_path)
    print(f"autocall-api listening on {host}:{port}", file=sys.stderr, flush=True)
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    stop.wait()
    log.info("stopping: finishing requests in progress")
    server.stop(timeout=10)
    return 0


def limits_of(api: config_mod.ApiConfig) -> Limits:
    return Limits(header_timeout=api.header_timeout, body_timeout=api.body_timeout,
                  keepalive_timeout=api.keepalive_timeout, max_connections=api.max_connections,
                  max_body_bytes=api.max_body_bytes)


def bind(server: ApiServer, listen: config_mod.Address):
    """Start listening; a bind error becomes ConfigError (fix api.listen) or Unavailable (retry)."""
    try:
        server.start()
    except socket.gaierror as e:
        raise ConfigError(f"api.listen: cannot resolve {listen.host!r}: {e.strerror}") from None
    except OSError as e:
        if e.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"api.listen: {listen.host} is not an address of this host") from None
        if e.errno == errno.EACCES:
            raise ConfigError(f"api.listen: port {listen.port} needs privileges autocall-api does not have; "
                              "use a port above 1024 behind the reverse proxy") from None
        if e.errno == errno.EADDRINUSE:
            raise Unavailable(f"api.listen: {listen} is already in use by another process") from None
        raise Unavailable(f"api.listen: cannot listen on {listen}: {e.strerror}") from None


def ensure_file_limit(connections: int):
    """Raise the open-file limit to what `connections` need, or say which setting to change."""
    need = connections + MAX_REFUSING + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise ConfigError(f"api.max_connections: {connections} connections need about {need} open files but "
                          f"this process may open {hard}; lower api.max_connections or raise LimitNOFILE=")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


if __name__ == "__main__":
    sys.exit(main())
