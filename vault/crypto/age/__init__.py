"""age v1 file encryption (https://age-encryption.org/v1) in pure Python.

Supported: X25519 (age1…), scrypt passphrases and ssh-ed25519 recipients, ASCII armor, and
streaming in both directions. Not supported: plugins, ssh-rsa, post-quantum hybrid keys.
Every failure is a :class:`vault.errors.AgeError` subclass named after the failure class
of the C2SP test vectors (see docs/age.md).
"""

from .decrypt import Decryptor, decrypt, decrypt_from
from .encrypt import Encryptor, encrypt, encrypt_to
from .format import Stanza
from .interfaces import Identity, Recipient
from .parse import parse_identities, parse_recipient
from .scrypt import ScryptIdentity, ScryptRecipient
from .ssh import SSHEd25519Identity, SSHEd25519Recipient
from .x25519 import X25519Identity, X25519Recipient

__all__ = [
    "Decryptor",
    "Encryptor",
    "Identity",
    "Recipient",
    "SSHEd25519Identity",
    "SSHEd25519Recipient",
    "ScryptIdentity",
    "ScryptRecipient",
    "Stanza",
    "X25519Identity",
    "X25519Recipient",
    "decrypt",
    "decrypt_from",
    "encrypt",
    "encrypt_to",
    "parse_identities",
    "parse_recipient",
]
