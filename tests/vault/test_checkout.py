"""Check-out and check-in on each engine: leases, exclusivity, rotation, TOTP codes, debt."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import select

from tests.conftest import Vault
from vault.db.models import AuditEvent, Lease, Reveal, User, utcnow
from vault.errors import Conflict, Forbidden, InvalidInput, NotFound
from vault.services import Principal, checkout, clients, secrets, users

PW = "a long enough password"


@pytest.fixture
def people(vault: Vault) -> dict[str, Principal]:
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Acme")
        for name in ("carol", "dave"):
            users.create_user(ctx, name, role="consultant", password=PW)
            users.grant(ctx, name, "Acme")
        secrets.add_secret(ctx, "Acme", title="Router", value="r0uter-pass")
        secrets.add_secret(
            ctx,
            "Acme",
            title="Domain admin",
            value="d0main-pass",
            exclusive=True,
            rotate_after_use=True,
        )
        secrets.add_secret(ctx, "Acme", title="M365 2FA", value="JBSWY3DPEHPK3PXP", kind="totp")
    with vault.store.session() as s:
        return {u.username: users.principal_for(s, u) for u in s.scalars(select(User))}


def test_checkout_returns_value_and_records_lease(vault: Vault, people: dict) -> None:
    with vault.store.context(people["carol"], vault.keys) as ctx:
        out = checkout.checkout(ctx, "Acme", "Router", reason="fix VPN", ticket="T-7")
        assert out.secret.value == "r0uter-pass"
        assert out.lease.expires_at - out.lease.created_at == checkout.DEFAULT_LEASE
        lease_id = out.lease.id
    with vault.store.context(people["carol"], vault.keys) as ctx:
        assert [lease.id for lease in checkout.list_leases(ctx)] == [lease_id]
        lease, version, generated = checkout.checkin(ctx, lease_id)
        assert lease.release_kind == "checkin" and version is None and generated is None
    with vault.store.session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "secret.checkout")).one()
    assert event.detail["reason"] == "fix VPN" and event.role == "consultant"
    assert "r0uter-pass" not in str(event.detail)


def test_reason_and_ttl_rules(vault: Vault, people: dict) -> None:
    with vault.store.context(people["carol"], vault.keys) as ctx:
        with pytest.raises(InvalidInput, match="reason"):
            checkout.checkout(ctx, "Acme", "Router", reason="  ")
        with pytest.raises(InvalidInput, match="ttl|lease"):
            checkout.checkout(ctx, "Acme", "Router", reason="x", ttl=timedelta(hours=9))


def test_a_refused_checkout_writes_nothing_even_if_the_caller_goes_on(
    vault: Vault, people: dict
) -> None:
    """On PostgreSQL a consultant's check-out finds the secret and writes its lease and debt in
    one statement, only when the checks that follow will pass. So every refusal - a lease too
    long for the secret's policy or not positive, a sensitive secret without a code, a client
    the caller is not granted - leaves no lease and no debt, even in a transaction that then
    goes on and commits; and the check-out allowed after them writes exactly one of each."""
    with vault.ctx() as ctx:
        clients.add_client(ctx, "Globex")
        secrets.add_secret(ctx, "Globex", title="NAS", value="n4s-pass")
        secrets.add_secret(ctx, "Acme", title="Printer", value="pr1nter", max_lease_seconds=600)
        secrets.add_secret(ctx, "Acme", title="Bank", value="b4nk-pass", sensitive=True)
    carol = people["carol"]
    with vault.store.context(carol, vault.keys) as ctx:
        for ttl in (timedelta(seconds=601), timedelta(0), timedelta(days=-3)):
            with pytest.raises(InvalidInput, match="between 1 second and 600 seconds"):
                checkout.checkout(ctx, "Acme", "Printer", reason="x", ttl=ttl)
        with pytest.raises(InvalidInput, match="between 1 second and 28800 seconds"):
            checkout.checkout(ctx, "Acme", "Router", reason="x", ttl=timedelta(days=3650))
        with pytest.raises(Forbidden, match="TOTP"):
            checkout.checkout(ctx, "Acme", "Bank", reason="x")
        with pytest.raises(NotFound):
            checkout.checkout(ctx, "Globex", "NAS", reason="x")
        kept = checkout.checkout(ctx, "Acme", "Printer", reason="x", ttl=timedelta(seconds=600))
    with vault.store.session() as s:
        leases = s.scalars(select(Lease).where(Lease.user_id == carol.user_id)).all()
        assert [(lease.id, lease.expires_at - lease.created_at) for lease in leases] == [
            (kept.lease.id, timedelta(seconds=600))
        ]
        reveals = s.scalars(select(Reveal).where(Reveal.user_id == carol.user_id)).all()
        assert [r.secret_id for r in reveals] == [kept.lease.secret_id]


def test_exclusive_second_checkout_names_holder(vault: Vault, people: dict) -> None:
    with vault.store.context(people["carol"], vault.keys) as ctx:
        first = checkout.checkout(ctx, "Acme", "Domain admin", reason="AD reset")
    with pytest.raises(Conflict, match="user:carol until"):
        with vault.store.context(people["dave"], vault.keys) as ctx:
            checkout.checkout(ctx, "Acme", "Domain admin", reason="also")
    # the refused check-out left nothing: no lease, no rotation debt (both are written before
    # the exclusive claim decides, and rolled back with it)
    with vault.store.session() as s:
        dave = people["dave"].user_id
        assert s.scalars(select(Lease).where(Lease.user_id == dave)).all() == []
        assert s.scalars(select(Reveal).where(Reveal.user_id == dave)).all() == []
    # a rotate-after-use secret must come back with a new value
    with vault.store.context(people["carol"], vault.keys) as ctx:
        with pytest.raises(InvalidInput, match="rotated"):
            checkout.checkin(ctx, first.lease.id)
    with vault.store.context(people["carol"], vault.keys) as ctx:
        with pytest.raises(InvalidInput, match="weak"):
            checkout.checkin(ctx, first.lease.id, new_value="password1")
    with vault.store.context(people["carol"], vault.keys) as ctx:
        assert [s.title for s in checkout.awaiting_rotation(ctx)] == ["Domain admin"]
        _, version, generated = checkout.checkin(ctx, first.lease.id, generate=True)
        assert version == 2 and generated and len(generated) == checkout.DEFAULT_LENGTH
        assert checkout.awaiting_rotation(ctx) == []
    with vault.store.context(people["dave"], vault.keys) as ctx:
        assert checkout.checkout(ctx, "Acme", "Domain admin", reason="now").secret.value == (
            generated
        )


def test_exclusive_hold_lapses_after_expiry(vault: Vault, people: dict) -> None:
    with vault.store.context(people["carol"], vault.keys) as ctx:
        checkout.checkout(ctx, "Acme", "Domain admin", reason="x", ttl=timedelta(seconds=5))
    later = utcnow() + timedelta(seconds=10)
    with vault.store.context(people["dave"], vault.keys) as ctx:
        assert checkout.checkout(ctx, "Acme", "Domain admin", reason="y", now=later)
    with vault.ctx() as ctx:
        assert checkout.expire_leases(ctx, now=later) == 1
    with vault.ctx() as ctx:  # a second sweeper (another server process) ends nothing twice
        assert checkout.expire_leases(ctx, now=later) == 0


def test_other_users_lease_is_not_found_and_admin_can_force(vault: Vault, people: dict) -> None:
    with vault.store.context(people["carol"], vault.keys) as ctx:
        lease_id = checkout.checkout(ctx, "Acme", "Domain admin", reason="x").lease.id
    with pytest.raises(NotFound), vault.store.context(people["dave"], vault.keys) as ctx:
        checkout.checkin(ctx, lease_id, generate=True)
    with vault.ctx() as ctx:
        checkout.force_release(ctx, lease_id)
    with vault.store.context(people["dave"], vault.keys) as ctx:
        checkout.checkout(ctx, "Acme", "Domain admin", reason="after force")


def _principal(vault: Vault, username: str) -> Principal:
    with vault.store.session() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        return users.principal_for(s, user)


def _open_lease_ids(vault: Vault) -> list[str]:
    with vault.store.session() as s:
        return list(s.scalars(select(Lease.id).where(Lease.released_at.is_(None))))


def test_a_plain_checkin_ends_only_the_callers_open_lease_on_a_secret_in_scope(
    vault: Vault, people: dict
) -> None:
    """A check-in without a new value is one conditional UPDATE (its lease: open, the
    caller's, on a secret that needs no rotation, of a client the caller still sees); every
    other case gets the general path's refusal, and the lease stays as it was."""
    with vault.ctx() as ctx:
        secrets.add_secret(ctx, "Acme", title="Firewall", value="f1rewall-pass", exclusive=True)
    with vault.store.context(people["carol"], vault.keys) as ctx:
        router = checkout.checkout(ctx, "Acme", "Router", reason="x").lease.id
        firewall = checkout.checkout(ctx, "Acme", "Firewall", reason="x").lease.id
    with pytest.raises(NotFound), vault.store.context(people["dave"], vault.keys) as ctx:
        checkout.checkin(ctx, router)  # someone else's lease does not exist for dave
    with pytest.raises(NotFound), vault.store.context(people["carol"], vault.keys) as ctx:
        checkout.checkin(ctx, "no-such-lease")
    with vault.ctx() as ctx:
        users.revoke_grant(ctx, "carol", "Acme")
    with (
        pytest.raises(NotFound),
        vault.store.context(_principal(vault, "carol"), vault.keys) as ctx,
    ):
        checkout.checkin(ctx, router)  # the grant is gone: so is the lease, to her
    assert sorted(_open_lease_ids(vault)) == sorted([router, firewall])
    with vault.ctx() as ctx:
        users.grant(ctx, "carol", "Acme")
    carol = _principal(vault, "carol")
    with vault.store.context(carol, vault.keys) as ctx:
        lease, version, generated = checkout.checkin(ctx, router)
        assert (lease.id, lease.release_kind, version, generated) == (router, "checkin", None, None)
        assert lease.released_at is not None and lease.holder == "user:carol"
        checkout.checkin(ctx, firewall)
    with (
        pytest.raises(Conflict, match="already ended"),
        vault.store.context(carol, vault.keys) as ctx,
    ):
        checkout.checkin(ctx, router)
    assert _open_lease_ids(vault) == []
    with vault.store.context(people["dave"], vault.keys) as ctx:  # the exclusive hold ended too
        checkout.checkout(ctx, "Acme", "Firewall", reason="after carol")
    with vault.store.session() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "secret.checkin").order_by(AuditEvent.seq)
        ).all()
    assert [(e.detail["title"], e.detail["lease_id"], e.actor) for e in events] == [
        ("Router", router, "user:carol"),
        ("Firewall", firewall, "user:carol"),
    ]


def test_sensitive_needs_fresh_totp(vault: Vault, people: dict) -> None:
    from tests.vault.test_users import _code, _seed

    with vault.ctx() as ctx:
        secrets.update_secret(ctx, "Acme", "Router", sensitive=True)
        users.begin_totp_enrollment(ctx, users.get_user(ctx, "carol"))
    seed = _seed(vault, "carol")
    with vault.ctx() as ctx:
        users.confirm_totp(ctx, users.get_user(ctx, "carol"), _code(seed, -1))
    with pytest.raises(Forbidden, match="TOTP"):
        with vault.store.context(people["carol"], vault.keys) as ctx:
            checkout.checkout(ctx, "Acme", "Router", reason="x")
    code = _code(seed)
    with vault.store.context(people["carol"], vault.keys) as ctx:
        assert checkout.checkout(ctx, "Acme", "Router", reason="x", totp_code=code)
    with pytest.raises(Forbidden):  # the same code again
        with vault.store.context(people["carol"], vault.keys) as ctx:
            checkout.checkout(ctx, "Acme", "Router", reason="x", totp_code=code)


def test_totp_code_without_the_seed(vault: Vault, people: dict) -> None:
    with vault.store.context(people["carol"], vault.keys) as ctx:
        now = utcnow()
        code, remaining = checkout.totp_code(ctx, "Acme", "M365 2FA", now=now)
        # an 80-bit seed, as many vendors issue; the reference value from RFC 6238's formula
        expected = (
            TOTP(
                base64.b32decode("JBSWY3DPEHPK3PXP"), 6, hashes.SHA1(), 30, enforce_key_length=False
            )
            .generate(int(now.timestamp()))
            .decode()
        )
        assert code == expected
        assert 0 < remaining <= 30
        with pytest.raises(InvalidInput):
            checkout.totp_code(ctx, "Acme", "Router")


def test_offboarding_lists_unrotated_reveals(vault: Vault, people: dict) -> None:
    with vault.store.context(people["carol"], vault.keys) as ctx:
        router = checkout.checkout(ctx, "Acme", "Router", reason="x").lease.id
        admin_lease = checkout.checkout(ctx, "Acme", "Domain admin", reason="x").lease.id
        checkout.checkin(ctx, router)
        checkout.checkin(ctx, admin_lease, generate=True)  # rotated: no longer a debt
    with vault.ctx() as ctx:
        assert [s.title for s, _ in checkout.offboarding(ctx, "carol")] == ["Router"]
        assert checkout.offboarding(ctx, "dave") == []


def test_a_new_value_is_checked_before_the_write_unit(
    vault: Vault, people: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check_new_value runs zxcvbn on a read connection; the check-in then does not run it
    again under the write lock - unless the secret was renamed in between."""
    carol, dave = people["carol"], people["dave"]
    with vault.store.context(carol, vault.keys) as ctx:
        lease = checkout.checkout(ctx, "Acme", "Domain admin", reason="x").lease
    strong = "Vq7#kR2!mZ9@wL4$tY8%"
    with vault.store.read_connection() as conn:
        with pytest.raises(InvalidInput, match="weak") as weak:
            checkout.check_new_value(conn, carol, lease.id, "password1")
        assert "password1" not in str(weak.value)
        assert checkout.check_new_value(conn, carol, lease.id, strong) == "Domain admin"
        # not the caller's lease, or no lease at all: nothing said here, the check-in answers
        assert checkout.check_new_value(conn, dave, lease.id, "password1") is None
        assert checkout.check_new_value(conn, carol, "no-such-lease", "password1") is None

    checked: list[str] = []
    real = checkout.check_strength
    monkeypatch.setattr(checkout, "check_strength", lambda v, t: (checked.append(t), real(v, t))[1])
    with vault.ctx() as ctx:
        secrets.update_secret(ctx, "Acme", "Domain admin", new_title="Domain admin (old)")
    with vault.store.context(carol, vault.keys) as ctx:  # renamed since the check: again
        checkout.checkin(ctx, lease.id, new_value=strong, strength_checked_for="Domain admin")
    assert checked == ["Domain admin (old)"]
    with vault.store.context(carol, vault.keys) as ctx:
        lease = checkout.checkout(ctx, "Acme", "Domain admin (old)", reason="y").lease
    with vault.store.read_connection() as conn:
        title = checkout.check_new_value(conn, carol, lease.id, strong + "x")
    assert title == "Domain admin (old)" and len(checked) == 2  # the check, before the unit
    with vault.store.context(carol, vault.keys) as ctx:
        _, version, _ = checkout.checkin(
            ctx, lease.id, new_value=strong + "x", strength_checked_for=title
        )
    assert version == 3 and len(checked) == 2  # and not a second time inside it
