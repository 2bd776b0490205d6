"""Passphrase recipients: the file key wrapped under a key derived with scrypt.

The stanza is ``-> scrypt SALT LOG2N`` and the wrapping key is
scrypt(passphrase, "age-encryption.org/v1/scrypt" || salt, N = 2**LOG2N, r = 8, p = 1).
"""

from __future__ import annotations

import os
import re

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from vault.errors import AgeHeaderError, InvalidInput

from .format import Stanza, b64decode, b64encode
from .primitives import WRAPPED_FILE_KEY_SIZE, open_file_key, seal_file_key

STANZA_TYPE = "scrypt"
_LABEL = b"age-encryption.org/v1/scrypt"
SALT_SIZE = 16
DEFAULT_WORK_FACTOR = 18  # about one second; the age default
#: DoS limit when *decrypting*: the work factor comes from the file, so an attacker picks
#: it. Each step doubles time and memory (2**22 * 1 KiB = 4 GiB at the limit), so a file
#: asking for more is refused as malformed before any work is done.
MAX_WORK_FACTOR = 22

# Decimal only, no sign, no leading zero: one spelling per value (and no octal surprises).
_WORK_FACTOR = re.compile(r"[1-9][0-9]*")


def _wrap_key(passphrase: bytes, salt: bytes, work_factor: int) -> bytes:
    kdf = Scrypt(salt=_LABEL + salt, length=32, n=1 << work_factor, r=8, p=1)
    return kdf.derive(passphrase)


def _encode_passphrase(passphrase: str) -> bytes:
    if not passphrase:
        raise InvalidInput("the passphrase must not be empty", field="passphrase")
    return passphrase.encode("utf-8")


class ScryptRecipient:
    """Encrypt to a passphrase. Must be the only recipient of a file (see ``encrypt``)."""

    __slots__ = ("_passphrase", "_work_factor")

    def __init__(self, passphrase: str, work_factor: int = DEFAULT_WORK_FACTOR) -> None:
        # Never write a file that a default identity (ours or age's) would refuse to open.
        if not 1 <= work_factor <= MAX_WORK_FACTOR:
            raise InvalidInput(
                f"scrypt work factor must be between 1 and {MAX_WORK_FACTOR}", field="work_factor"
            )
        self._passphrase = _encode_passphrase(passphrase)
        self._work_factor = work_factor

    def wrap(self, file_key: bytes) -> list[Stanza]:
        salt = os.urandom(SALT_SIZE)
        body = seal_file_key(_wrap_key(self._passphrase, salt, self._work_factor), file_key)
        return [Stanza(STANZA_TYPE, [b64encode(salt), str(self._work_factor)], body)]

    def __repr__(self) -> str:
        return f"ScryptRecipient(work_factor={self._work_factor})"


class ScryptIdentity:
    """Decrypt with a passphrase, refusing work factors above ``max_work_factor``."""

    __slots__ = ("_passphrase", "_max_work_factor")

    def __init__(self, passphrase: str, max_work_factor: int = MAX_WORK_FACTOR) -> None:
        self._passphrase = _encode_passphrase(passphrase)
        self._max_work_factor = max_work_factor

    def unwrap(self, stanzas: list[Stanza]) -> bytes | None:
        ours = [s for s in stanzas if s.type == STANZA_TYPE]
        if not ours:
            return None
        # People expect a passphrase-encrypted file to come from someone who knows the
        # passphrase. If another recipient shared the file key, its holder could reuse the
        # scrypt stanza to forge new files that the passphrase opens; so scrypt stands alone.
        if len(stanzas) != 1:
            raise AgeHeaderError("an scrypt stanza must be the only stanza in the header")
        salt, work_factor = self._check_stanza(ours[0])
        wrap_key = _wrap_key(self._passphrase, salt, work_factor)
        return open_file_key(wrap_key, ours[0].body)

    def _check_stanza(self, stanza: Stanza) -> tuple[bytes, int]:
        if len(stanza.args) != 2:
            raise AgeHeaderError("scrypt stanza must have exactly two arguments")
        try:
            salt = b64decode(stanza.args[0])
        except ValueError:
            raise AgeHeaderError("scrypt stanza salt is not canonical base64") from None
        if len(salt) != SALT_SIZE:
            raise AgeHeaderError("scrypt stanza salt is not 16 bytes")
        text = stanza.args[1]
        if not _WORK_FACTOR.fullmatch(text):
            raise AgeHeaderError("scrypt work factor is not a positive decimal number")
        # Check the length first: never turn an attacker's 10,000-digit number into an int
        # just to find out that it is too big.
        if len(text) > 2 or int(text) > self._max_work_factor:
            raise AgeHeaderError(f"scrypt work factor exceeds the limit of {self._max_work_factor}")
        if len(stanza.body) != WRAPPED_FILE_KEY_SIZE:
            raise AgeHeaderError("scrypt stanza body does not hold a 16-byte file key")
        return salt, int(text)

    def __repr__(self) -> str:
        return f"ScryptIdentity(max_work_factor={self._max_work_factor})"
