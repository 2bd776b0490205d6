"""People: users, roles, grants, passwords, TOTP, sign-in and API tokens.

Sign-in answers the same for every failure (unknown user, wrong password, wrong or replayed
code, locked, disabled) and takes the same time (an unknown user is checked against a dummy
hash). Failures lock the account for a growing window. Tokens are random and only their
SHA-256 is stored; the principal is rebuilt from the database on every request, so removing a
grant or disabling a user takes effect on the very next request.
"""

from __future__ import annotations

import hashlib
import secrets as pysecrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, Table, bindparam, select, update

from vault.crypto.fields import FieldLocation
from vault.db.direct import DirectStatement
from vault.db.models import ROLES, ApiToken, Client, Grant, User, utcnow
from vault.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from vault.services import Context, Principal, audit
from vault.services.validation import clean_name, name_key, optional_text

# OWASP Password Storage Cheat Sheet, Argon2id: m=19 MiB, t=2, p=1.
PASSWORDS = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_DUMMY_HASH = PASSWORDS.hash("custody-dummy-password-for-timing")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
#: a user's actions are recorded as ``user:<username>`` in columns 200 characters wide (the log's
#: actor, a lease's holder, a version's author): a username must leave room for the prefix
MAX_USERNAME = 100

TOTP_DIGITS = 6
TOTP_PERIOD = 30
TOTP_WINDOW = 1  # one step either side
TOKEN_PREFIX = "cst_"  # noqa: S105 - a public marker, not a secret
SESSION_TTL = timedelta(hours=12)
ENROLL_TTL = timedelta(minutes=15)
LOCK_AFTER = 5  # failures before the first lock
FIRST_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=15)
LOGIN_FAILED = "sign-in failed: wrong username, password or code, or the account is locked"


# --- users -------------------------------------------------------------------------------


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password must be at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput("the password is too long", field="password")


def create_user(
    ctx: Context,
    username: str,
    *,
    role: str,
    password: str,
    client_name: str | None = None,
    display_name: str | None = None,
) -> User:
    username = clean_name(username, "username", max_length=MAX_USERNAME)
    if ctx.principal.role == "client":
        # After a takeover, a client's contacts add more contacts of their own client.
        if role != "client":
            raise Forbidden("a client contact may add client contacts only", field="role")
        _require_client_owner(ctx, client_name)
    else:
        ctx.require("admin")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of: {', '.join(ROLES)}", field="role")
    if ctx.session.scalars(select(User.id).where(User.username_key == name_key(username))).first():
        raise Conflict(f"a user named {username!r} already exists", field="username")
    client_id = None
    if role == "client":
        if not client_name:
            raise InvalidInput("a client contact needs the client it belongs to", field="client")
        from vault.services.clients import get_client

        client_id = get_client(ctx, client_name).id
    elif client_name:
        raise InvalidInput("only a user with role client belongs to a client", field="client")
    check_password_policy(password)
    user = User(
        username=username,
        username_key=name_key(username),
        display_name=optional_text(display_name, "display_name", max_length=200),
        role=role,
        client_id=client_id,
        password_hash=PASSWORDS.hash(password),
        failed_logins=0,
    )
    ctx.session.add(user)
    ctx.session.flush()
    audit.record(
        ctx,
        "user.add",
        client_id=client_id,
        subject_kind="user",
        subject_id=user.id,
        username=username,
        user_role=role,
    )
    return user


def get_user(ctx: Context, username: str) -> User:
    user = ctx.session.scalars(select(User).where(User.username_key == name_key(username))).first()
    if user is None:
        raise NotFound(f"no user named {username!r}", field="username")
    return user


def list_users(ctx: Context) -> list[User]:
    ctx.require("admin")
    return list(ctx.session.scalars(select(User).order_by(User.username_key)))


def set_disabled(ctx: Context, username: str, disabled: bool) -> User:
    """Disable (or enable) a user; disabling ends every session at once."""
    ctx.require("admin")
    user = get_user(ctx, username)
    user.disabled_at = utcnow() if disabled else None
    if disabled:
        _revoke_all(ctx, user)
    else:
        user.failed_logins, user.locked_until = 0, None
    audit.record(
        ctx,
        "user.disable" if disabled else "user.enable",
        subject_kind="user",
        subject_id=user.id,
        username=user.username,
    )
    return user


def set_password(ctx: Context, username: str, password: str) -> User:
    user = get_user(ctx, username)
    if ctx.principal.user_id != user.id:
        ctx.require("admin")
    check_password_policy(password)
    user.password_hash = PASSWORDS.hash(password)
    _revoke_all(ctx, user)
    audit.record(
        ctx, "user.password", subject_kind="user", subject_id=user.id, username=user.username
    )
    return user


def _revoke_all(ctx: Context, user: User) -> None:
    ctx.session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


# --- grants ------------------------------------------------------------------------------


def grant(
    ctx: Context, username: str, client_name: str, *, expires_at: datetime | None = None
) -> Grant:
    """Give a consultant a client (until ``expires_at``), or scope an auditor to it."""
    from vault.services.clients import get_client

    by_client = ctx.principal.role == "client"
    if by_client:
        _require_client_owner(ctx, client_name)
    else:
        ctx.require("admin")
    user = get_user(ctx, username)
    if user.role not in ("consultant", "auditor"):
        raise InvalidInput("grants are for consultants and auditors", field="username")
    client = get_client(ctx, client_name)
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("the grant's expiry is in the past", field="expires_at")
    row = ctx.session.scalars(
        select(Grant).where(Grant.user_id == user.id, Grant.client_id == client.id)
    ).first()
    if row is None:
        row = Grant(user_id=user.id, client_id=client.id, created_by=ctx.actor)
        ctx.session.add(row)
    row.expires_at = expires_at
    row.by_client = by_client
    ctx.session.flush()
    audit.record(
        ctx,
        "grant.add",
        client_id=client.id,
        subject_kind="user",
        subject_id=user.id,
        username=user.username,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return row


def revoke_grant(ctx: Context, username: str, client_name: str) -> None:
    from vault.services.clients import get_client

    if ctx.principal.role == "client":
        _require_client_owner(ctx, client_name)
    else:
        ctx.require("admin")
    user = get_user(ctx, username)
    client = get_client(ctx, client_name)
    row = ctx.session.scalars(
        select(Grant).where(Grant.user_id == user.id, Grant.client_id == client.id)
    ).first()
    if row is None:
        raise NotFound(f"{user.username} has no grant on {client.name}", field="client")
    ctx.session.delete(row)
    audit.record(
        ctx,
        "grant.remove",
        client_id=client.id,
        subject_kind="user",
        subject_id=user.id,
        username=user.username,
    )


def _require_client_owner(ctx: Context, client_name: str | None) -> None:
    """A client contact may manage access to its own client once the client owns its records
    (after a completed takeover)."""
    from vault.services.clients import get_client

    if not client_name:
        raise InvalidInput("name the client", field="client")
    client = get_client(ctx, client_name)  # another client: not found
    if client.owned_at is None:
        raise Forbidden("the client's contacts manage access only after a takeover has completed")


def list_grants(ctx: Context, username: str | None = None) -> list[tuple[Grant, User, Client]]:
    ctx.require("admin")
    stmt = (
        select(Grant, User, Client)
        .join(User, Grant.user_id == User.id)
        .join(Client, Grant.client_id == Client.id)
        .order_by(User.username_key)
    )
    if username:
        stmt = stmt.where(User.username_key == name_key(username))
    return [(g, u, c) for g, u, c in ctx.session.execute(stmt)]


def principal_for(ctx_session: object, user: User, now: datetime | None = None) -> Principal:
    """The principal of a signed-in user, built from the database as it is now."""
    from sqlalchemy.orm import Session

    assert isinstance(ctx_session, Session)
    now = now or utcnow()
    clients: frozenset[str] | None
    if user.role == "admin":
        clients = None
    elif user.role == "client":
        clients = frozenset([user.client_id] if user.client_id else [])
    else:
        rows = ctx_session.scalars(
            select(Grant.client_id).where(
                Grant.user_id == user.id,
                (Grant.expires_at.is_(None)) | (Grant.expires_at > now),
            )
        )
        granted = frozenset(rows)
        # An auditor with no scope sees every client's log; a consultant sees only grants.
        clients = None if (user.role == "auditor" and not granted) else granted
    return Principal(name=f"user:{user.username}", role=user.role, user_id=user.id, clients=clients)


# --- TOTP --------------------------------------------------------------------------------


def _totp_location(user: User) -> FieldLocation:
    return FieldLocation("vault", "user", user.id, "totp", 1)


def begin_totp_enrollment(ctx: Context, user: User) -> str:
    """Make a new TOTP seed for ``user`` (replacing an unconfirmed one) and return its
    otpauth:// URI. It becomes required only once confirmed with a first code."""
    import pyotp

    if user.totp_confirmed_at is not None and ctx.principal.user_id == user.id:
        raise Conflict("TOTP is already set up; an admin can reset it", field="totp")
    seed = pyotp.random_base32(32)
    user.totp_ct = ctx.keyring().vault_cipher.seal_text(seed, _totp_location(user))
    user.totp_confirmed_at = None
    user.totp_last_step = None
    audit.record(ctx, "user.totp.begin", subject_kind="user", subject_id=user.id)
    return str(
        pyotp.TOTP(seed, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
            name=user.username, issuer_name="Custody"
        )
    )


def pending_totp_uri(ctx: Context, user: User) -> str | None:
    """The otpauth:// URI of an enrolment begun but not yet confirmed (to show its QR code
    again after a mistyped first code), else None."""
    import pyotp

    if user.totp_ct is None or user.totp_confirmed_at is not None:
        return None
    seed = ctx.keyring().vault_cipher.open_text(user.totp_ct, _totp_location(user))
    return str(
        pyotp.TOTP(seed, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
            name=user.username, issuer_name="Custody"
        )
    )


def _accept_code(ctx: Context, user: User, code: str | None, now: datetime) -> bool:
    """True if ``code`` is valid within one step either side and newer than the last code
    accepted - a code is never accepted twice."""
    import pyotp

    if user.totp_ct is None or not code or not code.strip().isdigit():
        return False
    seed = ctx.keyring().vault_cipher.open_text(user.totp_ct, _totp_location(user))
    totp = pyotp.TOTP(seed, digits=TOTP_DIGITS, interval=TOTP_PERIOD)
    step_now = int(now.timestamp()) // TOTP_PERIOD
    for step in range(step_now - TOTP_WINDOW, step_now + TOTP_WINDOW + 1):
        if pysecrets.compare_digest(totp.at(step * TOTP_PERIOD), code.strip()):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return False  # replay of this code, or of an older one
            user.totp_last_step = step
            return True
    return False


def confirm_totp(ctx: Context, user: User, code: str) -> None:
    now = utcnow()
    if user.totp_ct is None:
        raise InvalidInput("start TOTP enrolment first", field="totp")
    if not _accept_code(ctx, user, code, now):
        raise InvalidInput("that code is not valid (check the device's clock)", field="code")
    user.totp_confirmed_at = now
    audit.record(ctx, "user.totp.confirm", subject_kind="user", subject_id=user.id)


def verify_fresh_totp(ctx: Context, user: User, code: str | None) -> bool:
    """For sensitive actions: a valid, never-used code from the user's confirmed device."""
    return user.totp_confirmed_at is not None and _accept_code(ctx, user, code, utcnow())


def reset_totp(ctx: Context, username: str) -> None:
    ctx.require("admin")
    user = get_user(ctx, username)
    user.totp_ct, user.totp_confirmed_at, user.totp_last_step = None, None, None
    _revoke_all(ctx, user)
    audit.record(ctx, "user.totp.reset", subject_kind="user", subject_id=user.id)


# --- sign-in and tokens ------------------------------------------------------------------


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _new_token(
    ctx: Context, user: User, *, scope: str, ttl: timedelta, label: str | None = None
) -> str:
    raw = TOKEN_PREFIX + pysecrets.token_urlsafe(32)
    ctx.session.add(
        ApiToken(
            user_id=user.id,
            token_hash=hash_token(raw),
            scope=scope,
            label=label,
            expires_at=utcnow() + ttl,
            source=ctx.source,
        )
    )
    return raw


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    token: str | None = None
    scope: str | None = None
    expires_at: datetime | None = None
    totp_enrollment_required: bool = False


def login(
    ctx: Context, username: str, password: str, code: str | None, *, require_totp: bool = True
) -> LoginResult:
    """Check credentials. Every outcome is audited; the caller commits even on failure."""
    now = utcnow()
    user = ctx.session.scalars(
        select(User).where(User.username_key == name_key(username or ""))
    ).first()

    def fail(why: str) -> LoginResult:
        if user is not None:
            user.failed_logins = (user.failed_logins or 0) + 1
            if user.failed_logins >= LOCK_AFTER:
                lock = FIRST_LOCK * (2 ** (user.failed_logins - LOCK_AFTER))
                user.locked_until = now + min(lock, MAX_LOCK)
        audit.record(
            ctx,
            "auth.login",
            outcome="denied",
            subject_kind="user",
            subject_id=user.id if user else None,
            username=(username or "")[:200],
            why=why,
        )
        return LoginResult(ok=False)

    if user is None:
        _verify_password(_DUMMY_HASH, password)  # same work as for a real account
        return fail("unknown user")
    if user.locked_until is not None and user.locked_until > now:
        return fail("locked")
    if user.disabled_at is not None:
        _verify_password(user.password_hash, password)
        return fail("disabled")
    if not _verify_password(user.password_hash, password):
        return fail("password")
    if (
        require_totp
        and user.totp_confirmed_at is not None
        and not _accept_code(ctx, user, code, now)
    ):
        return fail("totp")
    if PASSWORDS.check_needs_rehash(user.password_hash):
        user.password_hash = PASSWORDS.hash(password)
    user.failed_logins, user.locked_until = 0, None
    enroll = require_totp and user.totp_confirmed_at is None
    scope = "enroll" if enroll else "full"
    ttl = ENROLL_TTL if enroll else SESSION_TTL
    token = _new_token(ctx, user, scope=scope, ttl=ttl, label="sign-in")
    audit.record(
        ctx,
        "auth.login",
        subject_kind="user",
        subject_id=user.id,
        username=user.username,
        scope=scope,
    )
    return LoginResult(
        ok=True, token=token, scope=scope, expires_at=now + ttl, totp_enrollment_required=enroll
    )


def _verify_password(stored: str, password: str) -> bool:
    try:
        return PASSWORDS.verify(stored, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Session:
    user: User
    token: ApiToken


def authenticate(session: object, raw: str | None, *, now: datetime | None = None) -> Session:
    """The user behind a bearer token; one opaque failure for every reason. Reads only (the
    caller records ``last_used_at`` with :func:`touch_token` in its own write)."""
    from sqlalchemy.orm import Session as DbSession

    assert isinstance(session, DbSession)
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        raise Unauthenticated("sign in first (missing, expired or revoked token)")
    now = now or utcnow()
    found = session.execute(
        select(ApiToken, User)
        .join(User, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(raw))
    ).first()
    if found is None:
        raise Unauthenticated("sign in first (missing, expired or revoked token)")
    token, user = found
    if token.revoked_at is not None or token.expires_at <= now or user.disabled_at is not None:
        raise Unauthenticated("sign in first (missing, expired or revoked token)")
    return Session(user=user, token=token)


def well_formed_token(raw: str | None) -> bool:
    """Whether ``raw`` has the shape of a Custody token (says nothing of its validity)."""
    return raw is not None and raw.startswith(TOKEN_PREFIX) and len(raw) <= 200


@dataclass(frozen=True)
class Authenticated:
    """A valid bearer token, and the principal of its user as the database has it now."""

    principal: Principal
    token_id: str
    scope: str
    last_used_at: datetime | None


def _auth_statement() -> Any:
    tokens, users, grants = ApiToken.__table__, User.__table__, Grant.__table__
    return (
        select(
            tokens.c.id,
            tokens.c.scope,
            tokens.c.expires_at,
            tokens.c.revoked_at,
            tokens.c.last_used_at,
            users.c.id.label("user_id"),
            users.c.username,
            users.c.role,
            users.c.client_id,
            users.c.disabled_at,
            grants.c.client_id.label("granted"),
            grants.c.expires_at.label("grant_expires_at"),
        )
        .select_from(
            tokens.join(users, users.c.id == tokens.c.user_id).outerjoin(
                grants, grants.c.user_id == users.c.id
            )
        )
        .where(tokens.c.token_hash == bindparam("token_hash"))
    )


#: token, user and grants in one statement, run on the driver (vault.db.direct): every API
#: request checks its token
_AUTH = DirectStatement(_auth_statement())


def authenticate_principal(
    conn: Connection, raw: str | None, *, now: datetime | None = None
) -> Authenticated:
    """The principal behind a bearer token, read in one statement (token, user and grants).

    Nothing is cached between requests: a revoked token, a disabled user or a removed or
    expired grant counts from the very next request. One opaque failure for every reason."""
    if not well_formed_token(raw):
        raise Unauthenticated("sign in first (missing, expired or revoked token)")
    assert raw is not None
    now = now or utcnow()
    rows = _AUTH.all(conn, {"token_hash": hash_token(raw)})
    if not rows:
        raise Unauthenticated("sign in first (missing, expired or revoked token)")
    first = rows[0]
    if first.revoked_at is not None or first.expires_at <= now or first.disabled_at is not None:
        raise Unauthenticated("sign in first (missing, expired or revoked token)")
    clients: frozenset[str] | None
    if first.role == "admin":
        clients = None
    elif first.role == "client":
        clients = frozenset([first.client_id] if first.client_id else [])
    else:
        granted = frozenset(
            r.granted
            for r in rows
            if r.granted is not None and (r.grant_expires_at is None or r.grant_expires_at > now)
        )
        # An auditor with no scope sees every client's log; a consultant sees only grants.
        clients = None if (first.role == "auditor" and not granted) else granted
    principal = Principal(
        name=f"user:{first.username}", role=first.role, user_id=first.user_id, clients=clients
    )
    return Authenticated(
        principal=principal, token_id=first.id, scope=first.scope, last_used_at=first.last_used_at
    )


def touch_due(last_used_at: datetime | None) -> bool:
    """Whether a token last used at ``last_used_at`` should have its use recorded now: at
    most one write a minute per token."""
    return last_used_at is None or utcnow() - last_used_at > timedelta(minutes=1)


def touch_token(ctx: Context, token_id: str, last_used_at: datetime | None) -> None:
    """Record a token's use - at most one write a minute per token."""
    if touch_due(last_used_at):
        _TOUCH_TOKEN.rowcount(ctx.connection(), {"token_id": token_id, "now": utcnow()})


_TOKENS = cast(Table, ApiToken.__table__)
_TOUCH_TOKEN = DirectStatement(
    update(_TOKENS)
    .where(_TOKENS.c.id == bindparam("token_id"))
    .values(last_used_at=bindparam("now"))
)


def create_api_token(ctx: Context, user: User, *, label: str, ttl: timedelta) -> str:
    if ttl > timedelta(days=365) or ttl <= timedelta(0):
        raise InvalidInput("a token lives between 1 second and 365 days", field="ttl")
    raw = _new_token(ctx, user, scope="full", ttl=ttl, label=clean_name(label, "label"))
    audit.record(ctx, "token.create", subject_kind="user", subject_id=user.id, label=label)
    return raw


def list_tokens(ctx: Context, user: User) -> list[ApiToken]:
    return list(
        ctx.session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at)
        )
    )


def revoke_token(ctx: Context, token_id: str, *, owner: User | None = None) -> ApiToken:
    """Revoke one token: your own, or anyone's as admin."""
    token = ctx.session.get(ApiToken, token_id)
    is_admin = ctx.principal.role in ("admin", "operator")
    mine = token is not None and owner is not None and token.user_id == owner.id
    if token is None or not (mine or is_admin):
        raise NotFound("no such token", field="token")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    audit.record(
        ctx, "token.revoke", subject_kind="user", subject_id=token.user_id, token_id=token.id
    )
    return token


def new_bootstrap_password() -> str:
    return pysecrets.token_urlsafe(18)
