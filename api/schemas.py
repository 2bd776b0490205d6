"""Request and response bodies, grouped by resource (Create / Update / Public).

Secret values travel as ``SecretStr`` so a repr or a log of a request model shows asterisks.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from vault.services.secrets import LONGEST_LEASE_SECONDS
from vault.services.users import MAX_USERNAME

Name = Field(min_length=1, max_length=300)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- system ------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]
    sealed: bool
    version: str


class UnsealRequest(Strict):
    passphrase: SecretStr | None = None
    share: SecretStr | None = Field(default=None, description="One SLIP-39 share at a time.")
    reset: bool = Field(default=False, description="Forget the shares given so far.")


class UnsealStatus(BaseModel):
    sealed: bool
    shares_given: int = 0
    shares_needed: int | None = None


# --- auth --------------------------------------------------------------------------------


class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=200)
    password: SecretStr = Field(max_length=1024)
    totp: str | None = Field(default=None, max_length=10, description="Current TOTP code.")


class LoginResponse(BaseModel):
    token: str
    scope: Literal["full", "enroll"]
    expires_at: datetime
    totp_enrollment_required: bool


class TotpEnrollment(BaseModel):
    otpauth_uri: str


class TotpConfirm(Strict):
    code: str = Field(min_length=6, max_length=10)


class TokenCreate(Strict):
    label: str = Field(min_length=1, max_length=200)
    ttl_days: int = Field(default=90, ge=1, le=365)


class TokenPublic(BaseModel):
    id: str
    label: str | None
    scope: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenPublic):
    token: str


class Me(BaseModel):
    username: str
    role: str
    client_ids: list[str] | None
    totp_enrolled: bool


# --- users and grants --------------------------------------------------------------------

Role = Literal["admin", "consultant", "client", "auditor"]


class UserCreate(Strict):
    username: str = Field(min_length=1, max_length=MAX_USERNAME)
    role: Role
    password: SecretStr = Field(min_length=1, max_length=1024)
    client: str | None = Field(default=None, description="For role client: its client.")
    display_name: str | None = Field(default=None, max_length=200)


class UserUpdate(Strict):
    disabled: bool | None = None
    password: SecretStr | None = Field(default=None, max_length=1024)


class UserPublic(BaseModel):
    id: str
    username: str
    role: str
    client_id: str | None
    display_name: str | None
    totp_enrolled: bool
    disabled: bool
    locked_until: datetime | None
    created_at: datetime


class GrantCreate(Strict):
    expires_at: datetime | None = None


class GrantPublic(BaseModel):
    username: str
    client_id: str
    client: str
    expires_at: datetime | None
    created_at: datetime
    created_by: str


# --- clients and recipients --------------------------------------------------------------


class ClientCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    recipients: list[str] = Field(default_factory=list, max_length=50)


class RecipientPublic(BaseModel):
    id: str
    recipient: str
    kind: str
    label: str | None
    added_at: datetime


class ClientPublic(BaseModel):
    id: str
    name: str
    created_at: datetime
    counts: dict[str, int]
    recipients: list[RecipientPublic]
    contacts: list[ContactPublic]


class RecipientCreate(Strict):
    recipient: str = Field(min_length=1, max_length=2000)
    label: str | None = Field(default=None, max_length=200)


class ContactPublic(BaseModel):
    id: str
    name: str
    email: str | None
    phone: str | None
    role: str | None


class ContactCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    role: str | None = Field(default=None, max_length=200)


# --- secrets -----------------------------------------------------------------------------

SecretKind = Literal["login", "api-key", "totp", "ssh-key", "license", "note"]
Charset = Literal["alnum", "full", "hex", "digits"]


class SecretCreate(Strict):
    title: str = Field(min_length=1, max_length=300)
    value: SecretStr = Field(min_length=1, max_length=65536)
    kind: SecretKind = "login"
    username: str | None = Field(default=None, max_length=4000)
    url: str | None = Field(default=None, max_length=4000)
    notes: str | None = Field(default=None, max_length=4000)
    tags: list[str] = Field(default_factory=list, max_length=32)
    exclusive: bool = False
    sensitive: bool = False
    rotate_after_use: bool = False
    max_lease_seconds: int | None = Field(default=None, ge=60, le=LONGEST_LEASE_SECONDS)
    generate_length: int | None = Field(default=None, ge=8, le=256)
    generate_charset: Charset | None = None


class SecretUpdate(Strict):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    value: SecretStr | None = Field(default=None, min_length=1, max_length=65536)
    kind: SecretKind | None = None
    username: str | None = Field(default=None, max_length=4000)
    url: str | None = Field(default=None, max_length=4000)
    notes: str | None = Field(default=None, max_length=4000)
    tags: list[str] | None = Field(default=None, max_length=32)
    exclusive: bool | None = None
    sensitive: bool | None = None
    rotate_after_use: bool | None = None


class SecretPublic(BaseModel):
    """Metadata only: no value, username or notes."""

    id: str
    client_id: str
    title: str
    kind: str
    url: str | None
    tags: list[str]
    version: int
    exclusive: bool
    sensitive: bool
    rotate_after_use: bool
    needs_rotation: bool
    held_until: datetime | None
    created_at: datetime
    updated_at: datetime


class VersionPublic(BaseModel):
    version: int
    created_at: datetime
    created_by: str


class CheckoutRequest(Strict):
    reason: str | None = Field(default=None, max_length=1000)
    ticket: str | None = Field(default=None, max_length=200)
    ttl_seconds: int | None = Field(default=None, ge=1, le=LONGEST_LEASE_SECONDS)
    totp: str | None = Field(default=None, max_length=10, description="For sensitive secrets.")


class LeasePublic(BaseModel):
    id: str
    secret_id: str
    client_id: str
    holder: str
    reason: str | None
    ticket: str | None
    version: int
    exclusive: bool
    created_at: datetime
    expires_at: datetime
    released_at: datetime | None
    release_kind: str | None


class CheckoutResponse(BaseModel):
    lease: LeasePublic
    title: str
    kind: str
    version: int
    username: str | None
    url: str | None
    value: str
    notes: str | None


class CheckinRequest(Strict):
    new_value: SecretStr | None = Field(default=None, min_length=1, max_length=65536)
    generate: bool = False


class CheckinResponse(BaseModel):
    lease: LeasePublic
    new_version: int | None
    generated_value: str | None = Field(
        default=None, description="The generated new value, shown once."
    )


class TotpCode(BaseModel):
    code: str
    valid_for_seconds: int


class LinkCreate(Strict):
    kind: Literal["vendor", "domain", "asset"]
    name: str = Field(min_length=1, max_length=300)


# --- inventory -----------------------------------------------------------------------------

Owner = Literal["client", "consultancy", "third-party", "unknown"]


class InventoryBase(Strict):
    owner: Owner | None = None
    owner_name: str | None = Field(default=None, max_length=300)
    notes: str | None = Field(default=None, max_length=4000)


class VendorIn(InventoryBase):
    name: str | None = Field(default=None, min_length=1, max_length=300)
    category: str | None = Field(default=None, max_length=32)
    website: str | None = Field(default=None, max_length=4000)
    renewal_date: date | None = None
    twofa_location: str | None = Field(default=None, max_length=32)
    support_contacts: list[dict[str, str]] | None = Field(default=None, max_length=20)
    account_number: str | None = Field(default=None, max_length=300)
    recovery_email: str | None = Field(default=None, max_length=320)
    recovery_phone: str | None = Field(default=None, max_length=64)


class DomainIn(InventoryBase):
    name: str | None = Field(default=None, min_length=1, max_length=300)
    registrar: str | None = Field(default=None, max_length=300)
    registrant: str | None = Field(default=None, max_length=300)
    expires_on: date | None = None
    dns_host: str | None = Field(default=None, max_length=300)


class AssetIn(InventoryBase):
    name: str | None = Field(default=None, min_length=1, max_length=300)
    kind: str | None = Field(default=None, max_length=32)
    location: str | None = Field(default=None, max_length=300)
    serial: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=300)
    managing_vendor: str | None = Field(default=None, max_length=300)


class InventoryPublic(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    owner: str
    owner_name: str | None


class Report(BaseModel):
    items: list[dict[str, Any]]


class FindingRecord(BaseModel):
    kind: str
    id: str | None
    name: str | None


class Finding(BaseModel):
    code: str
    severity: str
    title: str
    fix: str
    record: FindingRecord | None


class ReadinessReport(BaseModel):
    client: dict[str, str]
    score: int
    grade: str
    counts: dict[str, int]
    findings: list[Finding]
    skipped: list[str]
    computed_at: datetime


class VaultKeyPublic(BaseModel):
    """A vault identity (``identity``: an age recipient) or log key (``log``: a signed-note
    verifier key); public parts only."""

    id: str
    purpose: str
    public: str
    created_at: datetime
    retired_at: datetime | None


class RotationPublic(BaseModel):
    """What a key rotation did: values re-sealed, client keys re-wrapped, the new key."""

    what: str
    client: str | None
    resealed: int
    rewrapped: int
    key_id: str | None
    public: str | None
