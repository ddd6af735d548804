"""Passwords of the console's accounts, hashed with scrypt (the standard library's KDF).

A stored hash reads `scrypt$N$r$p$salt$key` (salt and key in URL-safe base64), so the cost can
be raised later and old hashes still verify with the cost they were made with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# 2^15 x 8 x 128 bytes = 32 MiB and about 0.1 s per hash: OWASP's floor for scrypt is 2^17 with
# r=8, p=1 at 128 MiB; a login costs once per shift, but the API is a small process beside
# the dialer, so we take a quarter of that memory and two rounds of parallel work.
N, R, P = 2**15, 8, 2
KEY_BYTES = 32
MAX_MEMORY = 64 * 1024 * 1024
MIN_LENGTH = 10
MAX_LENGTH = 1024  # scrypt reads all of it: a megabyte "password" would be work for nothing


class WeakPassword(ValueError):
    """The password cannot be used; the message says why."""


def check_strength(password: str):
    """WeakPassword unless `password` is between MIN_LENGTH and MAX_LENGTH characters."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password may have at most {MAX_LENGTH} characters")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The text to store for `password`."""
    salt = salt or secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=MAX_MEMORY, dklen=KEY_BYTES)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` is the one `stored` was made from. With `stored` None (no such
    account) a hash is computed all the same, so the time taken tells nothing."""
    if stored is None:
        hash_password(password[:MAX_LENGTH])
        return False
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(key)
        got = hashlib.scrypt(
            password[:MAX_LENGTH].encode(),
            salt=base64.urlsafe_b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=MAX_MEMORY,
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()
