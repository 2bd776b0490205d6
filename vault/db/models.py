"""The records, as SQLAlchemy 2.x declarative models.

Plain columns are metadata a consultant searches by (titles, kinds, tags, dates). Every
sensitive value lives in a ``*_ct`` column sealed by ``vault.crypto.fields`` with associated
data naming client, record kind, record id, field and version (docs/crypto.md).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Explicit constraint names keep migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware everywhere: stored as UTC; SQLite keeps naive text, so UTC is
    re-attached on load."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


OWNER_KINDS = ("client", "consultancy", "third-party", "unknown")


class VaultMeta(Base):
    """One row: how the root key is sealed."""

    __tablename__ = "vault_meta"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vault_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    seal_mode: Mapped[str] = mapped_column(String(16))  # "passphrase" | "shares"
    share_threshold: Mapped[int | None] = mapped_column(Integer)
    share_count: Mapped[int | None] = mapped_column(Integer)
    kdf: Mapped[dict[str, Any]] = mapped_column(JSON)
    sealed_root: Mapped[bytes] = mapped_column(LargeBinary)


class VaultKey(Base):
    """A key pair of the vault itself; the private half sealed under the root key."""

    __tablename__ = "vault_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    purpose: Mapped[str] = mapped_column(String(32))  # "identity" (X25519) or "log" (Ed25519)
    public: Mapped[str] = mapped_column(Text)
    sealed_private: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Client(Base):
    __tablename__ = "clients"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # The client key as an age v1 file, to the vault recipient and every escrow recipient.
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    # HMAC of (client id, wrapped_key) under a root-key subkey: age files are not signed, so
    # without it anyone able to write the database could plant a key file of their own.
    key_mac: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Client-triggered takeover: the notice the consultancy gets (days; 0 allowed), and the
    # takeover's course. Once ``owned_at`` is set the client's contacts manage its access.
    notice_days: Mapped[int] = mapped_column(Integer, default=7, server_default="7")
    takeover_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    takeover_requested_by: Mapped[str | None] = mapped_column(String(200))
    takeover_effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    owned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    recipients: Mapped[list[Recipient]] = relationship(
        back_populates="client", cascade="all, delete-orphan", order_by="Recipient.added_at"
    )
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="client", cascade="all, delete-orphan", order_by="Contact.name"
    )


class Contact(Base):
    __tablename__ = "client_contacts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    client: Mapped[Client] = relationship(back_populates="contacts")


class Recipient(Base):
    """An escrow recipient of a client: an age X25519 or ssh-ed25519 public key."""

    __tablename__ = "recipients"
    __table_args__ = (UniqueConstraint("client_id", "recipient"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    recipient: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    label: Mapped[str | None] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    client: Mapped[Client] = relationship(back_populates="recipients")


class Secret(Base):
    __tablename__ = "secrets"
    __table_args__ = (
        UniqueConstraint("client_id", "title_key"),
        # What a lease's foreign key refers to: its secret, and that secret's client.
        UniqueConstraint("id", "client_id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    title_key: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(32))
    url: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    exclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    rotate_after_use: Mapped[bool] = mapped_column(Boolean, default=False)
    # Policy: the longest lease a check-out may ask for (None: the vault default), and how
    # values are generated at rotation.
    max_lease_seconds: Mapped[int | None] = mapped_column(Integer)
    generate_length: Mapped[int | None] = mapped_column(Integer)
    generate_charset: Mapped[str | None] = mapped_column(String(32))
    # The open exclusive lease, claimed with one conditional UPDATE (see services/checkout.py).
    held_by_lease_id: Mapped[str | None] = mapped_column(String(36))
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when a rotate-after-use secret was revealed and has not been rotated since.
    needs_rotation: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    versions: Mapped[list[SecretVersion]] = relationship(
        back_populates="secret", cascade="all, delete-orphan", order_by="SecretVersion.version"
    )


class SecretVersion(Base):
    """One immutable version of a secret's sensitive fields."""

    __tablename__ = "secret_versions"
    __table_args__ = (UniqueConstraint("secret_id", "version"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    secret_id: Mapped[str] = mapped_column(ForeignKey("secrets.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    value_ct: Mapped[bytes] = mapped_column(LargeBinary)
    username_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    notes_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    secret: Mapped[Secret] = relationship(back_populates="versions")


class _InventoryMixin:
    """Columns shared by vendors, domains and assets."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(300))
    name_key: Mapped[str] = mapped_column(String(300))
    owner_kind: Mapped[str] = mapped_column(String(16), default="unknown")
    owner_name: Mapped[str | None] = mapped_column(String(300))
    # Sensitive fields as one sealed JSON object; "revision" is its AEAD version.
    private_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Vendor(_InventoryMixin, Base):
    __tablename__ = "vendors"
    __table_args__ = (
        UniqueConstraint("client_id", "name_key"),
        CheckConstraint(f"owner_kind IN {OWNER_KINDS!r}", name="owner_kind"),
    )
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    website: Mapped[str | None] = mapped_column(Text)
    renewal_date: Mapped[date | None] = mapped_column(Date)
    support_contacts: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    twofa_location: Mapped[str] = mapped_column(String(32), default="unknown")


class Domain(_InventoryMixin, Base):
    __tablename__ = "domains"
    __table_args__ = (
        UniqueConstraint("client_id", "name_key"),
        CheckConstraint(f"owner_kind IN {OWNER_KINDS!r}", name="owner_kind"),
    )
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    registrar_id: Mapped[str | None] = mapped_column(
        ForeignKey("vendors.id", ondelete="SET NULL"), index=True
    )
    registrant: Mapped[str | None] = mapped_column(String(300))
    expires_on: Mapped[date | None] = mapped_column(Date)
    dns_host_id: Mapped[str | None] = mapped_column(
        ForeignKey("vendors.id", ondelete="SET NULL"), index=True
    )


class Asset(_InventoryMixin, Base):
    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("client_id", "name_key"),
        CheckConstraint(f"owner_kind IN {OWNER_KINDS!r}", name="owner_kind"),
    )
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    location: Mapped[str | None] = mapped_column(String(300))
    serial: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    managing_vendor_id: Mapped[str | None] = mapped_column(
        ForeignKey("vendors.id", ondelete="SET NULL"), index=True
    )


class SecretLink(Base):
    """A secret opens exactly one vendor account, domain or asset per link."""

    __tablename__ = "secret_links"
    __table_args__ = (
        CheckConstraint(
            "(CASE WHEN vendor_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN domain_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN asset_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="one_target",
        ),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    secret_id: Mapped[str] = mapped_column(ForeignKey("secrets.id", ondelete="CASCADE"), index=True)
    vendor_id: Mapped[str | None] = mapped_column(ForeignKey("vendors.id", ondelete="CASCADE"))
    domain_id: Mapped[str | None] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"))
    asset_id: Mapped[str | None] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))


class AuditEvent(Base):
    """Every access and change, appended in the same transaction as the action.

    Each event is a leaf of the transparency log (docs/audit-log.md): ``seq`` is its leaf index
    (0, 1, 2, ... with no gaps - unlike ``id``, whose sequence skips numbers on rollback) and
    ``leaf_hash`` the RFC 9162 hash of its canonical bytes.
    """

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    client_id: Mapped[str | None] = mapped_column(String(36), index=True)
    subject_kind: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(36))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    role: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(64))


class LogState(Base):
    """One row: the transparency log's head - its size and compact range (right edge).

    Appending events locks this row (SELECT ... FOR UPDATE on PostgreSQL; SQLite's single
    writer does the same), so leaf indexes are handed out in commit order with no gaps or forks
    however many server processes write."""

    __tablename__ = "log_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    compact: Mapped[bytes] = mapped_column(LargeBinary)


class LogNode(Base):
    """Hashes of perfect subtrees of the log at levels 4, 8, 12, ... (16, 256, 4096 ... leaves).

    With the leaf hashes in ``audit_events`` they answer any proof in O(log n) reads while
    costing one row per 16 events on the write path."""

    __tablename__ = "log_nodes"
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class LogCheckpoint(Base):
    """A signed checkpoint (c2sp.org/tlog-checkpoint in a signed note) of the log."""

    __tablename__ = "log_checkpoints"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(36))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- people and access ------------------------------------------------------------------

ROLES = ("admin", "consultant", "client", "auditor")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES!r}", name="role"),
        CheckConstraint("role <> 'client' OR client_id IS NOT NULL", name="client_has_client"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(200))
    username_key: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    # A client contact belongs to exactly one client.
    client_id: Mapped[str | None] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    password_hash: Mapped[str] = mapped_column(String(200))
    # The TOTP seed, sealed under a key derived from the vault root key (docs/crypto.md).
    totp_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last TOTP time step accepted: a code is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Grant(Base):
    """A consultant may work on a client (until ``expires_at``); an auditor is scoped to it."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    # Made by the client's own contacts (after a takeover): survives the takeover's end of
    # the consultancy's grants.
    by_client: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")


class ApiToken(Base):
    """A session or API token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(200))
    # "full", or "enroll" for a token that may only enrol TOTP (first sign-in).
    scope: Mapped[str] = mapped_column(String(16), default="full")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source: Mapped[str | None] = mapped_column(String(64))


class Lease(Base):
    """A check-out: who holds which secret, why, and until when."""

    __tablename__ = "leases"
    # One foreign key for the secret and its client together, rather than one for each: it
    # also holds the lease's client to its secret's, and a check-out locks (FOR KEY SHARE, on
    # PostgreSQL) only the row of the secret it takes out, not the client's row, which every
    # check-out of that client's secrets would otherwise share with every other one in flight.
    #
    # Open leases are indexed on their own (by expiry): the lease sweep, the overdue list and
    # each consultant's open leases read only those, however long the history of ended leases
    # grows (a full index on expires_at made every sweep walk every lease ever expired).
    __table_args__ = (
        ForeignKeyConstraint(
            ["secret_id", "client_id"], ["secrets.id", "secrets.client_id"], ondelete="CASCADE"
        ),
        Index(
            "ix_leases_open_expiry",
            "expires_at",
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    secret_id: Mapped[str] = mapped_column(String(36), index=True)
    client_id: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    holder: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    ticket: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    exclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    release_kind: Mapped[str | None] = mapped_column(String(16))  # checkin, expired, forced


class Reveal(Base):
    """Rotation debt: this user saw this version of this secret."""

    __tablename__ = "reveals"
    __table_args__ = (UniqueConstraint("user_id", "secret_id", "version"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_id: Mapped[str] = mapped_column(ForeignKey("secrets.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- escrow drops and notices -----------------------------------------------------------------

DESTINATION_KINDS = ("directory", "https")


class EscrowDestination(Base):
    """Where a client's export is delivered on a schedule: a directory or an HTTPS endpoint."""

    __tablename__ = "escrow_destinations"
    __table_args__ = (CheckConstraint(f"kind IN {DESTINATION_KINDS!r}", name="kind"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)  # a directory path or an https:// URL
    method: Mapped[str | None] = mapped_column(String(8))  # PUT or POST (https)
    # The client's bearer token for its endpoint, sealed under the client key.
    token_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    label: Mapped[str | None] = mapped_column(String(200))
    every_hours: Mapped[int] = mapped_column(Integer, default=24)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    overdue_since: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Notice(Base):
    """Something the consultancy's admins must see (a client started a takeover, a drop is
    overdue); kept until acknowledged."""

    __tablename__ = "notices"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    client_id: Mapped[str | None] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))


class CredentialRequest(Base):
    """A one-time link asking a client for a credential (vault/services/requests.py); only the
    link token's SHA-256 is stored. Never holds the value: that goes into a new secret."""

    __tablename__ = "credential_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(32))
    vendor_id: Mapped[str | None] = mapped_column(ForeignKey("vendors.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    used_by: Mapped[str | None] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    secret_id: Mapped[str | None] = mapped_column(ForeignKey("secrets.id", ondelete="SET NULL"))
