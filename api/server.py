"""`autocall-api`: serve the API with gevent's WSGI server (never Flask's development server)."""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after patching, as every entry point does)
import logging  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

from api.http import MAX_ACCEPT, MAX_REFUSING, ApiServer  # noqa: E402
from api.metrics import RequestMetrics  # noqa: E402
from daemon import config as config_mod  # noqa: E402
from daemon import config_values, logs, metrics  # noqa: E402
from daemon.errors import AutocallError, ConfigError, exit_code  # noqa: E402
from daemon.listener import bind  # noqa: E402

FD_RESERVE = 64  # files besides connections: the database, its WAL, logs, the listener

log = logging.getLogger("autocall.api")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="autocall-api",
        description="Serve the autocall REST API (the collections platform's five commands and "
        "the report reads) over HTTP. Settings come from the config file and the "
        "AUTOCALL_* environment variables; see autocall.example.toml.",
    )
    parser.add_argument(
        "--config", metavar="PATH", help="TOML config file (default: $AUTOCALL_CONFIG, else built-in defaults)"
    )
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="override api.listen / $AUTOCALL_API_LISTEN (port 0 picks a free port)"
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logs.setup(args.log_level)
    try:
        config = config_mod.load(args.config)
        listen = config_values.address(args.listen) if args.listen else config.api.listen
        if not config.api.tokens:  # a configuration error, whatever the port's state (create_app says the same)
            raise ConfigError("api.tokens: no bearer token configured (set AUTOCALL_API_TOKENS)")
        ensure_file_limit(config.api.max_connections)
        listener = bind(listen, "api.listen")  # before the database is opened: a wrong address changes nothing
        metrics_at = config.metrics.api_listen
        metrics_listener = bind(metrics_at, "metrics.api_listen") if metrics_at else None
        from api.app import create_app

        app = create_app(config)
    except ValueError as e:
        print(f"autocall-api: {e}", file=sys.stderr)
        return 2
    except AutocallError as e:
        print(f"autocall-api: {e}", file=sys.stderr)
        return exit_code(e)
    if metrics_listener is not None:
        requests = RequestMetrics()
        requests.install(app)
        log.info("metrics on http://%s:%d/metrics", *metrics.serve(metrics_listener, requests.registry).address[:2])
    # Access logs are off, so tokens never reach the journal; nginx's access log has the requests.
    server = ApiServer(listener, app, config.api, log=None, error_log=logging.getLogger("autocall.api.wsgi"))
    server.start()
    host, port = server.address[:2]
    log.info("listening on http://%s:%d (database %s)", host, port, config.database)
    print(f"autocall-api listening on {host}:{port}", file=sys.stderr, flush=True)
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    stop.wait()
    log.info("stopping: finishing requests in progress")
    server.stop(timeout=10)
    return 0


def ensure_file_limit(connections: int):
    """Raise the open-file limit to what `connections` need, or say which setting to change."""
    need = connections + MAX_REFUSING + MAX_ACCEPT + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise ConfigError(
            f"api.max_connections: {connections} connections need about {need} open files but "
            f"this process may open {hard}; lower api.max_connections or raise LimitNOFILE="
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


if __name__ == "__main__":
    sys.exit(main())
