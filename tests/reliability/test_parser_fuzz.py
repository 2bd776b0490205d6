"""Parser fuzzing (hypothesis): every parser of outside input - age files, armor, recipients
and identities; signed notes, verifier keys and checkpoints; inclusion and consistency proofs;
log leaf bytes and exported log files - given random and mutated input raises only the typed
errors of vault/errors.py (CustodyError and its subclasses), never anything else.

Mutations start from real, valid input (an age file to a real identity, a checkpoint signed by
a real key, a real export of a real vault's log), so the fuzzer gets past the first check.
CUSTODY_FULL_RELIABILITY=1 runs 20x the examples.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.seed import Seeded, seed, settings_for
from vault.crypto import age
from vault.crypto.age import armor as age_armor
from vault.errors import CustodyError
from vault.log import events, merkle, note
from vault.log.verify import verify_export
from vault.services import auditlog, logviews

FULL = os.environ.get("CUSTODY_FULL_RELIABILITY") == "1"
FUZZ = settings(
    max_examples=2000 if FULL else 300,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def only_typed_errors(call: Callable[[], Any]) -> None:
    """Run ``call``: it may succeed or raise a CustodyError; anything else is a bug."""
    try:
        call()
    except CustodyError as exc:
        assert exc.message and isinstance(exc.message, str)
    # any other exception propagates and fails the test, with hypothesis's minimal example


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few flips, cuts, duplications or insertions."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "cut", "insert", "dup", "truncate"]))
        if not data:
            data += draw(st.binary(min_size=1, max_size=8))
            continue
        i = draw(st.integers(0, len(data) - 1))
        if how == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            del data[i : i + draw(st.integers(1, 16))]
        elif how == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif how == "dup":
            data[i:i] = data[i : i + draw(st.integers(1, 64))]
        else:
            del data[i:]
    return bytes(data)


# --- age --------------------------------------------------------------------------------------

IDENTITY = age.X25519Identity.generate()
PLAIN = b"escrowed secret bytes " * 5
AGE_FILE = age.encrypt(PLAIN, [IDENTITY.recipient])
AGE_ARMORED = age.encrypt(PLAIN, [IDENTITY.recipient], armor=True)


@FUZZ
@given(st.one_of(mutated(AGE_FILE), mutated(AGE_ARMORED), st.binary(max_size=512)))
def test_age_decrypt(data: bytes) -> None:
    only_typed_errors(lambda: age.decrypt(data, [IDENTITY]))


@FUZZ
@given(st.one_of(mutated(AGE_ARMORED), st.binary(max_size=512)))
def test_age_dearmor(data: bytes) -> None:
    only_typed_errors(lambda: age_armor.dearmor(data))


@FUZZ
@given(
    st.one_of(
        st.text(max_size=200),
        mutated(str(IDENTITY.recipient).encode()).map(lambda b: b.decode("latin-1")),
        st.from_regex(r"age1[a-z0-9]{0,70}", fullmatch=True),
        st.from_regex(r"ssh-ed25519 [A-Za-z0-9+/=]{0,80}( \w+)?", fullmatch=True),
    )
)
def test_age_recipient(text: str) -> None:
    only_typed_errors(lambda: age.parse_recipient(text))


@FUZZ
@given(
    st.one_of(
        st.text(max_size=300),
        mutated(str(IDENTITY).encode()).map(lambda b: b.decode("latin-1")),
        st.from_regex(r"(# .*\n)?AGE-SECRET-KEY-1[A-Z0-9]{0,70}\n?", fullmatch=True),
    )
)
def test_age_identities(text: str) -> None:
    only_typed_errors(lambda: age.parse_identities(text))


# --- signed notes and checkpoints -------------------------------------------------------------

SKEY, VKEY = note.generate_signer("custody.example/log")
SIGNER = note.Signer.parse(SKEY)
VERIFIER = note.Verifier.parse(VKEY)
CHECKPOINT_TEXT = note.Checkpoint(
    origin="custody.example/log", size=12, root=b"\x07" * 32
).to_text()
SIGNED = note.sign_checkpoint(note.Checkpoint.parse(CHECKPOINT_TEXT), SIGNER)


@FUZZ
@given(st.one_of(st.text(max_size=200), mutated(VKEY.encode()).map(lambda b: b.decode("latin-1"))))
def test_verifier_key(text: str) -> None:
    only_typed_errors(lambda: note.Verifier.parse(text))


@FUZZ
@given(st.one_of(mutated(SIGNED.encode()), st.binary(max_size=400)))
def test_signed_checkpoint(data: bytes) -> None:
    only_typed_errors(lambda: note.verify_checkpoint(data, VERIFIER, "custody.example/log"))
    only_typed_errors(lambda: note.open_note(data, [VERIFIER]))


@FUZZ
@given(
    st.one_of(
        st.text(max_size=300),
        mutated(CHECKPOINT_TEXT.encode()).map(lambda b: b.decode("utf-8", "replace")),
    )
)
def test_checkpoint_body(text: str) -> None:
    only_typed_errors(lambda: note.Checkpoint.parse(text))


# --- proofs -----------------------------------------------------------------------------------

LEAVES = [merkle.leaf_hash(bytes([i])) for i in range(13)]
ROOT = merkle.root_from_leaf_hashes(LEAVES)
SIZES = st.one_of(st.integers(-2, 40), st.integers(2**62, 2**64 + 1))
HASHES = st.lists(
    st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40)), max_size=70
)


@FUZZ
@given(index=SIZES, size=SIZES, proof=HASHES, leaf=st.binary(max_size=40))
def test_inclusion_proof(index: int, size: int, proof: list[bytes], leaf: bytes) -> None:
    only_typed_errors(lambda: merkle.verify_inclusion(leaf, index, size, proof, ROOT))


@FUZZ
@given(old=SIZES, new=SIZES, proof=HASHES, old_root=st.binary(max_size=40))
def test_consistency_proof(old: int, new: int, proof: list[bytes], old_root: bytes) -> None:
    only_typed_errors(lambda: merkle.verify_consistency(old, new, old_root, ROOT, proof))


# --- log leaves and exported log files --------------------------------------------------------

LEAF = events.leaf_bytes(
    3,
    {
        "actor": "admin",
        "action": "secret.read",
        "outcome": "ok",
        "at": "2026-01-01T00:00:00.000000Z",
        "detail": {"title": "Router", "version": 2},
    },
)


@FUZZ
@given(st.one_of(mutated(LEAF), st.binary(max_size=300)))
def test_leaf_decode(data: bytes) -> None:
    only_typed_errors(lambda: events.decode(data))


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bytes]:
    """A real whole-log export (with signed checkpoints) of a real seeded vault."""
    vault: Seeded = seed(settings_for(tmp_path_factory.mktemp("pfuzz") / "custody-data"))
    try:
        with vault.store.context("operator:test", vault.keys) as ctx:
            auditlog.sign(ctx.session, ctx.keys)
        out = io.BytesIO()
        with vault.store.context("operator:test", vault.keys) as ctx:
            auditlog.export_jsonl(ctx, out, logviews.event_filter(ctx))
        yield out.getvalue()
    finally:
        vault.store.engine.dispose()


def test_export_fuzz(export: bytes) -> None:
    verify_export(io.BytesIO(export))  # the original verifies
    lines = export.splitlines(keepends=True)

    @FUZZ
    @given(
        st.one_of(
            mutated(export).map(lambda b: b.splitlines(keepends=True)),
            st.tuples(st.integers(0, len(lines) - 1), st.data()).map(
                lambda t: lines[: t[0]] + [t[1].draw(mutated(lines[t[0]]))] + lines[t[0] + 1 :]
            ),
            st.permutations(lines),
            st.lists(st.binary(max_size=200), max_size=5),
        )
    )
    def run(mutant: list[bytes]) -> None:
        only_typed_errors(lambda: verify_export(iter(mutant)))

    run()


def test_regression_export_header_without_log_key_is_a_typed_error(export: bytes) -> None:
    """Found by test_export_fuzz: a header with no ``log_key`` raised KeyError."""
    import json

    from vault.log.verify import LogVerificationError

    lines = export.splitlines(keepends=True)
    header = json.loads(lines[0])
    del header["log_key"]
    with pytest.raises(LogVerificationError):
        verify_export([json.dumps(header).encode() + b"\n", *lines[1:]])


# --- export bundles ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[bytes, str]]:
    """A real client export (age bundle, signed manifest) of a seeded vault, to IDENTITY."""
    from vault.services import clients, export, secrets

    vault: Seeded = seed(settings_for(tmp_path_factory.mktemp("bfuzz") / "custody-data"))
    try:
        with vault.store.context("operator:test", vault.keys) as ctx:
            clients.add_client(ctx, "Fuzz Ltd", recipients=[str(IDENTITY.recipient)])
            secrets.add_secret(ctx, "Fuzz Ltd", title="Router", value="r0uter-Zq8#", username="a")
        out = io.BytesIO()
        result = export.export_client(vault.store, vault.keys, "operator:test", "Fuzz Ltd", out)
        yield out.getvalue(), result.manifest_text
    finally:
        vault.store.engine.dispose()


def test_bundle_fuzz(bundle: tuple[bytes, str]) -> None:
    """Mutated bundles and manifests: `custody takeover verify` answers with a typed error
    naming the failed check (or, for a mutation that changes nothing that matters, passes)."""
    from vault.formats.bundle import verify_bundle

    data, manifest = bundle
    verify_bundle(io.BytesIO(data), manifest, [IDENTITY])  # the original verifies

    @FUZZ
    @given(
        st.one_of(
            st.tuples(mutated(data), st.just(manifest.encode())),
            st.tuples(st.just(data), mutated(manifest.encode())),
            st.tuples(st.binary(max_size=256), st.binary(max_size=256)),
        )
    )
    def run(pair: tuple[bytes, bytes]) -> None:
        body, text = pair
        only_typed_errors(lambda: verify_bundle(io.BytesIO(body), text, [IDENTITY]))

    run()
