"""`autocall-api`: serve the API with gevent's WSGI server (never Flask's development server)."""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after patching, as every entry point does)
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from daemon import config as config_mod  # noqa: E402
from daemon import logs  # noqa: E402
from daemon.errors import AutocallError  # noqa: E402

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
    except (AutocallError, ValueError) as e:
        print(f"autocall-api: {e}", file=sys.stderr)
        return 2
    # Access logs carry no Authorization header, so tokens never reach the journal.
    server = WSGIServer((listen.host, listen.port), app, log=None, error_log=logging.getLogger("autocall.api.wsgi"))
    server.start()
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


if __name__ == "__main__":
    sys.exit(main())
