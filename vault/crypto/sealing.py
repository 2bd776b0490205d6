"""Sealing: protect the vault's root key at rest under the operator's unseal secret.

    unseal secret (passphrase, or the secret rebuilt from k Shamir shares)
        │ Argon2id (salt, t, m, p stored beside the sealed blob)
        ▼
    key-encryption key (32 bytes)
        │ ChaCha20-Poly1305, AAD = "custody/v1/root-key" || vault id
        ▼
    root key (32 random bytes) ── seals the vault identity and every other vault key

The KDF parameters are read back from the database when unsealing, so a hostile or corrupted
database could ask for an absurd amount of memory or time: the limits below refuse that
before any work is done (a DoS guard, as age caps the scrypt work factor).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from vault.errors import DecryptionError, UnsealError

KEY_SIZE = 32
NONCE_SIZE = 12
SALT_SIZE = 16

# Refuse KDF parameters beyond these when unsealing (named DoS limits).
MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB
MAX_TIME_COST = 64
MAX_PARALLELISM = 64
# And below these when sealing with the strong profile.
MIN_MEMORY_KIB = 19 * 1024  # OWASP's floor for Argon2id


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id parameters; stored as JSON beside the sealed root key."""

    time_cost: int
    memory_kib: int
    parallelism: int
    salt: bytes

    #: RFC 9106 section 4, second recommended option: t=3, m=64 MiB, p=4.
    @classmethod
    def recommended(cls) -> KdfParams:
        return cls(time_cost=3, memory_kib=64 * 1024, parallelism=4, salt=os.urandom(SALT_SIZE))

    @classmethod
    def weak_for_tests(cls) -> KdfParams:
        """Cheap parameters; only honoured when the caller explicitly allows weak KDFs."""
        return cls(time_cost=1, memory_kib=1024, parallelism=1, salt=os.urandom(SALT_SIZE))

    @property
    def is_weak(self) -> bool:
        return self.memory_kib < MIN_MEMORY_KIB

    def to_json(self) -> dict[str, Any]:
        return {
            "alg": "argon2id",
            "version": 19,
            "t": self.time_cost,
            "m": self.memory_kib,
            "p": self.parallelism,
            "salt": base64.b64encode(self.salt).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KdfParams:
        try:
            if data["alg"] != "argon2id" or data.get("version", 19) != 19:
                raise ValueError
            params = cls(
                time_cost=int(data["t"]),
                memory_kib=int(data["m"]),
                parallelism=int(data["p"]),
                salt=base64.b64decode(data["salt"], validate=True),
            )
        except (KeyError, ValueError, TypeError):
            raise UnsealError("stored KDF parameters are malformed") from None
        if not (
            1 <= params.time_cost <= MAX_TIME_COST
            and 8 * params.parallelism <= params.memory_kib <= MAX_MEMORY_KIB
            and 1 <= params.parallelism <= MAX_PARALLELISM
            and len(params.salt) >= 8
        ):
            raise UnsealError("stored KDF parameters are outside the accepted limits")
        return params


def derive_kek(unseal_secret: bytes, params: KdfParams) -> bytes:
    return hash_secret_raw(
        secret=unseal_secret,
        salt=params.salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=KEY_SIZE,
        type=Type.ID,
        version=19,
    )


def _seal(key: bytes, plaintext: bytes, aad: bytes, nonce: bytes | None = None) -> bytes:
    nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_SIZE + 16:
        raise InvalidTag
    return ChaCha20Poly1305(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)


def root_key_aad(vault_id: str) -> bytes:
    return b"custody/v1/root-key\x00" + vault_id.encode("ascii")


def vault_key_aad(vault_id: str, purpose: str, key_id: str) -> bytes:
    return b"custody/v1/vault-key\x00" + "\x00".join((vault_id, purpose, key_id)).encode("utf-8")


def seal_root_key(root_key: bytes, unseal_secret: bytes, params: KdfParams, vault_id: str) -> bytes:
    return _seal(derive_kek(unseal_secret, params), root_key, root_key_aad(vault_id))


def open_root_key(sealed: bytes, unseal_secret: bytes, params: KdfParams, vault_id: str) -> bytes:
    """Wrong passphrase and corrupted blob are one failure: we cannot tell them apart anyway."""
    try:
        return _open(derive_kek(unseal_secret, params), sealed, root_key_aad(vault_id))
    except InvalidTag:
        raise UnsealError("the unseal passphrase or shares are wrong") from None


def seal_with_root(root_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return _seal(root_key, plaintext, aad)


def open_with_root(root_key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return _open(root_key, blob, aad)
    except InvalidTag:
        raise DecryptionError("a sealed vault key does not authenticate") from None
