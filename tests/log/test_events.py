"""Canonical event leaves: the shared vectors, and agreement with an independent RFC 8785."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.vectors import HERE as VECTORS
from tests.vectors import load_json_vectors
from vault.log import merkle
from vault.log.events import (
    EVENT_KEYS,
    EventEncodingError,
    decode,
    event_object,
    format_time,
    leaf_bytes,
    parse_time,
)

VECTORS_FILE = "log/events.json"


@pytest.mark.parametrize("vector", load_json_vectors(VECTORS_FILE), ids=lambda v: v["name"])
def test_event_vectors(vector: dict[str, Any]) -> None:
    event = vector["event"]
    if vector["expect"] == "failure":
        with pytest.raises(EventEncodingError):
            leaf_bytes(event["index"], event)
        return
    leaf = leaf_bytes(event["index"], event)
    assert leaf == vector["leaf"].encode("utf-8")
    assert merkle.leaf_hash(leaf).hex() == vector["leaf_hash"]
    assert decode(leaf) == event_object(event["index"], event)


def test_vector_root_matches_merkle() -> None:
    import json

    data = json.loads((VECTORS / VECTORS_FILE).read_text(encoding="utf-8"))
    ok = [v for v in data["vectors"] if v["expect"] == "success"]
    hashes = [merkle.leaf_hash(leaf_bytes(v["event"]["index"], v["event"])) for v in ok]
    assert merkle.root_from_leaf_hashes(hashes).hex() == data["root"]


def test_datetime_and_text_time_give_the_same_leaf() -> None:
    at = datetime(2026, 11, 23, 12, 0, 0, 5, tzinfo=UTC)
    fields = {"at": at, "actor": "a", "action": "x", "outcome": "ok"}
    assert leaf_bytes(3, fields) == leaf_bytes(3, {**fields, "at": format_time(at)})
    assert format_time(at) == "2026-11-23T12:00:00.000005Z"


@settings(max_examples=300, deadline=None)
@given(
    at=st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
)
def test_time_text_is_strftimes(at: datetime, offset_minutes: int) -> None:
    # format_time formats by hand (faster); the bytes are strftime's, in any time zone
    aware = at.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert format_time(aware) == aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert parse_time(format_time(aware)) == aware


@pytest.mark.parametrize("where", ["actor", "source", "detail value", "detail list"])
def test_a_lone_surrogate_is_refused_anywhere(where: str) -> None:
    bad = "caf\udce9"
    fields: dict[str, Any] = {"at": datetime.now(UTC), "actor": "a", "action": "x", "outcome": "ok"}
    if where == "detail value":
        fields["detail"] = {"k": bad}
    elif where == "detail list":
        fields["detail"] = {"k": ["ok", ("é", bad)]}
    else:
        fields[where] = bad
    with pytest.raises(EventEncodingError, match="valid Unicode"):
        leaf_bytes(0, fields)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(EventEncodingError):
        leaf_bytes(0, {"at": datetime(2026, 1, 1), "actor": "a", "action": "x", "outcome": "ok"})


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"v":1}',
        # valid members but not canonical: a space, then keys out of order
        b'{"action":"x", "actor":"a","at":"2026-11-23T12:00:00.000000Z","client_id":null,'
        b'"detail":{},"index":0,"outcome":"ok","role":null,"source":null,"subject_id":null,'
        b'"subject_kind":null,"v":1}',
        b'{"actor":"a","action":"x","at":"2026-11-23T12:00:00.000000Z","client_id":null,'
        b'"detail":{},"index":0,"outcome":"ok","role":null,"source":null,"subject_id":null,'
        b'"subject_kind":null,"v":1}',
        b'{"action":"x","actor":"a","at":"2026-11-23T12:00:00.000000Z","client_id":null,'
        b'"detail":{},"index":0,"outcome":"ok","role":null,"source":null,"subject_id":null,'
        b'"subject_kind":null,"v":2}',
    ],
)
def test_decode_refuses_anything_but_canonical_v1(raw: bytes) -> None:
    with pytest.raises(EventEncodingError):
        decode(raw)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | _text,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(max_codepoint=127), max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(0, 2**53 - 1),
    actor=_text.filter(bool),
    source=st.none() | _text,
    detail=st.dictionaries(
        st.text(st.characters(max_codepoint=127), max_size=8), _json, max_size=5
    ),
    micros=st.integers(0, 10**6 - 1),
)
def test_leaf_is_rfc8785_and_round_trips(
    index: int, actor: str, source: str | None, detail: dict[str, Any], micros: int
) -> None:
    fields = {
        "at": datetime(2026, 11, 23, 12, 0, 0, micros, tzinfo=UTC),
        "actor": actor,
        "role": "admin",
        "source": source,
        "action": "secret.read",
        "outcome": "ok",
        "client_id": None,
        "subject_kind": "secret",
        "subject_id": None,
        "detail": detail,
    }
    leaf = leaf_bytes(index, fields)
    obj = event_object(index, fields)
    assert tuple(sorted(obj)) == EVENT_KEYS
    assert leaf == rfc8785.dumps(obj)  # an independent implementation agrees byte for byte
    assert decode(leaf) == obj
    assert merkle.leaf_hash(leaf) == hashlib.sha256(b"\x00" + leaf).digest()
