"""Interoperability with the reference age implementation (Debian's age 1.1.1)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from vault.crypto.age import (
    ScryptIdentity,
    ScryptRecipient,
    SSHEd25519Recipient,
    X25519Identity,
    decrypt,
    encrypt,
    parse_identities,
    parse_recipient,
)
from vault.errors import MalformedIdentity

from ..interop import require_tool, run_with_tty

pytestmark = pytest.mark.interop

PLAINTEXT = b"escrowed credential \xe2\x9c\x93\n" * 5000  # ~130 KiB: three STREAM chunks
TIMEOUT = 60


def _run(*args: str, stdin: bytes = b"") -> bytes:
    result = subprocess.run(args, input=stdin, capture_output=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


@pytest.fixture(scope="module")
def age() -> str:
    return require_tool("age")


@pytest.fixture(scope="module")
def age_keygen() -> str:
    return require_tool("age-keygen")


@pytest.fixture
def keyfile(tmp_path: Path, age_keygen: str) -> Path:
    path = tmp_path / "key.txt"
    _run(age_keygen, "-o", str(path))
    return path


def _public_key_comment(keyfile: Path) -> str:
    for line in keyfile.read_text().splitlines():
        if line.startswith("# public key: "):
            return line.removeprefix("# public key: ")
    raise AssertionError("age-keygen wrote no public key comment")


def test_age_decrypts_our_file(age: str, keyfile: Path, tmp_path: Path) -> None:
    recipient = parse_recipient(_public_key_comment(keyfile))
    encrypted = tmp_path / "ours.age"
    encrypted.write_bytes(encrypt(PLAINTEXT, [recipient]))
    assert _run(age, "-d", "-i", str(keyfile), str(encrypted)) == PLAINTEXT


def test_we_decrypt_age_file(age: str, keyfile: Path) -> None:
    ciphertext = _run(age, "-r", _public_key_comment(keyfile), stdin=PLAINTEXT)
    assert decrypt(ciphertext, parse_identities(keyfile.read_text())) == PLAINTEXT


def test_armor_both_ways(age: str, keyfile: Path, tmp_path: Path) -> None:
    recipient = _public_key_comment(keyfile)
    armored = _run(age, "-a", "-r", recipient, stdin=PLAINTEXT)
    assert armored.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert decrypt(armored, parse_identities(keyfile.read_text())) == PLAINTEXT

    ours = tmp_path / "ours.age.asc"
    ours.write_bytes(encrypt(PLAINTEXT, [parse_recipient(recipient)], armor=True))
    assert _run(age, "-d", "-i", str(keyfile), str(ours)) == PLAINTEXT


def test_age_keygen_identity_matches_its_recipient(keyfile: Path) -> None:
    (identity,) = parse_identities(keyfile.read_text())
    assert isinstance(identity, X25519Identity)
    assert str(identity.recipient) == _public_key_comment(keyfile)
    assert str(identity) in keyfile.read_text()  # same canonical (uppercase) encoding


def test_multiple_recipients_with_age(age: str, keyfile: Path, tmp_path: Path) -> None:
    ours = X25519Identity.generate()
    theirs = _public_key_comment(keyfile)
    encrypted = tmp_path / "both.age"
    encrypted.write_bytes(encrypt(PLAINTEXT, [ours.recipient, parse_recipient(theirs)]))
    assert _run(age, "-d", "-i", str(keyfile), str(encrypted)) == PLAINTEXT
    ciphertext = _run(age, "-r", str(ours.recipient), "-r", theirs, stdin=PLAINTEXT)
    assert decrypt(ciphertext, [ours]) == PLAINTEXT


@pytest.fixture
def ssh_key(tmp_path: Path) -> Path:
    ssh_keygen = require_tool("ssh-keygen")
    path = tmp_path / "id_ed25519"
    _run(ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", "custody@test", "-f", str(path))
    return path


def test_ssh_ed25519_both_ways(age: str, ssh_key: Path, tmp_path: Path) -> None:
    public_line = Path(f"{ssh_key}.pub").read_text()
    recipient = parse_recipient(public_line)
    assert isinstance(recipient, SSHEd25519Recipient)
    # Our wire encoding of the key is OpenSSH's.
    assert str(recipient) == " ".join(public_line.split()[:2])
    load_ssh_public_key(str(recipient).encode())

    encrypted = tmp_path / "ours.age"
    encrypted.write_bytes(encrypt(PLAINTEXT, [recipient]))
    assert _run(age, "-d", "-i", str(ssh_key), str(encrypted)) == PLAINTEXT

    ciphertext = _run(age, "-R", f"{ssh_key}.pub", stdin=PLAINTEXT)
    assert decrypt(ciphertext, parse_identities(ssh_key.read_text())) == PLAINTEXT


def test_passphrase_protected_ssh_key_is_refused_clearly(tmp_path: Path) -> None:
    ssh_keygen = require_tool("ssh-keygen")
    path = tmp_path / "id_locked"
    _run(ssh_keygen, "-q", "-t", "ed25519", "-N", "correct horse", "-f", str(path))
    with pytest.raises(MalformedIdentity, match="passphrase-protected"):
        parse_identities(path.read_text())


def test_age_uses_our_passphrase_encrypted_identity_file(age: str, tmp_path: Path) -> None:
    phrase = "interop secret words"
    identity = X25519Identity.generate()
    identity_file = f"# public key: {identity.recipient}\n{identity}\n".encode()
    encrypted_identity = tmp_path / "identity.age"
    encrypted_identity.write_bytes(encrypt(identity_file, [ScryptRecipient(phrase, 12)]))

    data = tmp_path / "data.age"
    data.write_bytes(encrypt(PLAINTEXT, [identity.recipient]))
    out = tmp_path / "data.txt"
    code, transcript = run_with_tty(
        [age, "-d", "-i", str(encrypted_identity), "-o", str(out), str(data)], phrase
    )
    assert code == 0, transcript
    assert "passphrase" in transcript.lower()  # it really was typed at the prompt
    assert out.read_bytes() == PLAINTEXT


def test_scrypt_both_ways_with_age(age: str, tmp_path: Path) -> None:
    phrase = "another interop secret"
    ours = tmp_path / "ours.age"
    ours.write_bytes(encrypt(PLAINTEXT, [ScryptRecipient(phrase, 12)]))
    out = tmp_path / "ours.txt"
    code, transcript = run_with_tty([age, "-d", "-o", str(out), str(ours)], phrase)
    assert code == 0, transcript
    assert out.read_bytes() == PLAINTEXT

    plain = tmp_path / "plain.txt"
    plain.write_bytes(PLAINTEXT)
    theirs = tmp_path / "theirs.age"
    # age -p asks for the passphrase and then for its confirmation.
    code, transcript = run_with_tty([age, "-p", "-o", str(theirs), str(plain)], phrase)
    assert code == 0, transcript
    assert decrypt(theirs.read_bytes(), [ScryptIdentity(phrase)]) == PLAINTEXT
