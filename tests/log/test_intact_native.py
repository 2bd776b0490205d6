"""The verifier's fast path in C (vault/log/_intact.c) against its Python reference.

The rule that keeps the C version safe: whatever it accepts, the Python fast path accepts too,
with the same leaves; it may refuse more (the caller then takes the explaining path, which
decides). And it must accept everything the vault's own writer produces, or it would be no
faster. Hypothesis checks both on generated events and on randomly damaged lines; the
directed cases name the forms the C version refuses on purpose.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.log.test_verify_parallel import _fields as parallel_fields
from vault.log import verify
from vault.log.events import MAX_SAFE_INTEGER, encode, event_object, export_line

if verify._intact_leaves_native is None:  # pragma: no cover - installed without a C compiler
    if os.environ.get("CUSTODY_REQUIRE_NATIVE") == "1":
        raise RuntimeError("CUSTODY_REQUIRE_NATIVE=1 but vault.log._intact was not built")
    pytest.skip("vault.log._intact was not built (no C compiler)", allow_module_level=True)
native = verify._intact_leaves_native
python = verify._intact_leaves_py


def test_the_verifier_uses_the_native_fast_path() -> None:
    assert verify._intact_leaves is native


def test_custody_native_0_keeps_the_c_code_unloaded() -> None:
    probe = (
        "import sys, vault.log.verify as v; "
        "print(v._intact_leaves is v._intact_leaves_py, 'vault.log._intact' in sys.modules)"
    )
    for setting, expected in (("0", "True False"), ("1", "False True")):
        out = subprocess.run(
            [sys.executable, "-c", probe],
            env={**os.environ, "CUSTODY_NATIVE": setting},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.split() == expected.split(), setting


def _fields(i: int, **change: object) -> dict[str, object]:
    """Event ``i``'s fields (those of the parallel-verifier tests), with ``change`` applied."""
    return {**parallel_fields(i), **change}


def _block(events: list[dict[str, object]], first: int = 0) -> bytes:
    """Export lines of ``events`` (field dicts) numbered from ``first``."""
    return b"".join(
        export_line(encode(event_object(first + i, f)), first + i) + b"\n"
        for i, f in enumerate(events)
    )


def _agree(data: bytes, first: int) -> list[bytes] | None:
    """Both fast paths on ``data``: the C one accepts only what the Python one accepts, with
    the same leaves. Returns the C one's answer."""
    fast = native(data, first)
    if fast is not None:
        assert python(data, first) == fast
    return fast


# --- what the writer produces: always accepted -----------------------------------------------

ascii_keys = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=8)  # as the writer's
safe_integers = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
json_values = st.recursive(
    st.none() | st.booleans() | safe_integers | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ascii_keys, inner, max_size=4),
    max_leaves=12,
)
optional_text = st.none() | st.text()
field_values = st.fixed_dictionaries(
    {
        "actor": st.text(min_size=1),
        "action": st.text(min_size=1),
        "outcome": st.text(min_size=1),
        "role": optional_text,
        "source": optional_text,
        "client_id": optional_text,
        "subject_kind": optional_text,
        "subject_id": optional_text,
        "detail": st.dictionaries(ascii_keys, json_values, max_size=5),
    }
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.lists(field_values, min_size=1, max_size=5),
    first=st.integers(min_value=0, max_value=MAX_SAFE_INTEGER - 10),
    final_newline=st.booleans(),
)
def test_everything_the_writer_produces_is_accepted_alike(
    changes: list[dict[str, object]], first: int, final_newline: bool
) -> None:
    data = _block([_fields(i, **c) for i, c in enumerate(changes)], first)
    if not final_newline:
        data = data[:-1]
    assert native(data, first) == python(data, first)
    assert native(data, first) is not None


# --- damaged lines: the C version never accepts what Python refuses --------------------------

INTACT = _block(
    [_fields(i) for i in range(3)]
    + [_fields(3, detail={"n": [1, -2, None], "a\n": "\x01é", "z": {"": True}})],
    10,
)
LINES = INTACT.splitlines()
JSON_BYTES = b'"\\{}[],:0123456789-.eE ntfu\n\x00\x7f\xc3\xa9\xed\xf4+/=AZaz'


def _damaged(data: st.DataObject, original: bytes, most: int) -> bytes:
    """``original`` with 1 to ``most`` bytes replaced, inserted or deleted, drawn by Hypothesis
    (bytes that matter to JSON and base64 more often than others)."""
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, most))):
        at = data.draw(st.integers(0, len(damaged) - 1))
        byte = data.draw(st.sampled_from(JSON_BYTES) | st.integers(0, 255))
        match data.draw(st.sampled_from(["replace", "insert", "delete"])):
            case "replace":
                damaged[at] = byte
            case "insert":
                damaged.insert(at, byte)
            case "delete":
                del damaged[at]
    return bytes(damaged)


@settings(max_examples=2000)
@given(data=st.data())
def test_a_damaged_block_is_never_accepted_by_c_alone(data: st.DataObject) -> None:
    _agree(_damaged(data, INTACT, 3), 10)


@settings(max_examples=2000)
@given(data=st.data())
def test_a_damaged_event_with_its_leaf_re_encoded_is_never_accepted_by_c_alone(
    data: st.DataObject,
) -> None:
    """Damage inside the event member, with the line's base64 leaf made to match it again (so
    the JSON checks decide, not the leaf comparison)."""
    events = [line.split(b',"event":', 1)[1].rsplit(b',"leaf":"', 1)[0] for line in LINES]
    at = data.draw(st.integers(0, len(events) - 1))
    events[at] = _damaged(data, events[at], 2)
    _agree(b"".join(export_line(e, 10 + i) + b"\n" for i, e in enumerate(events)), 10)


@settings(max_examples=300)
@given(data=st.data())
def test_moved_lines_are_never_accepted(data: st.DataObject) -> None:
    lines = INTACT.splitlines(keepends=True)
    order = data.draw(st.permutations(range(len(lines))))
    moved = b"".join(lines[i] for i in order)
    found = _agree(moved, 10)
    assert (found is not None) == (list(order) == sorted(order))


# --- forms the C version refuses on purpose ----------------------------------------------------


def _line(event: bytes, index: int = 0) -> bytes:
    return export_line(event, index) + b"\n"


GOOD = encode(event_object(0, _fields(0)))


def _with_detail(detail: bytes) -> bytes:
    start = GOOD.index(b'"detail":') + len(b'"detail":')
    end = GOOD.index(b',"index":')
    return GOOD[:start] + detail + GOOD[end:]


@pytest.mark.parametrize(
    "detail",
    [
        b'{"n":-0}',
        b'{"n":01}',
        b'{"n":1.5}',  # canonical for orjson, but events hold no fractions: left to Python
        b'{"n":1e5}',
        b'{"n":%d}' % (MAX_SAFE_INTEGER + 1),
        b'{"n":-%d}' % (MAX_SAFE_INTEGER + 1),
        b'{"n":"\\u001F"}',  # upper-case hex
        b'{"n":"\\u000a"}',  # \n has a short escape
        b'{"n":"\\u0041"}',  # needs no escape
        b'{"n":"\\/"}',
        b'{"n":"\x01"}',  # a raw control character
        b'{"n":"\xc0\xaf"}',  # overlong UTF-8
        b'{"n":"\xed\xa0\x80"}',  # a surrogate
        b'{"n":"\xf4\x90\x80\x80"}',  # past U+10FFFF
        b'{"n":"\xc3"}',  # cut short
        b'{"b":1,"a":2}',  # unsorted
        b'{"a":1,"a":2}',  # duplicate
        b'{"a!":1,"a\\n":2}',  # unsorted once decoded: a newline sorts before "!"
        b'{"\xc3\xa9":1}',  # a key beyond ASCII
        b'{"a": 1}',  # whitespace
        b'{"a":1,}',
        b"[" * 40 + b"]" * 40,  # nesting past the C limit
        b"nul",
    ],
)
def test_the_c_version_refuses_what_is_not_plainly_canonical(detail: bytes) -> None:
    assert native(_line(_with_detail(detail)), 0) is None
    accepted = b'{"a\\n":0,"a!":1,"n":[1,-2,"\\u001f\\n\xc3\xa9\x7f",true]}'
    assert native(_line(_with_detail(accepted)), 0) is not None


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (_line(GOOD.replace(b'"v":1}', b'"v":2}')), "version 2"),
        (_line(GOOD.replace(b'"v":1}', b'"v":true}')), "version true"),
        (_line(GOOD.replace(b'"index":0', b'"index":1')), "index disagrees"),
        (_line(GOOD, 1), "line numbered 1 where 0 is expected"),
        (_line(GOOD.replace(b'"role":', b'"rolf":')), "an unknown member"),
        (_line(GOOD)[:-3] + b'="}\n', "base64 padding changed"),
        (_line(GOOD).replace(b'"type":"event"', b'"type": "event"'), "another layout"),
        (_line(GOOD) + b"\n", "an empty line"),
        (_line(GOOD)[:-2] + b" \n", "trailing space"),
    ],
)
def test_lines_out_of_place_are_refused(line: bytes, why: str) -> None:
    assert native(line, 0) is None, why
    assert native(_line(GOOD), 0) == [GOOD]


@pytest.mark.parametrize("first", [2**63, 2**64, -(2**63) - 1, -1, MAX_SAFE_INTEGER + 1])
def test_an_index_no_event_can_have_is_refused(first: int) -> None:
    """Also past a C long long: refused like any bad index, not an OverflowError (the parallel
    verifier reads ``first`` from a line of the file)."""
    line = _line(GOOD).replace(b'"index":0,', b'"index":%d,' % first, 1)
    assert native(line, first) is None
    assert python(line, first) is None


def test_nothing_is_one_empty_line() -> None:
    assert native(b"", 0) is python(b"", 0) is None
