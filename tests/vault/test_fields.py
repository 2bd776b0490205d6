"""Field AEAD: round trip, and a ciphertext moved anywhere else fails to decrypt."""

from __future__ import annotations

import dataclasses

import pytest

from tests.vectors import load_json_vectors
from vault.crypto.fields import FieldCipher, FieldLocation
from vault.errors import DecryptionError

KEY = bytes(range(32))
HERE = FieldLocation("client-a", "secret", "record-1", "value", 3)


def test_round_trip() -> None:
    cipher = FieldCipher(KEY)
    assert cipher.open(cipher.seal(b"hunter2", HERE), HERE) == b"hunter2"


@pytest.mark.parametrize(
    "moved",
    [
        dataclasses.replace(HERE, client_id="client-b"),
        dataclasses.replace(HERE, record_kind="vendor"),
        dataclasses.replace(HERE, record_id="record-2"),
        dataclasses.replace(HERE, field="username"),
        dataclasses.replace(HERE, version=2),
    ],
    ids=["other-client", "other-kind", "other-row", "other-field", "other-version"],
)
def test_ciphertext_moved_elsewhere_fails(moved: FieldLocation) -> None:
    cipher = FieldCipher(KEY)
    blob = cipher.seal(b"hunter2", HERE)
    with pytest.raises(DecryptionError) as err:
        cipher.open(blob, moved)
    assert "hunter2" not in str(err.value) and "hunter2" not in repr(err.value)


def test_other_client_key_fails() -> None:
    blob = FieldCipher(KEY).seal(b"x", HERE)
    with pytest.raises(DecryptionError):
        FieldCipher(bytes(32)).open(blob, HERE)


@pytest.mark.parametrize("position", [0, 5, 20, -1])
def test_any_flipped_byte_fails(position: int) -> None:
    cipher = FieldCipher(KEY)
    blob = bytearray(cipher.seal(b"some value", HERE))
    blob[position] ^= 0x01
    with pytest.raises(DecryptionError):
        cipher.open(bytes(blob), HERE)


def test_aad_is_unambiguous() -> None:
    # A separator-joined encoding would make these two equal; length prefixes keep them apart.
    a = FieldLocation("ab", "c", "d", "e", 1).associated_data()
    b = FieldLocation("a", "bc", "d", "e", 1).associated_data()
    assert a != b


def test_repr_hides_key() -> None:
    assert KEY.hex() not in repr(FieldCipher(KEY))


@pytest.mark.parametrize("vector", load_json_vectors("fields.json"), ids=lambda v: v["name"])
def test_field_vectors(vector: dict[str, object]) -> None:
    key = bytes.fromhex(str(vector["client_key"]))
    where = FieldLocation(**vector["location"])  # type: ignore[arg-type]
    cipher = FieldCipher(key)
    assert where.associated_data().hex() == vector["aad"]
    blob = bytes.fromhex(str(vector["blob"]))
    if vector["expect"] == "success":
        assert cipher.open(blob, where) == bytes.fromhex(str(vector["plaintext"]))
        assert cipher.seal(bytes.fromhex(str(vector["plaintext"])), where, nonce=blob[1:13]) == blob
    else:
        with pytest.raises(DecryptionError):
            cipher.open(blob, where)
