"""The one base exception of autocall, the few named ones callers catch, and exit codes."""

# Exit codes of the entry points, as systemd reads them (the units' RestartPreventExitStatus=).
EX_CONFIG = 2  # bad configuration or command line: a restart cannot fix it
EX_TEMPFAIL = 75  # something needed is unavailable right now (sysexits' EX_TEMPFAIL): restart later


class AutocallError(Exception):
    """Base of every error autocall raises on purpose."""


class ConfigError(AutocallError):
    """A configuration value is missing or invalid; the message names the key."""


class Unavailable(AutocallError):
    """Something the program needs is not available right now; trying again later may work."""


def exit_code(error: AutocallError) -> int:
    """What an entry point exits with when `error` stops it."""
    return EX_TEMPFAIL if isinstance(error, Unavailable) else EX_CONFIG
