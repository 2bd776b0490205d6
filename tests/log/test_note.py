"""C2SP signed notes and checkpoints: Go's published example, malformed input, fuzzing."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vectors import HERE as VECTORS
from tests.vectors import load_json_vectors
from vault.log.errors import LogError, NoteError, SignatureError
from vault.log.merkle import EMPTY_ROOT, MAX_TREE_SIZE, leaf_hash
from vault.log.note import (
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    Checkpoint,
    Signer,
    Verifier,
    generate_signer,
    is_valid_key_name,
    key_id,
    open_note,
    sign_checkpoint,
    sign_note,
    verify_checkpoint,
)

VECTOR_FILE = "log/note.json"
REFERENCE = json.loads((VECTORS / VECTOR_FILE).read_text(encoding="utf-8"))
VECTORS_BY_NAME = {v["name"]: v for v in load_json_vectors(VECTOR_FILE)}
KEYS: dict[str, str] = REFERENCE["keys"]
SIGNER_KEYS: dict[str, str] = REFERENCE["signer_keys"]
ERRORS: dict[str, type[NoteError]] = {"NoteError": NoteError, "SignatureError": SignatureError}

PETER_VKEY = KEYS["PeterNeumann"]
PETER_SKEY = SIGNER_KEYS["PeterNeumann"]
GO_EXAMPLE = VECTORS_BY_NAME["go-example"]
GO_TEXT: str = GO_EXAMPLE["text"]
PETER_SIG_LINE: str = GO_EXAMPLE["note_lines"][-1]


def note_of(vector: dict[str, Any]) -> str | bytes:
    if "note_b64" in vector:
        return base64.b64decode(vector["note_b64"])
    return "".join(vector["note_lines"])


def peter() -> Verifier:
    return Verifier.parse(PETER_VKEY)


# --- vectors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VECTORS_BY_NAME))
def test_vector(name: str) -> None:
    v = VECTORS_BY_NAME[name]
    note = note_of(v)
    verifiers = [Verifier.parse(KEYS[k]) for k in v["verifiers"]]
    if v["expect"] == "failure":
        with pytest.raises(ERRORS[v["error"]]) as info:
            open_note(note, verifiers)
        assert type(info.value) is ERRORS[v["error"]]
        return

    text, verified = open_note(note, verifiers)
    assert text == v["text"]
    assert [s.name for s in verified] == v["verified"]
    if isinstance(note, str):
        assert open_note(note.encode("utf-8"), verifiers) == (text, verified)
    if "sign_with" in v:
        # Ed25519 is deterministic: our signer must reproduce the published note exactly.
        assert sign_note(text, [Signer.parse(SIGNER_KEYS[v["sign_with"]])]) == note
    if "checkpoint" in v:
        want = v["checkpoint"]
        (verifier,) = verifiers
        checkpoint = verify_checkpoint(note, verifier, origin=want["origin"])
        assert (checkpoint.origin, checkpoint.size, checkpoint.root.hex()) == (
            want["origin"],
            want["size"],
            want["root"],
        )
        assert checkpoint.to_text() == text


# --- keys ---------------------------------------------------------------------------------------


def test_key_strings_round_trip_and_agree() -> None:
    verifier = Verifier.parse(PETER_VKEY)
    signer = Signer.parse(PETER_SKEY)
    assert verifier.key_string() == PETER_VKEY
    assert signer.key_string() == PETER_SKEY
    assert signer.verifier == verifier and hash(signer.verifier) == hash(verifier)
    assert verifier.name == signer.name == "PeterNeumann"
    assert verifier.key_id.hex() == signer.key_id.hex() == "c74f20a3"
    # key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4]
    assert key_id("PeterNeumann", b"\x01" + verifier.public_key_bytes) == verifier.key_id
    assert verifier.verify(b"hi", signer.sign(b"hi"))
    assert not verifier.verify(b"hi!", signer.sign(b"hi"))
    assert not verifier.verify(b"hi", signer.sign(b"hi")[:63])


def _manglings(key: str) -> list[str]:
    """Every proper substring and every single-character increment (as Go's note tests do)."""
    out = {key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1)}
    out |= {key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))}
    out.discard(key)
    return sorted(out)


def test_mangled_verifier_keys_are_rejected() -> None:
    for bad in _manglings(PETER_VKEY):
        with pytest.raises(NoteError):
            Verifier.parse(bad)
    # wrong key length, unknown algorithm - each with a key ID adjusted to match (Go's tests)
    for bad in (
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ):
        with pytest.raises(NoteError):
            Verifier.parse(bad)


def test_mangled_signer_keys_are_rejected_without_quoting_them() -> None:
    secret = PETER_SKEY.rsplit("+", 1)[1][4:]  # a run of the base64 seed
    for bad in _manglings(PETER_SKEY):
        with pytest.raises(NoteError) as info:
            Signer.parse(bad)
        assert secret not in str(info.value) and secret not in repr(info.value)
    signer = Signer.parse(PETER_SKEY)
    assert secret not in repr(signer) and "PeterNeumann+c74f20a3" in repr(signer)


def test_uppercase_key_id_is_rejected() -> None:
    with pytest.raises(NoteError, match="lowercase hex"):
        Verifier.parse(PETER_VKEY.replace("c74f20a3", "C74F20A3"))


@pytest.mark.parametrize(
    "name",
    ["", "a b", "a+b", "a\tb", "a\nb", "a\u00a0b", "a\u2028b", "a\u3000b", "a\x01b", "a\ud800b"],
)
def test_invalid_key_names(name: str) -> None:
    assert not is_valid_key_name(name)
    with pytest.raises(NoteError):
        generate_signer(name)
    with pytest.raises(NoteError):
        Signer(name=name, private_key=Ed25519PrivateKey.generate())


@pytest.mark.parametrize("name", ["example.com/log", "custody.example/vault-1", "ünïcødé", "—"])
def test_generated_keys_sign_and_verify(name: str) -> None:
    skey, vkey = generate_signer(name)
    assert skey.startswith("PRIVATE+KEY+" + name + "+")
    signer, verifier = Signer.parse(skey), Verifier.parse(vkey)
    assert signer.verifier == verifier
    note = sign_note("hello\n\nworld\n", [signer])
    assert open_note(note, [verifier]) == ("hello\n\nworld\n", [verifier])


# --- signing and opening ------------------------------------------------------------------------


def test_sign_note_rejects_bad_text_and_misuse() -> None:
    signer = Signer.parse(PETER_SKEY)
    for bad in ("", "no newline", "tab\there\n", "cr\r\n", "nul\x00\n", "lone \ud800\n"):
        with pytest.raises(NoteError):
            sign_note(bad, [signer])
    with pytest.raises(ValueError):
        sign_note(GO_TEXT, [])
    with pytest.raises(ValueError):
        sign_note(GO_TEXT, [signer, Signer.parse(PETER_SKEY)])
    with pytest.raises(NoteError, match="larger than"):
        sign_note("x" * MAX_NOTE_SIZE + "\n", [signer])


def test_multiple_signers_and_unusual_texts() -> None:
    peter_signer = Signer.parse(PETER_SKEY)
    enoch_skey, enoch_vkey = generate_signer("EnochRoot")
    enoch = Signer.parse(enoch_skey)
    for text in ("\n", "a\n\n\n", "\n\nb\n", "line with — em dash\n"):
        note = sign_note(text, [peter_signer, enoch])
        assert note.startswith(text + "\n\u2014 PeterNeumann ")
        assert open_note(note, [Verifier.parse(enoch_vkey)])[0] == text
        assert open_note(note, [peter(), Verifier.parse(enoch_vkey)])[1] == [
            peter(),
            Verifier.parse(enoch_vkey),
        ]


def test_unknown_keys_are_ignored_even_when_name_or_id_collides() -> None:
    # a different key under the same name (its key ID differs) is unknown, not a failure
    other_skey, other_vkey = generate_signer("PeterNeumann")
    note = sign_note(GO_TEXT, [Signer.parse(other_skey), Signer.parse(PETER_SKEY)])
    assert open_note(note, [peter()])[1] == [peter()]
    with pytest.raises(SignatureError, match="no verified signature"):
        open_note(note.replace(PETER_SIG_LINE, ""), [peter()])
    # Peter's signature line under another name: same key ID, unknown name - ignored
    renamed = GO_TEXT + "\n" + PETER_SIG_LINE.replace("PeterNeumann", "PeterNeumann2")
    with pytest.raises(SignatureError, match="no verified signature"):
        open_note(renamed, [peter()])
    assert open_note(renamed + PETER_SIG_LINE, [peter()])[1] == [peter()]
    assert Verifier.parse(other_vkey).key_id != peter().key_id


def test_a_failing_known_signature_rejects_the_note_even_after_a_good_one() -> None:
    other_skey, _ = generate_signer("PeterNeumann")
    forged = Signer.parse(other_skey)
    line = sign_note(GO_TEXT, [forged]).split("\n\n", 1)[1]
    # keep the forged signature but give it Peter's key ID
    name, b64 = line[2:-1].split(" ")
    raw = base64.b64decode(b64)
    spoofed = f"\u2014 {name} {base64.b64encode(peter().key_id + raw[4:]).decode()}\n"
    with pytest.raises(SignatureError, match="PeterNeumann\\+c74f20a3 does not verify"):
        open_note(GO_TEXT + "\n" + PETER_SIG_LINE + spoofed, [peter()])


def test_ambiguous_verifiers_are_refused_and_duplicates_are_fine() -> None:
    note = note_of(GO_EXAMPLE)
    assert open_note(note, [peter(), peter(), peter()])[1] == [peter()]
    impostor_key = Ed25519PrivateKey.generate().public_key()
    impostor = Verifier(name="PeterNeumann", public_key=impostor_key)
    impostor.key_id = peter().key_id  # as if its 4-byte key ID collided with Peter's
    with pytest.raises(ValueError, match="ambiguous"):
        open_note(note, [peter(), impostor])


def test_signature_count_limit() -> None:
    assert MAX_SIGNATURES == 100
    at_limit = GO_TEXT + "\n" + PETER_SIG_LINE * MAX_SIGNATURES
    assert open_note(at_limit, [peter()])[1] == [peter()]
    over = GO_TEXT + "\n" + PETER_SIG_LINE * (MAX_SIGNATURES + 1)
    for verifiers in ([peter()], []):
        with pytest.raises(NoteError, match="more than 100 signatures") as info:
            open_note(over, verifiers)
        assert type(info.value) is NoteError


def test_note_size_limit() -> None:
    assert MAX_NOTE_SIZE == 1 << 20
    padding = "x" * (MAX_NOTE_SIZE - len(GO_TEXT.encode()) - len(PETER_SIG_LINE.encode()))
    big = padding + GO_TEXT + "\n" + PETER_SIG_LINE
    assert len(big.encode()) == MAX_NOTE_SIZE + 1
    for note in (big, big.encode()):
        with pytest.raises(NoteError, match="larger than"):
            open_note(note, [peter()])
    # multi-byte characters count as bytes, not characters
    wide = "é" * (MAX_NOTE_SIZE // 2) + GO_TEXT + "\n" + PETER_SIG_LINE
    with pytest.raises(NoteError, match="larger than"):
        open_note(wide, [peter()])


@pytest.mark.parametrize(
    "note",
    [
        "",
        "\n\n",
        "text\n\n\u2014 \n",
        "text\n\n\u2014  AAAAAAA=\n",
        "text\n\n\u2014 name\n",
        "text\n\n\u2014 name \n",
        "text\n\n\u2014 name AAAAAA==\n",  # key ID only, no signature
        "text\n\n\u2014 name AAAA AAAAAAA=\n",
        "text\n\n\u2014 na+me AAAAAAA=\n",
        "text\n\n\u2014 name AAAA-AA=\n",  # base64url alphabet
        "text\n\n\u2014 name AAAAAAA=\n\n",
        "text\n\n\u2014 name AAAAAAA=\n\u2014 name\n",
        "text\n\n \u2014 name AAAAAAA=\n",
        "text\n\u2014 name AAAAAAA=\n",
        "text\n\n\u2013 name AAAAAAA=\n",  # en dash
        "text\x7f\n\n\u2014 name AAAAAAA=\n" + "\x0c",
        "text\n\n\u2014 name AAAAAAA=\r\n",
    ],
)
def test_malformed_notes(note: str) -> None:
    with pytest.raises(NoteError) as info:
        open_note(note, [peter()])
    assert type(info.value) is NoteError


def test_well_formed_note_from_unknown_keys_only() -> None:
    # the format is fine, so the failure is about signatures
    with pytest.raises(SignatureError):
        open_note("text\n\n\u2014 name AAAAAAA=\n", [peter()])


def test_wrong_input_types_are_note_errors() -> None:
    with pytest.raises(NoteError):
        open_note(12345, [peter()])  # type: ignore[arg-type]
    with pytest.raises(NoteError):
        Verifier.parse(None)  # type: ignore[arg-type]
    with pytest.raises(NoteError):
        Signer.parse(b"PRIVATE+KEY+x")  # type: ignore[arg-type]


# --- checkpoints --------------------------------------------------------------------------------

ROOT = leaf_hash(b"custody")


@pytest.mark.parametrize(
    "checkpoint",
    [
        Checkpoint("custody.example/vault", 0, EMPTY_ROOT),
        Checkpoint("custody.example/vault", 1, ROOT),
        Checkpoint("example.com/behind-the-sofa", 20852163, ROOT, ["ext one", "ext+two"]),
        Checkpoint("origin with spaces", MAX_TREE_SIZE, ROOT),
    ],
)
def test_checkpoint_round_trip(checkpoint: Checkpoint) -> None:
    text = checkpoint.to_text()
    assert Checkpoint.parse(text) == checkpoint
    skey, vkey = generate_signer("custody.example/vault")
    note = sign_checkpoint(checkpoint, Signer.parse(skey))
    assert note.startswith(text + "\n\u2014 custody.example/vault ")
    verifier = Verifier.parse(vkey)
    assert verify_checkpoint(note, verifier) == checkpoint
    assert verify_checkpoint(note, verifier, origin=checkpoint.origin) == checkpoint
    with pytest.raises(NoteError, match="not the expected"):
        verify_checkpoint(note, verifier, origin="someone.else/log")
    with pytest.raises(SignatureError):
        verify_checkpoint(note, peter())


def test_checkpoint_text_format() -> None:
    cp = Checkpoint("example.com/log", 5, bytes(range(32)), ("a", "b"))
    assert cp.to_text() == (
        "example.com/log\n5\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\na\nb\n"
    )
    assert cp.extensions == ("a", "b")
    assert hash(cp) == hash(Checkpoint("example.com/log", 5, bytes(range(32)), ["a", "b"]))


GOOD_ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "origin\n1\n" + GOOD_ROOT_B64,  # no final newline
        "origin\n1\n",
        "\n1\n" + GOOD_ROOT_B64 + "\n",
        "origin\n01\n" + GOOD_ROOT_B64 + "\n",
        "origin\n00\n" + GOOD_ROOT_B64 + "\n",
        "origin\n+1\n" + GOOD_ROOT_B64 + "\n",
        "origin\n-1\n" + GOOD_ROOT_B64 + "\n",
        "origin\n 1\n" + GOOD_ROOT_B64 + "\n",
        "origin\n1 \n" + GOOD_ROOT_B64 + "\n",
        "origin\n1_0\n" + GOOD_ROOT_B64 + "\n",
        "origin\n\uff11\n" + GOOD_ROOT_B64 + "\n",  # fullwidth digit one
        "origin\n0x10\n" + GOOD_ROOT_B64 + "\n",
        "origin\n9223372036854775809\n" + GOOD_ROOT_B64 + "\n",  # 2**63 + 1
        "origin\n18446744073709551616\n" + GOOD_ROOT_B64 + "\n",  # 2**64
        "origin\n" + "1" * 30 + "\n" + GOOD_ROOT_B64 + "\n",
        "origin\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n",
        "origin\n1\n" + base64.b64encode(ROOT + b"\x00").decode() + "\n",
        "origin\n1\n" + GOOD_ROOT_B64.rstrip("=") + "\n",
        "origin\n1\n" + GOOD_ROOT_B64[:-2] + chr(ord(GOOD_ROOT_B64[-2]) ^ 1) + "=\n",
        "origin\n1\n" + GOOD_ROOT_B64.replace("+", "-").replace("/", "_") + "x\n",
        "origin\n1\n" + GOOD_ROOT_B64 + "\n\n",  # empty extension line
        "origin\n1\n" + GOOD_ROOT_B64 + "\next\n\n",
        "origin\r\n1\n" + GOOD_ROOT_B64 + "\n",
        "origin\n1\n" + GOOD_ROOT_B64 + "\nex\tt\n",
    ],
)
def test_checkpoint_parse_is_strict(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": ""},
        {"origin": "two\nlines"},
        {"size": -1},
        {"size": MAX_TREE_SIZE + 1},
        {"size": True},
        {"root": ROOT[:31]},
        {"root": ROOT.hex()},
        {"extensions": [""]},
        {"extensions": ["a\nb"]},
        {"extensions": "abc"},
    ],
)
def test_checkpoint_constructor_validates(kwargs: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"origin": "o", "size": 1, "root": ROOT, "extensions": ()}
    fields.update(kwargs)
    with pytest.raises(NoteError):
        Checkpoint(**fields)


def test_checkpoint_signed_but_malformed_is_a_note_error() -> None:
    signer = Signer.parse(PETER_SKEY)
    note = sign_note("origin\n01\n" + GOOD_ROOT_B64 + "\n", [signer])
    with pytest.raises(NoteError, match="canonical decimal") as info:
        verify_checkpoint(note, peter())
    assert type(info.value) is NoteError


# --- fuzzing: only LogError subclasses come out -------------------------------------------------

GO_NOTE_BYTES = "".join(GO_EXAMPLE["note_lines"]).encode("utf-8")
VERIFIERS = [peter(), Verifier.parse(KEYS["EnochRoot"])]


def _open_or_log_error(note: str | bytes) -> None:
    with contextlib.suppress(LogError):
        open_note(note, VERIFIERS)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_random_notes_raise_only_log_errors(note: str | bytes) -> None:
    _open_or_log_error(note)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["replace", "insert", "delete"]),
            st.integers(min_value=0, max_value=len(GO_NOTE_BYTES)),
            st.sampled_from(
                [b"\n", b" ", b"+", b"=", b"A", b"\x00", b"\xe2", b"\xe2\x80\x94", b"0"]
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_notes_raise_only_log_errors(edits: list[tuple[str, int, bytes]]) -> None:
    data = bytearray(GO_NOTE_BYTES)
    for op, pos, chunk in edits:
        pos = min(pos, len(data))
        if op == "replace" and pos < len(data):
            data[pos : pos + 1] = chunk
        elif op == "insert":
            data[pos:pos] = chunk
        elif op == "delete":
            del data[pos : pos + 1]
    note = bytes(data)
    try:
        text, verified = open_note(note, VERIFIERS)
    except LogError:
        return
    # if it opened, what was signed is exactly what Peter signed
    assert text == GO_TEXT and verified == [VERIFIERS[0]]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(GO_TEXT) - 2), st.characters(min_codepoint=32))
def test_any_change_to_the_signed_text_is_a_signature_error(pos: int, char: str) -> None:
    if GO_TEXT[pos] == char or char == "\n" or 0xD800 <= ord(char) <= 0xDFFF:
        return
    text = GO_TEXT[:pos] + char + GO_TEXT[pos + 1 :]
    with pytest.raises(SignatureError):
        open_note(text + "\n" + PETER_SIG_LINE, VERIFIERS)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_checkpoints_and_keys_raise_only_note_errors(text: str) -> None:
    for parse in (Checkpoint.parse, Verifier.parse, Signer.parse):
        with contextlib.suppress(NoteError):
            parse(text)
