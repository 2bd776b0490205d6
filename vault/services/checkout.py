"""Check-out and check-in: the consultant's daily path to a secret value.

A check-out needs a reason (free text and/or a ticket), opens a lease (default one hour, at most
the secret's or the vault's maximum) and is the only way a value leaves the API. An *exclusive*
secret admits one open lease: the claim is a single conditional UPDATE whose row count decides
the winner, so concurrent check-outs serialise correctly on SQLite (which ignores SELECT ... FOR
UPDATE) and on PostgreSQL alike. Every check-out records a *reveal* (rotation debt); secrets
marked rotate-after-use must come back with a new value.
"""

from __future__ import annotations

import secrets as pysecrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, NamedTuple, cast

from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import (
    Boolean,
    Connection,
    CursorResult,
    Float,
    String,
    Table,
    and_,
    any_,
    bindparam,
    exists,
    false,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from vault.db.direct import DirectStatement
from vault.db.models import Client, Lease, Reveal, Secret, SecretVersion, User, new_id, utcnow
from vault.errors import Conflict, Forbidden, InvalidInput, NotFound
from vault.services import Context, Principal, audit
from vault.services.clients import get_client
from vault.services.secrets import (
    LONGEST_LEASE_SECONDS,
    RevealedSecret,
    _check_value,
    _seal_version,
    get_secret_record,
    parse_totp_seed,
    reveal_version,
)
from vault.services.validation import name_key, optional_text

DEFAULT_LEASE = timedelta(hours=1)
MAX_LEASE = timedelta(hours=8)
_LONGEST_LEASE = timedelta(seconds=LONGEST_LEASE_SECONDS)
MIN_STRENGTH = 3  # zxcvbn score (0-4) a rotated value must reach
CHARSETS = {
    "alnum": string.ascii_letters + string.digits,
    "full": string.ascii_letters + string.digits + "!#$%&()*+,-./:;<=>?@[]^_{|}~",
    "hex": "0123456789abcdef",
    "digits": string.digits,
}
DEFAULT_LENGTH = 24
DEFAULT_CHARSET = "full"


class LeaseRecord(NamedTuple):
    """A lease as check-out and a plain check-in return it: its columns, as the ORM would load
    them. Not an ORM instance: building one costs more than the statement that stores it."""

    id: str
    secret_id: str
    client_id: str
    user_id: str | None
    holder: str
    reason: str | None
    ticket: str | None
    version: int
    exclusive: bool
    created_at: datetime
    expires_at: datetime
    released_at: datetime | None = None
    release_kind: str | None = None


@dataclass(frozen=True)
class CheckedOut:
    lease: LeaseRecord
    secret: RevealedSecret


def _user(ctx: Context) -> User | None:
    return ctx.session.get(User, ctx.principal.user_id) if ctx.principal.user_id else None


def checkout(
    ctx: Context,
    client_name: str,
    title: str,
    *,
    reason: str | None,
    ticket: str | None = None,
    ttl: timedelta | None = None,
    totp_code: str | None = None,
    now: datetime | None = None,
) -> CheckedOut:
    """Open a lease and reveal the current version.

    The hot path of the API, in Core statements compiled once and run on the driver
    (vault.db.direct; no ORM unit of work): one SELECT for client + secret + current version,
    the lease INSERT and the reveal upsert (on PostgreSQL, for a consultant, all three in one
    statement: ``_checkout_in_one``), the exclusive claim (a conditional UPDATE) when the
    secret is exclusive, and the audit event. A refused check-out writes nothing."""
    ctx.require("admin", "consultant")
    now = now or utcnow()
    reason = optional_text(reason, "reason", max_length=1000)
    ticket = optional_text(ticket, "ticket", max_length=200)
    if not reason and not ticket:
        raise InvalidInput("a check-out needs a reason or a ticket reference", field="reason")
    ttl = DEFAULT_LEASE if ttl is None else ttl
    conn = ctx.connection()
    user_id = ctx.principal.user_id
    # Held within what any policy allows, so that the sum cannot overflow: a lease longer
    # than the secret's own limit (or not positive) is refused below, once that is known.
    lease_id = new_id()
    expires_at = now + min(max(ttl, timedelta(0)), _LONGEST_LEASE)
    found, written = None, False
    if user_id is not None and conn.dialect.name == "postgresql":
        # The usual check-out in one statement: the secret found and, when the checks below
        # will pass (a client the caller sees, a lease within the secret's limit, a secret
        # that asks for no TOTP code), its lease and the rotation debt written.
        found = _CHECKOUT_IN_ONE.first(
            conn,
            {
                **_find_params(client_name, title),
                "every_client": ctx.principal.clients is None,
                "visible": list(ctx.principal.clients or ()),
                "ttl_seconds": ttl.total_seconds(),
                "default_limit": MAX_LEASE.total_seconds(),
                "id": lease_id,
                "user_id": user_id,
                "holder": ctx.actor,
                "reason": reason,
                "ticket": ticket,
                "created_at": now,
                "expires_at": expires_at,
                "reveal_id": new_id(),
                "now": now,
            },
        )
        written = found is not None and found.written
    if found is None or not ctx.principal.sees(found.client_id):
        # The lookup on its own (SQLite, the local operator), or the refusal - NotFound, as
        # for a stranger - of a secret the statement did not find or may not show.
        found = _find_current(ctx, conn, client_name, title)
    limit = timedelta(seconds=found.max_lease_seconds) if found.max_lease_seconds else MAX_LEASE
    if ttl <= timedelta(0) or ttl > limit:
        raise InvalidInput(
            f"a lease lasts between 1 second and {int(limit.total_seconds())} seconds",
            field="ttl",
        )
    if found.sensitive:
        from vault.services.users import verify_fresh_totp

        user = _user(ctx)
        if user is None or not verify_fresh_totp(ctx, user, totp_code):
            raise Forbidden("this secret is sensitive: give a fresh TOTP code", field="totp")
    lease = LeaseRecord(
        id=lease_id,
        secret_id=found.secret_id,
        client_id=found.client_id,
        user_id=user_id,
        holder=ctx.actor,
        reason=reason,
        ticket=ticket,
        version=found.current_version,
        exclusive=found.exclusive,
        created_at=now,
        expires_at=expires_at,
    )
    if not written:
        # The reveal (rotation debt) is of the version the lease checks out.
        writes = {**lease._asdict(), "reveal_id": new_id(), "now": now}
        _INSERT_LEASE.rowcount(conn, writes)
        if user_id is not None:
            _REVEAL.rowcount(conn, writes)
    if found.exclusive:
        # After the writes above: a refusal rolls this unit of work back, lease and debt with it.
        claimed = _CLAIM.rowcount(
            conn,
            {
                "secret_id": found.secret_id,
                "now": now,
                "lease_id": lease.id,
                "until": lease.expires_at,
            },
        )
        if claimed != 1:
            holder = _HOLDER.first(conn, {"secret_id": found.secret_id})
            who = holder.holder if holder else "another user"
            until = holder.expires_at.isoformat(timespec="seconds") if holder else "soon"
            raise Conflict(f"{found.title!r} is checked out by {who} until {until}", field="title")
    client = _client_ref(found)
    secret = _secret_ref(found)
    revealed = reveal_version(ctx.keyring().cipher(client), client, secret, _version_ref(found))
    if found.rotate_after_use and not found.needs_rotation:
        _MARK_ROTATION.rowcount(conn, {"secret_id": found.secret_id})
    audit.record(
        ctx,
        "secret.checkout",
        client_id=found.client_id,
        subject_kind="secret",
        subject_id=found.secret_id,
        title=found.title,
        version=found.version,
        lease_id=lease.id,
        reason=reason,
        ticket=ticket,
        expires_at=lease.expires_at.isoformat(timespec="seconds"),
    )
    return CheckedOut(lease=lease, secret=revealed)


_CLIENTS = cast(Table, Client.__table__)
_SECRETS = cast(Table, Secret.__table__)
_VERSIONS = cast(Table, SecretVersion.__table__)
_LEASES = cast(Table, Lease.__table__)
_REVEALS = cast(Table, Reveal.__table__)
_LEASE_COLUMNS = (
    "id",
    "secret_id",
    "client_id",
    "user_id",
    "holder",
    "reason",
    "ticket",
    "version",
    "exclusive",
    "created_at",
    "expires_at",
)

#: client + secret + its current version, by id or by (normalised) name - one statement
_FIND_CURRENT = DirectStatement(
    select(
        _CLIENTS.c.id.label("client_id"),
        _CLIENTS.c.name.label("client_name"),
        _CLIENTS.c.wrapped_key,
        _CLIENTS.c.key_mac,
        _SECRETS.c.id.label("secret_id"),
        _SECRETS.c.title,
        _SECRETS.c.kind,
        _SECRETS.c.url,
        _SECRETS.c.current_version,
        _SECRETS.c.exclusive,
        _SECRETS.c.sensitive,
        _SECRETS.c.rotate_after_use,
        _SECRETS.c.needs_rotation,
        _SECRETS.c.max_lease_seconds,
        _VERSIONS.c.version,
        _VERSIONS.c.value_ct,
        _VERSIONS.c.username_ct,
        _VERSIONS.c.notes_ct,
        _VERSIONS.c.created_at,
        _VERSIONS.c.created_by,
    )
    .select_from(
        _CLIENTS.join(_SECRETS, _SECRETS.c.client_id == _CLIENTS.c.id).join(
            _VERSIONS,
            (_VERSIONS.c.secret_id == _SECRETS.c.id)
            & (_VERSIONS.c.version == _SECRETS.c.current_version),
        )
    )
    .where(
        or_(_CLIENTS.c.id == bindparam("client"), _CLIENTS.c.name_key == bindparam("client_key")),
        or_(_SECRETS.c.id == bindparam("secret"), _SECRETS.c.title_key == bindparam("title_key")),
    )
)
_INSERT_LEASE = DirectStatement(
    insert(_LEASES).values({name: bindparam(name) for name in _LEASE_COLUMNS})
)
_CLAIM = DirectStatement(
    update(_SECRETS)
    .where(
        _SECRETS.c.id == bindparam("secret_id"),
        (_SECRETS.c.held_by_lease_id.is_(None)) | (_SECRETS.c.held_until <= bindparam("now")),
    )
    .values(held_by_lease_id=bindparam("lease_id"), held_until=bindparam("until"))
)
_HOLDER = DirectStatement(
    select(_LEASES.c.holder, _LEASES.c.expires_at)
    .select_from(_SECRETS.join(_LEASES, _LEASES.c.id == _SECRETS.c.held_by_lease_id))
    .where(_SECRETS.c.id == bindparam("secret_id"))
)
_MARK_ROTATION = DirectStatement(
    update(_SECRETS).where(_SECRETS.c.id == bindparam("secret_id")).values(needs_rotation=True)
)


def _reveal_upsert(dialect: str, found: Any = None, where: Any = None) -> Any:
    """Rotation debt: one row per (user, secret, version), its last sighting updated in place -
    a single INSERT ... ON CONFLICT on both engines. With ``found`` (a WITH of
    ``_FIND_CURRENT``), the secret and version are that row's current ones, if ``where``."""
    from sqlalchemy.dialects import postgresql, sqlite

    module: Any = postgresql if dialect == "postgresql" else sqlite
    values = {
        "id": bindparam("reveal_id", type_=_REVEALS.c.id.type),
        "user_id": bindparam("user_id", type_=_REVEALS.c.user_id.type),
        "secret_id": bindparam("secret_id"),
        "version": bindparam("version"),
        "first_at": bindparam("now", type_=_REVEALS.c.first_at.type),
        "last_at": bindparam("now", type_=_REVEALS.c.last_at.type),
    }
    if found is None:
        base = module.insert(_REVEALS).values(values)
    else:
        values["secret_id"], values["version"] = found.c.secret_id, found.c.current_version
        base = module.insert(_REVEALS).from_select(
            list(values), select(*values.values()).select_from(found).where(where)
        )
    return base.on_conflict_do_update(
        index_elements=[_REVEALS.c.user_id, _REVEALS.c.secret_id, _REVEALS.c.version],
        set_={"last_at": base.excluded.last_at},
    )


_REVEAL = DirectStatement(_reveal_upsert)


def _checkout_in_one(dialect: str) -> Any:
    """PostgreSQL: ``_FIND_CURRENT`` in a WITH and, for the row it finds, the lease INSERT and
    the reveal upsert in WITHs too (PostgreSQL runs those whether or not anything reads them):
    a check-out in one statement, one round trip, on the path every consultant takes.

    The two writes happen only if the check-out's own checks will pass: the client is one the
    caller sees, the lease is within the secret's limit, and the secret is not sensitive (its
    TOTP code is checked first, then the writes follow as separate statements). So a refused
    check-out writes nothing, even for a caller that goes on in the same transaction. Returns
    the row found, with ``written``; no row, nothing written, when there is no such secret."""
    assert dialect == "postgresql", "SQLite has no INSERT inside WITH"
    found: Any = cast(Any, _FIND_CURRENT.statement).cte("found")
    ttl = bindparam("ttl_seconds", type_=Float)
    allowed = and_(
        or_(
            bindparam("every_client", type_=Boolean),
            found.c.client_id == any_(bindparam("visible", type_=ARRAY(String))),
        ),
        ttl > 0,
        ttl <= func.coalesce(found.c.max_lease_seconds, bindparam("default_limit", type_=Float)),
        found.c.sensitive.is_(False),
    )
    from_found = {
        "secret_id": found.c.secret_id,
        "client_id": found.c.client_id,
        "version": found.c.current_version,
        "exclusive": found.c.exclusive,
    }
    lease_row = [
        from_found[name] if name in from_found else bindparam(name, type_=_LEASES.c[name].type)
        for name in _LEASE_COLUMNS
    ]
    new_lease = (
        insert(_LEASES)
        .from_select(list(_LEASE_COLUMNS), select(*lease_row).select_from(found).where(allowed))
        .returning(_LEASES.c.id)
        .cte("new_lease")
    )
    reveal = _reveal_upsert(dialect, found, allowed).cte("reveal")
    written = exists(select(new_lease.c.id)).label("written")
    return select(found, written).add_cte(new_lease, reveal)


_CHECKOUT_IN_ONE = DirectStatement(_checkout_in_one)


def _client_ref(found: Any) -> Client:
    """What the key ring needs of the client (id, name, wrapped key, MAC), without an ORM
    instance."""
    return cast(
        Client,
        SimpleNamespace(
            id=found.client_id,
            name=found.client_name,
            wrapped_key=found.wrapped_key,
            key_mac=found.key_mac,
        ),
    )


def _secret_ref(found: Any) -> Secret:
    """What a revealed secret shows of its record (id, title, kind, url)."""
    return cast(
        Secret,
        SimpleNamespace(id=found.secret_id, title=found.title, kind=found.kind, url=found.url),
    )


def _version_ref(found: Any) -> SecretVersion:
    return cast(SecretVersion, found)  # the row carries the version's columns by name


def _find_params(client_ref: str, secret_ref: str) -> dict[str, str]:
    """``_FIND_CURRENT``'s parameters: the client and the secret, each by id or by name."""
    return {
        "client": client_ref,
        "client_key": name_key(client_ref),
        "secret": secret_ref,
        "title_key": name_key(secret_ref),
    }


def _find_current(ctx: Context, conn: Connection, client_ref: str, secret_ref: str) -> Any:
    """Client, secret and its current version in one row (the check-out hot path)."""
    found = _FIND_CURRENT.first(conn, _find_params(client_ref, secret_ref))
    if found is None or not ctx.principal.sees(found.client_id):
        client = get_client(ctx, client_ref)  # NotFound for unknown or out-of-scope clients
        get_secret_record(ctx, client, secret_ref)  # NotFound for an unknown secret
        raise NotFound(f"no secret {secret_ref!r}", field="title")  # pragma: no cover
    return found


def _holding_lease_id(ctx: Context, secret_id: str) -> str | None:
    return ctx.session.scalar(select(Secret.held_by_lease_id).where(Secret.id == secret_id))


def _open_lease(ctx: Context, lease_id: str) -> tuple[Lease, Secret]:
    # FOR UPDATE (PostgreSQL): two concurrent check-ins of one lease must not both release it.
    lease = ctx.session.get(Lease, lease_id, with_for_update=True, populate_existing=True)
    if lease is None or not ctx.principal.sees(lease.client_id):
        raise NotFound("no such lease", field="lease")
    if lease.released_at is not None:
        raise Conflict(f"the lease was already ended ({lease.release_kind})", field="lease")
    secret = ctx.session.get(Secret, lease.secret_id)
    assert secret is not None
    return lease, secret


def checkin(
    ctx: Context,
    lease_id: str,
    *,
    new_value: str | None = None,
    generate: bool = False,
    now: datetime | None = None,
    strength_checked_for: str | None = None,
) -> tuple[Lease | LeaseRecord, int | None, str | None]:
    """End a lease. Returns (lease, new version or None, generated value or None).

    A rotate-after-use secret must come back with a new value (given or generated); a given
    value must be strong (zxcvbn score >= 3). ``strength_checked_for`` is the secret title
    :func:`check_new_value` already checked ``new_value`` against, before this unit of work:
    unless the secret has been renamed since, it is not checked again here."""
    ctx.require("admin", "consultant")
    now = now or utcnow()
    if new_value is None and not generate:
        fast = _plain_checkin(ctx, lease_id, now)
        if fast is not None:
            return fast, None, None
    lease, secret = _open_lease(ctx, lease_id)
    if lease.user_id != ctx.principal.user_id:
        raise NotFound("no such lease", field="lease")  # other people's leases do not exist
    generated = None
    if generate:
        if new_value is not None:
            raise InvalidInput(
                "give a new value or ask for one to be generated, not both", field="value"
            )
        generated = new_value = generate_value(secret)
    version = None
    if new_value is not None:
        if generated is None and strength_checked_for != secret.title:
            check_strength(new_value, secret.title)
        version = _rotate(ctx, secret, new_value)
    elif secret.rotate_after_use:
        raise InvalidInput(
            f"{secret.title!r} must be rotated at check-in: give a new value "
            "or ask for a generated one",
            field="value",
        )
    _release(ctx, lease, secret, "checkin", now)
    audit.record(
        ctx,
        "secret.checkin",
        client_id=lease.client_id,
        subject_kind="secret",
        subject_id=secret.id,
        title=secret.title,
        lease_id=lease.id,
        rotated_to=version,
    )
    return lease, version, generated


# Ends a plain open lease of the caller's in one statement: open, theirs, on a secret that
# needs no rotation; it returns the lease and its secret's title. Conditional, so two
# concurrent check-ins end a lease once.
_END_OWN_LEASE = DirectStatement(
    update(_LEASES)
    .where(
        _LEASES.c.id == bindparam("lease_id"),
        # Both conditions below are written so that no index but the primary key's can serve
        # them. PostgreSQL plans a prepared statement once (psycopg prepares it on its fifth
        # run); in a new vault that is while the leases table is nearly empty and has no
        # statistics, and then any index looked as cheap: with `released_at IS NULL` the
        # index of open leases (its condition), with `user_id = ...` the user's leases. The
        # plan stayed as the table grew - every check-in scanned the user's leases, or every
        # open and recently ended one, until autovacuum's first ANALYZE (125 to 340 us a
        # check-in within a minute's load). `(... IS NULL) IS TRUE` and IS NOT DISTINCT FROM
        # mean the same here (IS NULL is never NULL; the caller's user_id is never NULL on
        # this path) but prove nothing about an index's condition or key.
        _LEASES.c.released_at.is_(None).is_(true()),
        _LEASES.c.user_id.is_not_distinct_from(bindparam("user_id")),
        exists().where(
            _SECRETS.c.id == _LEASES.c.secret_id, _SECRETS.c.rotate_after_use.is_(false())
        ),
    )
    .values(released_at=bindparam("released_at"), release_kind="checkin")
    .returning(
        *(_LEASES.c[name] for name in _LEASE_COLUMNS),
        # Written out: SQLAlchemy renders the columns of a RETURNING clause unqualified on
        # SQLite, a correlated subquery's too.
        literal_column(
            "(SELECT title_of.title FROM secrets AS title_of WHERE title_of.id = leases.secret_id)",
            String,
        ).label("title"),
    )
)
_RELEASE_HOLD = DirectStatement(
    update(_SECRETS)
    .where(
        _SECRETS.c.id == bindparam("secret_id"),
        _SECRETS.c.held_by_lease_id == bindparam("lease_id"),
    )
    .values(held_by_lease_id=None, held_until=None)
)


def _plain_checkin(ctx: Context, lease_id: str, now: datetime) -> LeaseRecord | None:
    """Check-in without a new value, in Core statements run on the driver (vault.db.direct):
    the conditional UPDATE that ends the caller's open lease on a secret that needs no
    rotation (one round trip: the check-in's only one, unless the lease held its secret
    exclusively), and the audit event. None when the lease is not such a lease: the general
    path then answers (with the right refusal)."""
    if ctx.principal.user_id is None:
        return None  # the local operator's leases have no user: the general path
    conn = ctx.connection()
    row = _END_OWN_LEASE.first(
        conn, {"lease_id": lease_id, "user_id": ctx.principal.user_id, "released_at": now}
    )
    if row is None:
        return None
    if not ctx.principal.sees(row.client_id):
        # A grant removed since the check-out: the lease is no longer the caller's to see. The
        # refusal rolls this unit of work back, the UPDATE with it.
        raise NotFound("no such lease", field="lease")
    if row.exclusive:
        _RELEASE_HOLD.rowcount(conn, {"secret_id": row.secret_id, "lease_id": lease_id})
    lease = LeaseRecord(
        **{name: getattr(row, name) for name in _LEASE_COLUMNS},
        released_at=now,
        release_kind="checkin",
    )
    audit.record(
        ctx,
        "secret.checkin",
        client_id=row.client_id,
        subject_kind="secret",
        subject_id=row.secret_id,
        title=row.title,
        lease_id=lease_id,
        rotated_to=None,
    )
    return lease


def _rotate(ctx: Context, secret: Secret, value: str) -> int:
    from vault.db.models import Client

    client = ctx.session.get(Client, secret.client_id)
    assert client is not None
    _check_value(secret.kind, value)
    ctx.session.refresh(secret, with_for_update=True)  # number versions one after the other
    cipher = ctx.sealing_cipher(client)
    current = ctx.session.scalars(
        select(SecretVersion).where(
            SecretVersion.secret_id == secret.id, SecretVersion.version == secret.current_version
        )
    ).one()
    old = reveal_version(cipher, client, secret, current)
    version = secret.current_version + 1
    ctx.session.add(
        _seal_version(cipher, client, secret, version, ctx.actor, value, old.username, old.notes)
    )
    secret.current_version = version
    secret.needs_rotation = False
    return version


def _release(ctx: Context, lease: Lease, secret: Secret, kind: str, now: datetime) -> None:
    lease.released_at, lease.release_kind = now, kind
    if lease.exclusive:
        ctx.session.execute(
            update(Secret)
            .where(Secret.id == secret.id, Secret.held_by_lease_id == lease.id)
            .values(held_by_lease_id=None, held_until=None)
            .execution_options(synchronize_session=False)
        )


def force_release(ctx: Context, lease_id: str, *, now: datetime | None = None) -> Lease:
    ctx.require("admin")
    now = now or utcnow()
    lease, secret = _open_lease(ctx, lease_id)
    _release(ctx, lease, secret, "forced", now)
    audit.record(
        ctx,
        "lease.force_release",
        client_id=lease.client_id,
        subject_kind="secret",
        subject_id=secret.id,
        lease_id=lease.id,
        holder=lease.holder,
    )
    return lease


def expire_leases(ctx: Context, *, now: datetime | None = None) -> int:
    """Mark leases past their expiry as ended (exclusive holds lapse by themselves anyway)."""
    now = now or utcnow()
    rows = list(ctx.session.scalars(open_leases(expired_by=now)))
    ended = 0
    for lease in rows:
        # Conditional: when several server processes sweep at once, each lease ends once.
        claimed = cast(
            CursorResult[Any],
            ctx.session.execute(
                update(Lease)
                .where(Lease.id == lease.id, Lease.released_at.is_(None))
                .values(released_at=now, release_kind="expired")
                .execution_options(synchronize_session=False)
            ),
        ).rowcount
        if claimed != 1:
            continue
        ended += 1
        ctx.session.execute(
            update(Secret)
            .where(Secret.id == lease.secret_id, Secret.held_by_lease_id == lease.id)
            .values(held_by_lease_id=None, held_until=None)
            .execution_options(synchronize_session=False)
        )
        audit.record(
            ctx,
            "lease.expire",
            client_id=lease.client_id,
            subject_kind="secret",
            subject_id=lease.secret_id,
            lease_id=lease.id,
            holder=lease.holder,
        )
    return ended


def list_leases(
    ctx: Context, *, mine: bool = False, overdue: bool = False, now: datetime | None = None
) -> list[Lease]:
    ctx.require("admin", "consultant")
    now = now or utcnow()
    stmt = open_leases(
        expired_by=now if overdue else None,
        user_id=ctx.principal.user_id if mine or ctx.principal.role == "consultant" else None,
    )
    return [lease for lease in ctx.session.scalars(stmt) if ctx.principal.sees(lease.client_id)]


def open_leases(*, expired_by: datetime | None = None, user_id: str | None = None) -> Any:
    """Open leases by expiry, those expired by ``expired_by`` or held by ``user_id`` if given.

    Written so that both engines read them from the index of open leases
    (``ix_leases_open_expiry``, whose condition ``released_at IS NULL`` the query repeats): the
    cost follows the leases open now, not every lease ever ended."""
    stmt = select(Lease).where(Lease.released_at.is_(None)).order_by(Lease.expires_at)
    if expired_by is not None:
        stmt = stmt.where(Lease.expires_at <= expired_by)
    if user_id is not None:
        stmt = stmt.where(Lease.user_id == user_id)
    return stmt


def awaiting_rotation(ctx: Context) -> list[Secret]:
    ctx.require("admin", "consultant")
    rows = ctx.session.scalars(
        select(Secret).where(Secret.needs_rotation.is_(True)).order_by(Secret.title_key)
    )
    return [s for s in rows if ctx.principal.sees(s.client_id)]


def totp_code(
    ctx: Context, client_name: str, title: str, *, now: datetime | None = None
) -> tuple[str, int]:
    """The current code of a stored TOTP seed, and seconds it stays valid; never the seed.

    cryptography's RFC 6238 implementation, because vendors still issue 80-bit seeds that
    pyotp refuses (``enforce_key_length=False`` accepts them)."""
    ctx.require("admin", "consultant")
    now = now or utcnow()
    client = get_client(ctx, client_name)
    secret = get_secret_record(ctx, client, title)
    if secret.kind != "totp":
        raise InvalidInput(f"{secret.title!r} is not a TOTP seed", field="title")
    row = ctx.session.scalars(
        select(SecretVersion).where(
            SecretVersion.secret_id == secret.id, SecretVersion.version == secret.current_version
        )
    ).one()
    stored = reveal_version(ctx.keyring().cipher(client), client, secret, row).value
    seed, digits, interval, algorithm = parse_totp_seed(stored)
    totp = TOTP(seed, digits, algorithm, interval, enforce_key_length=False)
    code = totp.generate(int(now.timestamp())).decode("ascii")
    remaining = interval - int(now.timestamp()) % interval
    audit.record(
        ctx,
        "secret.totp",
        client_id=client.id,
        subject_kind="secret",
        subject_id=secret.id,
        title=secret.title,
    )
    return code, remaining


def offboarding(ctx: Context, username: str) -> list[tuple[Secret, Reveal]]:
    """What this user saw that has not been rotated since: the secrets to rotate when they go."""
    from vault.services.users import get_user

    ctx.require("admin")
    user = get_user(ctx, username)
    rows = ctx.session.execute(
        select(Secret, Reveal)
        .join(Reveal, Reveal.secret_id == Secret.id)
        .where(Reveal.user_id == user.id, Reveal.version == Secret.current_version)
        .order_by(Secret.client_id, Secret.title_key)
    )
    audit.record(
        ctx, "report.offboarding", subject_kind="user", subject_id=user.id, username=user.username
    )
    return [(s, r) for s, r in rows]


def generate_value(secret: Secret) -> str:
    length = secret.generate_length or DEFAULT_LENGTH
    alphabet = CHARSETS[secret.generate_charset or DEFAULT_CHARSET]
    return "".join(pysecrets.choice(alphabet) for _ in range(length))


#: the title of the secret an open lease of the caller's holds (and its client, for the scope)
_OWN_LEASE_TITLE = DirectStatement(
    select(_SECRETS.c.title, _LEASES.c.client_id)
    .select_from(_LEASES.join(_SECRETS, _SECRETS.c.id == _LEASES.c.secret_id))
    .where(
        _LEASES.c.id == bindparam("lease_id"),
        _LEASES.c.user_id == bindparam("user_id"),
        _LEASES.c.released_at.is_(None),
    )
)


def check_new_value(
    conn: Connection, principal: Principal, lease_id: str, value: str
) -> str | None:
    """Check a check-in's new value for strength before the check-in's unit of work, on a
    read connection: zxcvbn takes up to 20 ms for a long value, and inside the unit that time
    would hold every write of the process (and, on SQLite, the database's write lock).

    Returns the title it was checked against (zxcvbn counts the title as a guessable word);
    raises InvalidInput if the value is weak. None when ``lease_id`` is not an open lease of
    the caller's: nothing is said about it here, and the check-in itself answers."""
    if principal.user_id is None:
        return None
    row = _OWN_LEASE_TITLE.first(conn, {"lease_id": lease_id, "user_id": principal.user_id})
    if row is None or not principal.sees(row.client_id):
        return None
    check_strength(value, row.title)
    return str(row.title)


def check_strength(value: str, title: str) -> None:
    """Refuse a guessable value; the secret's ``title`` counts as a guessable word."""
    from zxcvbn import zxcvbn

    # zxcvbn is quadratic in length; a long random value is strong by construction.
    if len(value) >= 64:
        return
    result = zxcvbn(value[:64], user_inputs=[title])
    if result["score"] < MIN_STRENGTH:
        raise InvalidInput(
            "the new value is too weak (guessable); use a generated one", field="value"
        )
