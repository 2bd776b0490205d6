"""Root-key sealing under Argon2id, and k-of-n unseal shares."""

from __future__ import annotations

import itertools

import pytest

from tests.vectors import load_json_vectors
from vault.crypto.sealing import (
    MAX_MEMORY_KIB,
    KdfParams,
    derive_kek,
    open_root_key,
    seal_root_key,
)
from vault.crypto.shares import combine_shares, split_secret
from vault.errors import InvalidInput, UnsealError


@pytest.mark.parametrize("vector", load_json_vectors("sealing.json"), ids=lambda v: v["name"])
def test_sealing_vectors(vector: dict[str, object]) -> None:
    params = KdfParams.from_json(vector["kdf"])  # type: ignore[arg-type]
    secret = str(vector["passphrase"]).encode()
    sealed = bytes.fromhex(str(vector["sealed_root"]))
    if vector["expect"] == "success":
        assert derive_kek(secret, params).hex() == vector["kek"]
        assert (
            open_root_key(sealed, secret, params, str(vector["vault_id"])).hex()
            == vector["root_key"]
        )
    else:
        with pytest.raises(UnsealError):
            open_root_key(sealed, secret, params, str(vector["vault_id"]))


def test_seal_round_trip_and_wrong_secret() -> None:
    params = KdfParams.weak_for_tests()
    sealed = seal_root_key(b"k" * 32, b"right", params, "vault-1")
    assert open_root_key(sealed, b"right", params, "vault-1") == b"k" * 32
    with pytest.raises(UnsealError) as err:
        open_root_key(sealed, b"wrong", params, "vault-1")
    assert "wrong" in str(err.value) and "right" not in str(err.value)


def test_recommended_params_are_strong() -> None:
    params = KdfParams.recommended()
    assert params.memory_kib >= 64 * 1024 and params.time_cost >= 3 and not params.is_weak
    assert KdfParams.from_json(params.to_json()) == params


@pytest.mark.parametrize(
    "change",
    [
        {"m": MAX_MEMORY_KIB + 1},
        {"t": 0},
        {"t": 10_000},
        {"p": 0},
        {"alg": "argon2i"},
        {"salt": "not base64!"},
        {"m": "lots"},
    ],
)
def test_hostile_kdf_params_refused_before_work(change: dict[str, object]) -> None:
    data = KdfParams.weak_for_tests().to_json() | change
    with pytest.raises(UnsealError):
        KdfParams.from_json(data)


def test_any_k_of_n_shares_unseal() -> None:
    secret, shares = split_secret(3, 5)
    assert len(shares) == 5
    for subset in itertools.combinations(shares, 3):
        assert combine_shares(subset) == secret
    # order and extra whitespace/case do not matter
    assert combine_shares(["  " + shares[4].upper(), shares[0], shares[2] + "\n"]) == secret


def test_k_minus_one_shares_refused() -> None:
    _, shares = split_secret(3, 5)
    for subset in itertools.combinations(shares, 2):
        with pytest.raises(UnsealError):
            combine_shares(subset)


def test_mistyped_share_named_by_number_not_words() -> None:
    _, shares = split_secret(2, 3)
    words = shares[1].split()
    words[5] = "zzzz"
    with pytest.raises(UnsealError) as err:
        combine_shares([shares[0], " ".join(words)])
    assert "share 2" in str(err.value)
    assert not any(w in str(err.value).split() for w in words[:4])


def test_shares_from_two_splits_do_not_mix() -> None:
    _, a = split_secret(2, 3)
    _, b = split_secret(2, 3)
    with pytest.raises(UnsealError):
        combine_shares([a[0], b[1]])


@pytest.mark.parametrize("threshold,count", [(1, 3), (4, 3), (2, 17), (0, 0)])
def test_bad_share_parameters(threshold: int, count: int) -> None:
    with pytest.raises(InvalidInput):
        split_secret(threshold, count)
