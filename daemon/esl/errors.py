"""Every error of the ESL package: one base, `ESLError`, and a few named ones."""

from daemon.errors import AutocallError


class ESLError(AutocallError):
    """Base of every error raised by the ESL client."""


class ESLConnectionLost(ESLError):
    """The connection is dead (EOF, socket error, parser error, disconnect notice,
    heartbeat silence, or closed by us). The message says which."""


class ESLAuthError(ESLError):
    """FreeSWITCH refused the password."""


class ESLTimeout(ESLError):
    """No reply within the timeout; the connection stays usable. For bgapi and execute,
    `pending` is the future of the command, which the switch may still carry out."""

    pending = None


class ESLCommandError(ESLError):
    """FreeSWITCH answered a command with `-ERR ...`; the message is its Reply-Text."""


class ESLUnsafeArgument(ESLError, ValueError):
    """An argument would break ESL framing (newline, carriage return, NUL) or is empty."""


class UnsafeArgument(ESLUnsafeArgument):
    """A value would change the meaning of a FreeSWITCH application argument (a space,
    a quote, `!`, `{`, `$`...): refused before the string is built."""


class ESLProtocolError(ESLError):
    """Bytes from FreeSWITCH that are not valid ESL framing."""


class ESLChannelGone(ESLError):
    """The channel was unsubscribed while an application on it was still pending."""
