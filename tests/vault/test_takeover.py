"""Client-triggered takeover: TOTP, notice, no veto, grants end, the client manages access."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.conftest import Vault
from tests.vault.test_users import PW, _code, _enrolled
from vault.db.models import AuditEvent, Grant, User, utcnow
from vault.errors import Conflict, Forbidden, InvalidInput, NotFound
from vault.services import Principal, takeover, users


def _as(vault: Vault, name: str) -> Principal:
    with vault.store.session() as s:
        return users.principal_for(s, s.scalars(select(User).where(User.username == name)).one())


@pytest.fixture
def acme(vault: Vault) -> str:
    from vault.services import clients

    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        clients.add_client(ctx, "Globex")
        users.create_user(ctx, "carol", role="consultant", password=PW)
        users.grant(ctx, "carol", "Acme")
        users.create_user(ctx, "aud", role="auditor", password=PW)
        users.grant(ctx, "aud", "Acme")
    return _enrolled(vault, "ann", role="client", client_name="Acme")


def test_takeover_runs_its_course(vault: Vault, acme: str) -> None:
    ann = _as(vault, "ann")
    with vault.store.context(ann, vault.keys) as ctx, pytest.raises(Forbidden):
        takeover.start(ctx, "Acme", totp_code="000000")
    with vault.store.context(ann, vault.keys) as ctx:
        started = takeover.start(ctx, "Acme", totp_code=_code(acme))
    assert started.state == "notice-period" and started.notice_days == 7
    assert started.effective_at is not None and started.requested_at is not None
    assert started.effective_at - started.requested_at == timedelta(days=7)
    with vault.ctx() as ctx:
        notices = takeover.list_notices(ctx)
        assert len(notices) == 1 and "ann" in notices[0].message
        # the consultancy has no veto: an admin cannot cancel, and nothing completes early
        assert takeover.complete_due(ctx) == 0
    admin = Principal(name="user:boss", role="admin")
    with vault.store.context(admin, vault.keys) as ctx, pytest.raises(Forbidden):
        takeover.cancel(ctx, "Acme")
    with vault.store.context(ann, vault.keys) as ctx, pytest.raises(Conflict):
        takeover.start(ctx, "Acme", totp_code=_code(acme, 1))
    # before completion a contact cannot manage access yet
    with vault.store.context(ann, vault.keys) as ctx, pytest.raises(Forbidden):
        users.grant(ctx, "carol", "Acme")

    with vault.ctx() as ctx:
        assert takeover.complete_due(ctx, now=utcnow() + timedelta(days=8)) == 1
    with vault.store.session() as s:
        grants = {(g.user_id, g.by_client) for g in s.scalars(select(Grant))}
        carol = s.scalars(select(User).where(User.username == "carol")).one()
        aud = s.scalars(select(User).where(User.username == "aud")).one()
        assert (carol.id, False) not in grants  # the consultant's grant ended
        assert (aud.id, False) in grants  # the auditor keeps its scope
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    assert (
        actions[-3:] == ["client.takeover.start", "grant.remove", "client.takeover.complete"][-3:]
    )
    assert "client.takeover.start" in actions and "client.takeover.complete" in actions
    assert _as(vault, "carol").clients == frozenset()

    # now the client manages its own access
    with vault.store.context(ann, vault.keys) as ctx:
        users.grant(ctx, "carol", "Acme")
        users.create_user(ctx, "bob", role="client", password=PW, client_name="Acme")
    with vault.store.context(ann, vault.keys) as ctx, pytest.raises(Forbidden):
        users.create_user(ctx, "mallory", role="admin", password=PW)
    with vault.store.context(ann, vault.keys) as ctx, pytest.raises(NotFound):
        users.grant(ctx, "carol", "Globex")
    with vault.store.session() as s:
        regrant = s.scalars(select(Grant).where(Grant.user_id == carol.id)).one()
        assert regrant.by_client
    with vault.store.context(ann, vault.keys) as ctx:
        users.revoke_grant(ctx, "carol", "Acme")


def test_zero_notice_completes_at_once_and_cancel_before(vault: Vault, acme: str) -> None:
    ann = _as(vault, "ann")
    with vault.ctx() as ctx:
        with pytest.raises(InvalidInput):
            takeover.set_notice_days(ctx, "Acme", -1)
        takeover.set_notice_days(ctx, "Globex", 0)
        takeover.set_notice_days(ctx, "Acme", 3)
    with vault.store.context(ann, vault.keys) as ctx:
        assert takeover.start(ctx, "Acme", totp_code=_code(acme)).notice_days == 3
    with vault.ctx() as ctx, pytest.raises(Conflict):
        takeover.set_notice_days(ctx, "Acme", 0)
    with vault.store.context(ann, vault.keys) as ctx:
        assert takeover.cancel(ctx, "Acme").state == "managed"
    admin = Principal(name="user:boss", role="admin")
    with vault.store.context(admin, vault.keys) as ctx:
        done = takeover.start(ctx, "Globex")  # a voluntary hand-over by the consultancy
    assert done.state == "owned-by-client"
    with vault.store.context(ann, vault.keys) as ctx, pytest.raises(NotFound):
        takeover.start(ctx, "Globex", totp_code=_code(acme, 1))
