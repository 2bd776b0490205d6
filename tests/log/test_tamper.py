"""Tampering with a copy of the database is caught: 1,000 random tamperings, no false alarm.

The trusted side is what an auditor holds: the pinned log key and a checkpoint saved earlier.
Each round copies a real vault's SQLite database into memory, tampers with it the way someone
with write access to the database (and, for some kinds, the real log key) could, exports the log
from the tampered copy with the vault's own export code, and runs the offline verifier.
"""

from __future__ import annotations

import io
import random
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, delete, select, update
from sqlalchemy.orm import Session

from tests.conftest import TEST_PASSPHRASE
from vault.config import Settings
from vault.db.models import AuditEvent, LogCheckpoint, LogNode, LogState, VaultKey
from vault.keys import UnsealSecret
from vault.log import merkle
from vault.log.errors import LogError
from vault.log.events import leaf_bytes
from vault.log.note import Checkpoint, Signer, Verifier, generate_signer, sign_checkpoint
from vault.log.verify import LogVerificationError, verify_export
from vault.services import Context, Principal, auditlog, clients, secrets
from vault.store import Store, init_vault

ROUNDS = 1000
FIELDS = (
    "at",
    "actor",
    "role",
    "source",
    "action",
    "outcome",
    "client_id",
    "subject_kind",
    "subject_id",
    "detail",
)


@pytest.fixture(scope="module")
def original(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[sqlite3.Connection, Verifier, str, Signer]]:
    """A vault with ~200 events, checkpoints along the way; the key and last checkpoint saved."""
    home = tmp_path_factory.mktemp("tamper")
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home}/custody.db",
        unseal_file=None,
        unseal_passphrase_set=False,
        allow_weak_kdf=True,
    )
    init_vault(settings, passphrase=TEST_PASSPHRASE, weak_kdf=True, admin=None)
    store = Store.open(settings)
    keys = store.unseal(UnsealSecret.from_passphrase(TEST_PASSPHRASE))
    for batch in range(6):
        with store.context(f"operator:batch{batch}", keys) as ctx:
            name = f"Client {batch % 3}"
            if batch < 3:
                clients.add_client(ctx, name)
            secrets.add_secrets(
                ctx,
                name,
                [secrets.NewSecret(title=f"b{batch}-{i}", value="x" * 12) for i in range(30)],
            )
        with store.context("operator:checkpoint", keys) as ctx:
            auditlog.sign(ctx.session, keys)
    with store.session() as s:
        key = Verifier.parse(auditlog.verifier_key(s))
        saved = auditlog.latest_checkpoint(s)
        assert saved is not None
        note = saved.note
    assert keys.log_signer is not None
    base = sqlite3.connect(":memory:", check_same_thread=False)
    disk = sqlite3.connect(f"{home}/custody.db")
    disk.backup(base)
    disk.close()
    store.engine.dispose()
    yield base, key, note, keys.log_signer
    base.close()


@contextmanager
def copy_of(base: sqlite3.Connection) -> Iterator[Session]:
    mem = sqlite3.connect(":memory:", check_same_thread=False)
    base.backup(mem)
    engine = create_engine("sqlite://", creator=lambda: mem)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()
        mem.close()


def export(session: Session) -> bytes:
    out = io.BytesIO()
    ctx = Context(session=session, actor="operator:x", principal=Principal.operator("operator:x"))
    auditlog.export_jsonl(ctx, out, auditlog.EventFilter())
    return out.getvalue()


# --- the tamperings ------------------------------------------------------------------------------


def _rows(s: Session) -> list[AuditEvent]:
    return list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def _fields(row: AuditEvent) -> dict[str, object]:
    return {f: getattr(row, f) for f in FIELDS}


def _rebuild(s: Session) -> None:
    """Recompute every leaf hash, subtree and the head from the rows, as a forger would."""
    s.execute(delete(LogNode))
    compact = merkle.CompactRange()
    nodes: list[dict[str, object]] = []
    for row in _rows(s):
        row.leaf_hash = merkle.leaf_hash(leaf_bytes(row.seq, _fields(row)))
        compact.append(
            row.leaf_hash,
            lambda lv, i, h: (
                nodes.append({"level": lv, "idx": i, "hash": h})
                if lv in auditlog.STORED_LEVELS
                else None
            ),
        )
    s.flush()
    if nodes:
        s.execute(LogNode.__table__.insert(), nodes)
    s.execute(update(LogState).values(size=compact.size, compact=compact.to_bytes()))


def _resign(s: Session, signer: Signer) -> None:
    """Replace every checkpoint with one over the rebuilt tree, signed by ``signer``."""
    now = auditlog.head(s)
    s.execute(delete(LogCheckpoint))
    note = sign_checkpoint(Checkpoint(now.origin, now.size, now.root), signer)
    s.add(LogCheckpoint(size=now.size, root=now.root, note=note, key_id="forged"))


def _mutate(value: object, rng: random.Random) -> object:
    if isinstance(value, str) and value:
        i = rng.randrange(len(value))
        repl = "Z" if value[i] != "Z" else "Y"
        return value[:i] + repl + value[i + 1 :]
    if isinstance(value, dict):
        return {**value, "tampered": rng.randrange(10**6)}
    if hasattr(value, "tzinfo"):
        return value + timedelta(microseconds=rng.choice([-1, 1, 1000, 3600 * 10**6]))  # type: ignore[operator]
    return "forged"


def edit_field(s: Session, rng: random.Random, signer: Signer) -> None:
    row = rng.choice(_rows(s))
    name = rng.choice(FIELDS)
    setattr(row, name, _mutate(getattr(row, name), rng))


def edit_field_and_its_hash(s: Session, rng: random.Random, signer: Signer) -> None:
    edit_field(s, rng, signer)
    s.flush()
    _rebuild(s)  # stored hashes made to agree; the signed checkpoints still do not


def delete_row(s: Session, rng: random.Random, signer: Signer) -> None:
    s.delete(rng.choice(_rows(s)))


def delete_row_and_renumber(s: Session, rng: random.Random, signer: Signer) -> None:
    rows = _rows(s)
    victim = rng.randrange(len(rows))
    s.delete(rows[victim])
    s.flush()
    for row in rows[victim + 1 :]:
        row.seq -= 1
        s.flush()
    _rebuild(s)


def insert_row(s: Session, rng: random.Random, signer: Signer) -> None:
    rows = _rows(s)
    at = rng.randrange(len(rows))
    for row in reversed(rows[at:]):
        row.seq += 1
        s.flush()
    template = rows[rng.randrange(len(rows))]
    forged = AuditEvent(seq=at, leaf_hash=b"", **{**_fields(template), "actor": "user:ghost"})
    s.add(forged)
    s.flush()
    _rebuild(s)


def swap_rows(s: Session, rng: random.Random, signer: Signer) -> None:
    rows = _rows(s)
    while True:
        a, b = rng.sample(rows, 2)
        if _fields(a) != _fields(b):
            break
    fa, fb = _fields(a), _fields(b)
    for name in FIELDS:
        setattr(a, name, fb[name])
        setattr(b, name, fa[name])


def truncate_tail(s: Session, rng: random.Random, signer: Signer) -> None:
    rows = _rows(s)
    for row in rows[len(rows) - rng.randint(1, 40) :]:
        s.delete(row)


def truncate_and_resign_with_the_real_key(s: Session, rng: random.Random, signer: Signer) -> None:
    truncate_tail(s, rng, signer)
    s.flush()
    _rebuild(s)
    _resign(s, signer)


def rewrite_and_resign_with_the_real_key(s: Session, rng: random.Random, signer: Signer) -> None:
    edit_field(s, rng, signer)
    s.flush()
    _rebuild(s)
    _resign(s, signer)


def rewrite_and_resign_with_another_key(s: Session, rng: random.Random, signer: Signer) -> None:
    edit_field(s, rng, signer)
    s.flush()
    _rebuild(s)
    origin = auditlog.head(s).origin
    forger = Signer.parse(generate_signer(origin)[0])
    _resign(s, forger)
    s.execute(
        update(VaultKey)
        .where(VaultKey.purpose == "log")
        .values(public=forger.verifier.key_string())
    )


TAMPERINGS: list[Callable[[Session, random.Random, Signer], None]] = [
    edit_field,
    edit_field_and_its_hash,
    delete_row,
    delete_row_and_renumber,
    insert_row,
    swap_rows,
    truncate_tail,
    truncate_and_resign_with_the_real_key,
    rewrite_and_resign_with_the_real_key,
    rewrite_and_resign_with_another_key,
]


def test_an_untouched_copy_verifies(
    original: tuple[sqlite3.Connection, Verifier, str, Signer],
) -> None:
    base, key, saved, _ = original
    with copy_of(base) as s:
        report = verify_export(io.BytesIO(export(s)), key=key, saved_checkpoint=saved)
    assert report.events == report.size > 180 and report.checkpoints == 6


def test_every_random_tampering_is_detected(
    original: tuple[sqlite3.Connection, Verifier, str, Signer],
) -> None:
    base, key, saved, signer = original
    rng = random.Random(20261123)
    detected: Counter[str] = Counter()
    for round_ in range(ROUNDS):
        tamper = TAMPERINGS[round_ % len(TAMPERINGS)]
        with copy_of(base) as s:
            tamper(s, rng, signer)
            s.flush()
            try:
                data = export(s)
            except LogError:
                detected[tamper.__name__ + " (export refused)"] += 1
                continue
        try:
            verify_export(io.BytesIO(data), key=key, saved_checkpoint=saved)
        except LogVerificationError:
            detected[tamper.__name__] += 1
        else:
            pytest.fail(f"round {round_}: {tamper.__name__} was not detected")
        if round_ % 50 == 0:  # interleave untouched copies: no false alarms
            with copy_of(base) as s:
                verify_export(io.BytesIO(export(s)), key=key, saved_checkpoint=saved)
    # every kind was tried and caught by the verifier itself
    assert detected == {t.__name__: ROUNDS // len(TAMPERINGS) for t in TAMPERINGS}
