"""The key hierarchy (docs/crypto.md has the diagram and the test vectors).

    unseal secret ─Argon2id─► KEK ─► root key ─┬► vault identity (X25519, age)
                                               └► log key (Ed25519, signs checkpoints)
                                                       │
    client key (32 random bytes) as an age v1 file to: ├─ the vault recipient
                                                       └─ every escrow recipient of the client
    client key ─HKDF─► field key ─ChaCha20-Poly1305─► every sensitive field of that client

The client key file is a real age file: a client runs ``age -d -i identity client-key.age``
and reads its key, with no Custody code involved. Its payload names the client it belongs
to, and we check that name on every unwrap, so a client-key blob swapped into another
client's row is refused instead of silently used (which would let the wrong escrow
recipients read new secrets).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from vault.crypto import age
from vault.crypto.fields import FieldCipher
from vault.crypto.sealing import (
    KdfParams,
    open_root_key,
    open_with_root,
    seal_root_key,
    seal_with_root,
    vault_key_aad,
)
from vault.db.models import Client, LogState, VaultKey, VaultMeta, new_id
from vault.errors import (
    AgeError,
    AgeNoIdentityMatch,
    Conflict,
    DecryptionError,
    InvalidInput,
    NotInitialized,
    UnsealError,
)
from vault.log import merkle
from vault.log.note import Signer, generate_signer

CLIENT_KEY_SIZE = 32
VAULT_SECRETS_INFO = b"custody/v1/vault-secrets"
CLIENT_KEY_MAC_INFO = b"custody/v1/client-key-mac"
CLIENT_KEY_HEADER = "custody-client-key/v1"
MIN_PASSPHRASE_LENGTH = 12


class UnsealSecret:
    """The operator's unseal secret in bytes; opaque to repr and str."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        if not value:
            raise InvalidInput("the unseal secret is empty", field="passphrase")
        self._value = value

    @classmethod
    def from_passphrase(cls, passphrase: str) -> UnsealSecret:
        # NFC so the same passphrase typed on two keyboards/OSes derives the same key.
        return cls(unicodedata.normalize("NFC", passphrase).encode("utf-8"))

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "UnsealSecret(<hidden>)"

    __str__ = __repr__


def check_new_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise InvalidInput(
            f"the unseal passphrase must be at least {MIN_PASSPHRASE_LENGTH} characters",
            field="passphrase",
        )


# --- vault initialisation and unsealing -------------------------------------------------


def initialize(
    session: Session,
    secret: UnsealSecret,
    *,
    kdf: KdfParams,
    share_threshold: int | None = None,
    share_count: int | None = None,
) -> VaultMeta:
    """Create the vault's root key and identity, sealed under ``secret``."""
    if session.get(VaultMeta, 1) is not None:
        raise Conflict("this database already holds a vault")
    vault_id = new_id()
    root_key = os.urandom(32)
    meta = VaultMeta(
        id=1,
        vault_id=vault_id,
        seal_mode="shares" if share_threshold else "passphrase",
        share_threshold=share_threshold,
        share_count=share_count,
        kdf=kdf.to_json(),
        sealed_root=seal_root_key(root_key, secret.reveal(), kdf, vault_id),
    )
    session.add(meta)
    identity = age.X25519Identity.generate()
    key_id = new_id()
    session.add(
        VaultKey(
            id=key_id,
            purpose="identity",
            public=str(identity.recipient),
            sealed_private=seal_with_root(
                root_key, str(identity).encode("ascii"), vault_key_aad(vault_id, "identity", key_id)
            ),
        )
    )
    origin = initial_origin(vault_id)
    session.add(LogState(id=1, origin=origin, size=0, compact=merkle.CompactRange().to_bytes()))
    add_log_key(session, root_key, vault_id, origin)
    return meta


def initial_origin(vault_id: str) -> str:
    """The log's origin line (and its key's name): unique per vault, a schema-less URL-like
    name as c2sp.org/tlog-checkpoint recommends."""
    return f"custody.vault/{vault_id}"


def add_log_key(session: Session, root_key: bytes, vault_id: str, origin: str) -> VaultKey:
    """A new Ed25519 log key named ``origin``; its signer key string is sealed like the vault
    identity, its verifier key string (name+hash+base64) is public."""
    skey, vkey = generate_signer(origin)
    key_id = new_id()
    key = VaultKey(
        id=key_id,
        purpose="log",
        public=vkey,
        sealed_private=seal_with_root(
            root_key, skey.encode("ascii"), vault_key_aad(vault_id, "log", key_id)
        ),
    )
    session.add(key)
    session.flush()
    return key


def _current_key(session: Session, purpose: str) -> VaultKey | None:
    return session.scalars(
        select(VaultKey)
        .where(VaultKey.purpose == purpose, VaultKey.retired_at.is_(None))
        .order_by(VaultKey.created_at.desc())
    ).first()


def load_meta(session: Session) -> VaultMeta:
    meta = session.get(VaultMeta, 1)
    if meta is None:
        raise NotInitialized("this database holds no vault yet: run `custody init`")
    return meta


@dataclass
class KeyRing:
    """The vault's unsealed keys, held in memory while the vault is unsealed."""

    vault_id: str
    identity: age.X25519Identity = field(repr=False)
    #: seals the vault's own small secrets (users' TOTP seeds); derived from the root key
    vault_cipher: FieldCipher = field(repr=False)
    #: authenticates the client key files this vault wrote; derived from the root key
    key_mac_key: bytes = field(repr=False, default=b"")
    #: signs the transparency log's checkpoints (None only for a vault that has none yet and
    #: was unsealed read-only)
    log_signer: Signer | None = field(repr=False, default=None)
    log_key_id: str | None = None
    #: the vault's current identity key row (changes when the identity is rotated)
    identity_key_id: str | None = None
    #: earlier identities still held by this process: a client key wrapped before a rotation
    #: that another process made still opens while this one catches up
    retired_identities: list[age.X25519Identity] = field(default_factory=list, repr=False)
    # Cached per client *and* wrapped key: when the client key is rotated (by this process or
    # another) the wrapped key changes, so a stale field key is never used to seal new data.
    _ciphers: dict[tuple[str, bytes], FieldCipher] = field(default_factory=dict, repr=False)
    # The root key, kept so the key ring can load a rotated identity or log key without the
    # passphrase (it holds no more power than the keys derived from it, already in memory).
    _root_key: bytes = field(default=b"", repr=False)
    #: set by the store: loads a rotated key from the database (returns whether one was new)
    reload: Callable[[], bool] | None = field(default=None, repr=False, compare=False)

    @property
    def recipient(self) -> age.X25519Recipient:
        return self.identity.recipient

    @classmethod
    def unseal(cls, session: Session, secret: UnsealSecret, *, writable: bool = False) -> KeyRing:
        """Open the vault's keys. ``writable``: the session may write, so a vault made before
        the transparency log gets its log key now (the caller commits)."""
        meta = load_meta(session)
        params = KdfParams.from_json(meta.kdf)
        root_key = open_root_key(meta.sealed_root, secret.reveal(), params, meta.vault_id)
        key = _current_key(session, "identity")
        if key is None:
            raise UnsealError("the vault identity is missing from the database")
        raw = open_with_root(
            root_key, key.sealed_private, vault_key_aad(meta.vault_id, "identity", key.id)
        )
        identity = age.X25519Identity.from_string(raw.decode("ascii"))
        if str(identity.recipient) != key.public:
            raise UnsealError("the vault identity does not match its public key")
        log_key = _current_key(session, "log")
        if log_key is None and writable:
            state = session.get(LogState, 1)
            origin = state.origin if state else initial_origin(meta.vault_id)
            log_key = add_log_key(session, root_key, meta.vault_id, origin)
        signer = None
        if log_key is not None:
            raw = open_with_root(
                root_key, log_key.sealed_private, vault_key_aad(meta.vault_id, "log", log_key.id)
            )
            signer = Signer.parse(raw.decode("ascii"))
            if signer.verifier.key_string() != log_key.public:
                raise UnsealError("the log key does not match its public key")
        return cls(
            vault_id=meta.vault_id,
            identity=identity,
            vault_cipher=FieldCipher(derive_subkey(root_key, VAULT_SECRETS_INFO)),
            key_mac_key=derive_subkey(root_key, CLIENT_KEY_MAC_INFO),
            log_signer=signer,
            log_key_id=log_key.id if log_key is not None else None,
            identity_key_id=key.id,
            _root_key=root_key,
        )

    def refresh(self, session: Session) -> bool:
        """Catch up with a rotation made by another process: load the current identity and
        log key if they are not the ones held. Returns whether anything changed."""
        changed = False
        key = _current_key(session, "identity")
        if key is not None and key.id != self.identity_key_id:
            raw = open_with_root(
                self._root_key, key.sealed_private, vault_key_aad(self.vault_id, "identity", key.id)
            )
            identity = age.X25519Identity.from_string(raw.decode("ascii"))
            if str(identity.recipient) != key.public:
                raise UnsealError("the vault identity does not match its public key")
            self.retired_identities.insert(0, self.identity)
            self.identity, self.identity_key_id = identity, key.id
            changed = True
        log_key = _current_key(session, "log")
        if log_key is not None and log_key.id != self.log_key_id:
            raw = open_with_root(
                self._root_key,
                log_key.sealed_private,
                vault_key_aad(self.vault_id, "log", log_key.id),
            )
            signer = Signer.parse(raw.decode("ascii"))
            if signer.verifier.key_string() != log_key.public:
                raise UnsealError("the log key does not match its public key")
            self.log_signer, self.log_key_id = signer, log_key.id
            changed = True
        return changed

    def seal_vault_key(self, purpose: str, key_id: str, private: bytes) -> bytes:
        """Seal a new vault key's private part under the root key (key rotation)."""
        return seal_with_root(
            self._root_key, private, vault_key_aad(self.vault_id, purpose, key_id)
        )

    def client_key(self, client: Client) -> bytes:
        expected = self.key_file_mac(client.id, client.wrapped_key)
        if client.key_mac is None or not hmac.compare_digest(client.key_mac, expected):
            raise DecryptionError(
                f"the key file of client {client.name!r} was not written by this vault "
                "(the database was tampered with)"
            )
        try:
            return unwrap_client_key(
                client.wrapped_key, [self.identity, *self.retired_identities], client.id
            )
        except DecryptionError:
            # Another process may have rotated the vault identity since we unsealed.
            if self.reload is None or not self.reload():
                raise
            return unwrap_client_key(
                client.wrapped_key, [self.identity, *self.retired_identities], client.id
            )

    def key_file_mac(self, client_id: str, wrapped: bytes) -> bytes:
        message = b"custody/v1/client-key-mac\x00" + client_id.encode("ascii") + b"\x00" + wrapped
        return hmac.new(self.key_mac_key, message, hashlib.sha256).digest()

    def cipher(self, client: Client) -> FieldCipher:
        slot = (client.id, client.wrapped_key)
        cipher = self._ciphers.get(slot)
        if cipher is None:
            cipher = self._ciphers[slot] = FieldCipher(self.client_key(client))
        return cipher


def derive_subkey(root_key: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root_key)


# --- client keys ------------------------------------------------------------------------


def new_client_key() -> bytes:
    return os.urandom(CLIENT_KEY_SIZE)


def client_key_payload(client_id: str, key: bytes) -> bytes:
    return (
        f"{CLIENT_KEY_HEADER}\nclient: {client_id}\nkey: {base64.b64encode(key).decode('ascii')}\n"
    ).encode("ascii")


def parse_client_key_payload(payload: bytes, expected_client_id: str) -> bytes:
    try:
        lines = payload.decode("ascii").splitlines()
        header, client_line, key_line = lines
        if header != CLIENT_KEY_HEADER or not client_line.startswith("client: "):
            raise ValueError
        if not key_line.startswith("key: "):
            raise ValueError
        key = base64.b64decode(key_line[5:], validate=True)
    except (ValueError, UnicodeDecodeError):
        raise DecryptionError("the client key file is malformed") from None
    if client_line[8:] != expected_client_id or len(key) != CLIENT_KEY_SIZE:
        raise DecryptionError("the client key file belongs to another client")
    return key


def wrap_client_key(client_id: str, key: bytes, recipients: Sequence[age.Recipient]) -> bytes:
    return age.encrypt(client_key_payload(client_id, key), recipients)


def unwrap_client_key(wrapped: bytes, identities: Sequence[age.Identity], client_id: str) -> bytes:
    try:
        payload = age.decrypt(wrapped, identities)
    except AgeNoIdentityMatch:
        raise DecryptionError("none of the given identities can open this client's key") from None
    except AgeError:
        raise DecryptionError("the stored client key does not decrypt") from None
    return parse_client_key_payload(payload, client_id)
