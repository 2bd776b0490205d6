"""The one exception root of Custody.

Every failure that a user can cause or meet is a :class:`CustodyError`. The API maps these
classes to HTTP status codes in one table (``api/errors.py``); the CLI catches the root once
and exits with code 2 and one line.

Rule for every message in this module and its callers: it may name a field, a record title,
a client name or a file, but **never a secret value** (nor a passphrase, key or plaintext).
Exceptions built here do not keep references to the data that made them fail, so a traceback
or ``repr`` cannot leak it either.
"""

from __future__ import annotations


class CustodyError(Exception):
    """Root of every error Custody raises on purpose. ``str(err)`` is safe to show a user."""

    #: a short machine-readable code, stable across releases (used in API error bodies)
    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


# --- bad input --------------------------------------------------------------------------


class InvalidInput(CustodyError):
    """The caller supplied a value that cannot be accepted (names the field)."""

    code = "invalid_input"


class MalformedRecipient(InvalidInput):
    code = "malformed_recipient"


class MalformedIdentity(InvalidInput):
    code = "malformed_identity"


class FormatError(InvalidInput):
    """A file in another tool's format (KeePass, Bitwarden, pass, CSV) could not be read.

    ``origin`` says where ("line 12", "entry Root/Web/Gandi", "the file"); the message names
    the problem and never a value from the file."""

    code = "format_error"

    def __init__(self, message: str, *, origin: str = "", field: str | None = None) -> None:
        super().__init__(f"{origin}: {message}" if origin else message, field=field)
        self.origin = origin


class NotFound(CustodyError):
    code = "not_found"


class Forbidden(CustodyError):
    """The principal's role does not allow this operation."""

    code = "forbidden"


class Unauthenticated(CustodyError):
    """No valid credentials (one message for every reason, so nothing leaks)."""

    code = "unauthenticated"


class TooManyAttempts(CustodyError):
    """Refused for now: too many failures in a row (try again later)."""

    code = "rate_limited"


class Gone(CustodyError):
    """The thing existed but is used up or expired for good (a one-time link)."""

    code = "gone"


class Conflict(CustodyError):
    """A uniqueness or state rule would be broken (duplicate name, last recipient...)."""

    code = "conflict"


class VerificationFailed(CustodyError):
    """Something handed to Custody to check (an export bundle and its manifest) did not check
    out. ``check`` names what failed (``signature``, ``hash``, ``counts`` ...)."""

    code = "verification_failed"

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}", field=check)
        self.check = check


# --- keys and sealing ----------------------------------------------------------------------


class UnsealError(CustodyError):
    """The unseal passphrase or shares did not open the vault (deliberately says no more)."""

    code = "unseal_failed"


class Sealed(CustodyError):
    """An operation needs the vault's keys but the vault is sealed."""

    code = "sealed"


class NotInitialized(CustodyError):
    code = "not_initialized"


class DecryptionError(CustodyError):
    """A stored ciphertext did not authenticate. One opaque failure: no oracle for why."""

    code = "decryption_failed"


# --- storage -----------------------------------------------------------------------------


class SchemaError(CustodyError):
    """The database is not at the schema revision this program expects."""

    code = "schema_mismatch"


class StorageError(CustodyError):
    """The database did not take a write (a failed commit, a deadlock it broke, a lost
    connection); nothing of it was kept."""

    code = "storage_error"


# --- age format ----------------------------------------------------------------------------
# The classes mirror the failure classes of the C2SP age test vectors, so tests can prove the
# *right* failure, not just a failure.


class AgeError(CustodyError):
    code = "age_error"


class AgeArmorError(AgeError):
    """The ASCII armor could not be parsed (vector class ``armor failure``)."""

    code = "age_armor"


class AgeHeaderError(AgeError):
    """The header could not be parsed (vector class ``header failure``)."""

    code = "age_header"


class AgeNoIdentityMatch(AgeError):
    """No identity could unwrap any recipient stanza (vector class ``no match``)."""

    code = "age_no_match"


class AgeHMACError(AgeError):
    """A file key was unwrapped but the header MAC did not verify (``HMAC failure``)."""

    code = "age_hmac"


class AgePayloadError(AgeError):
    """The STREAM payload did not decrypt all the way to EOF (``payload failure``)."""

    code = "age_payload"


def error_class(code: str) -> type[CustodyError]:
    """The error class for a ``code`` received from a server or agent (the root if unknown),
    so a remote failure is raised on this side as the same typed error."""
    stack: list[type[CustodyError]] = [CustodyError]
    while stack:
        cls = stack.pop()
        if cls.code == code:
            return cls
        stack.extend(cls.__subclasses__())
    return CustodyError
