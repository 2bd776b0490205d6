"""Users, grants, sign-in with TOTP, lockout and tokens, on each engine."""

from __future__ import annotations

import io
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from tests.conftest import Vault
from vault.db.models import AuditEvent, User, utcnow
from vault.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from vault.services import Principal, clients, secrets, users

PW = "a long enough password"


def _seed(vault: Vault, user: str) -> str:
    """Read back a user's TOTP seed the way an authenticator app would have it."""
    from vault.services.users import _totp_location

    with vault.store.session() as s:
        row = s.scalars(select(User).where(User.username == user)).one()
        return vault.keys.vault_cipher.open_text(row.totp_ct, _totp_location(row))


def _code(seed: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(seed).at(utcnow().timestamp() + 30 * offset_steps)


def _enrolled(vault: Vault, name: str, role: str = "consultant", **kw: str) -> str:
    with vault.ctx() as ctx:
        user = users.create_user(ctx, name, role=role, password=PW, **kw)
        users.begin_totp_enrollment(ctx, user)
    seed = _seed(vault, name)
    with vault.ctx() as ctx:
        users.confirm_totp(ctx, users.get_user(ctx, name), _code(seed, -1))
    return seed


def _login(vault: Vault, name: str, password: str, code: str | None) -> users.LoginResult:
    with vault.ctx(actor="anonymous") as ctx:
        return users.login(ctx, name, password, code)


def test_first_sign_in_gives_enrolment_token_only(vault: Vault) -> None:
    with vault.ctx() as ctx:
        users.create_user(ctx, "alice", role="consultant", password=PW)
    result = _login(vault, "alice", PW, None)
    assert result.ok and result.scope == "enroll" and result.totp_enrollment_required


def test_sign_in_with_totp_and_replay_refused(vault: Vault) -> None:
    seed = _enrolled(vault, "alice")
    code = _code(seed)
    assert _login(vault, "alice", PW, code).scope == "full"
    assert not _login(vault, "alice", PW, code).ok  # the same code twice
    assert not _login(vault, "alice", PW, None).ok
    assert not _login(vault, "alice", "wrong password!!", _code(seed, 1)).ok


def test_failures_lock_the_account_and_are_audited(vault: Vault) -> None:
    seed = _enrolled(vault, "alice")
    for _ in range(users.LOCK_AFTER):
        assert not _login(vault, "alice", "not the password", None).ok
    # locked: even the right password and a fresh code are refused, with the same answer
    assert not _login(vault, "alice", PW, _code(seed, 1)).ok
    with vault.store.session() as s:
        denied = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "auth.login", AuditEvent.outcome == "denied"
            )
        ).all()
        user = s.scalars(select(User).where(User.username == "alice")).one()
    assert len(denied) == users.LOCK_AFTER + 1
    assert denied[-1].detail["why"] == "locked" and user.locked_until is not None
    assert all(PW not in str(e.detail) for e in denied)


def test_unknown_user_fails_like_a_wrong_password(vault: Vault) -> None:
    assert _login(vault, "nobody", PW, None) == users.LoginResult(ok=False)


def test_tokens_expire_and_revoke(vault: Vault) -> None:
    seed = _enrolled(vault, "alice")
    token = _login(vault, "alice", PW, _code(seed)).token
    with vault.store.session() as s:
        session = users.authenticate(s, token)
        assert session.user.username == "alice"
        with pytest.raises(Unauthenticated):
            users.authenticate(s, token, now=utcnow() + users.SESSION_TTL + timedelta(1))
        with pytest.raises(Unauthenticated):
            users.authenticate(s, "cst_forged")
        token_id = session.token.id
    with vault.ctx() as ctx:
        user = users.get_user(ctx, "alice")
        users.revoke_token(ctx, token_id, owner=user)
    with vault.store.session() as s, pytest.raises(Unauthenticated):
        users.authenticate(s, token)


def test_disabling_ends_sessions(vault: Vault) -> None:
    seed = _enrolled(vault, "alice")
    token = _login(vault, "alice", PW, _code(seed)).token
    with vault.ctx() as ctx:
        users.set_disabled(ctx, "alice", True)
    with vault.store.session() as s, pytest.raises(Unauthenticated):
        users.authenticate(s, token)


def test_principal_scope_follows_grants(vault: Vault) -> None:
    with vault.ctx() as ctx:
        a = clients.add_client(ctx, "Acme")
        b = clients.add_client(ctx, "Globex")
        users.create_user(ctx, "carol", role="consultant", password=PW)
        users.create_user(ctx, "dan", role="client", password=PW, client_name="Acme")
        users.create_user(ctx, "eve", role="auditor", password=PW)
        users.grant(ctx, "carol", "Acme")
        users.grant(ctx, "carol", "Globex", expires_at=utcnow() + timedelta(days=1))
    with vault.store.session() as s:

        def principal(name: str) -> Principal:
            return users.principal_for(
                s, s.scalars(select(User).where(User.username == name)).one()
            )

        assert principal("carol").clients == {a.id, b.id}
        assert principal("dan").clients == {a.id}
        assert principal("eve").clients is None
        later = utcnow() + timedelta(days=2)
        carol = s.scalars(select(User).where(User.username == "carol")).one()
        assert users.principal_for(s, carol, now=later).clients == {a.id}
    with vault.ctx() as ctx:
        users.revoke_grant(ctx, "carol", "Acme")
    with vault.store.session() as s:
        assert principal("carol").clients == {b.id}


def test_scope_and_roles_in_services(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        clients.add_client(ctx, "Globex")
        secrets.add_secret(ctx, "Globex", title="Router", value="x")
    outsider = Principal(name="user:carol", role="consultant", user_id="u1", clients=frozenset())
    with vault.store.context(outsider, vault.keys) as ctx:
        with pytest.raises(NotFound):  # not 403: existence does not leak
            secrets.list_secrets(ctx, "Globex")
        assert clients.list_clients(ctx) == []
        with pytest.raises(Forbidden):
            clients.add_client(ctx, "Initech")
    auditor = Principal(name="user:eve", role="auditor", user_id="u2")
    with vault.store.context(auditor, vault.keys) as ctx, pytest.raises(Forbidden):
        secrets.list_secrets(ctx, "Globex")


def test_user_validation(vault: Vault) -> None:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        users.create_user(ctx, "alice", role="consultant", password=PW)
    cases = [
        (Conflict, dict(username="ALICE", role="consultant", password=PW)),
        (InvalidInput, dict(username="bob", role="wizard", password=PW)),
        (InvalidInput, dict(username="bob", role="consultant", password="short")),
        (InvalidInput, dict(username="bob", role="client", password=PW)),
        (InvalidInput, dict(username="bob", role="admin", password=PW, client_name="Acme")),
    ]
    for exc, kwargs in cases:
        with pytest.raises(exc), vault.ctx() as ctx:
            users.create_user(ctx, **kwargs)  # type: ignore[arg-type]


def test_the_longest_username_allowed_fits_every_column_its_actions_are_recorded_in(
    vault: Vault,
) -> None:
    """A user's actions are recorded as ``user:<username>`` (the log's actor, a lease's
    holder, a version's author): with the longest username allowed, that must still fit those
    columns (PostgreSQL refuses a longer value), and the log verifies. One character more is
    refused up front, with the field named."""
    from vault.db.models import Lease
    from vault.log.verify import verify_export
    from vault.services import checkout

    longest = "u" * users.MAX_USERNAME
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        secrets.add_secret(ctx, "Acme", title="Router", value="r0uter-pass")
        users.create_user(ctx, longest, role="admin", password=PW)
    with pytest.raises(InvalidInput, match="username") as refused, vault.ctx() as ctx:
        users.create_user(ctx, longest + "u", role="admin", password=PW)
    assert refused.value.field == "username"
    with vault.store.session() as s:
        admin = users.principal_for(
            s, s.scalars(select(User).where(User.username == longest)).one()
        )
    with vault.store.context(admin, vault.keys) as ctx:
        out = checkout.checkout(ctx, "Acme", "Router", reason="long name")
    with vault.store.context(admin, vault.keys) as ctx:
        secrets.update_secret(ctx, "Acme", "Router", value="n3w-r0uter-pass")
    with vault.store.session() as s:
        assert s.get(Lease, out.lease.id).holder == f"user:{longest}"
        actors = s.scalars(select(AuditEvent.actor).where(AuditEvent.actor.like("user:u%")))
        assert set(actors) == {f"user:{longest}"}
    from tests.vault.test_auditlog import _export, _key

    report = verify_export(io.BytesIO(_export(vault)), key=_key(vault))
    assert report.events == report.size
