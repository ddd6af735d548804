"""The one base exception of autocall and the few named ones callers catch."""


class AutocallError(Exception):
    """Base of every error autocall raises on purpose."""


class ConfigError(AutocallError):
    """A configuration value is missing or invalid; the message names the key."""
