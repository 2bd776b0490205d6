"""Turn user-supplied text into recipients and identities, with errors safe to display.

Error messages say what was expected and show at most a short prefix of the input: people
paste secrets into the wrong field, and an error message ends up in logs.
"""

from __future__ import annotations

from vault.errors import MalformedIdentity, MalformedRecipient

from .interfaces import Identity, Recipient
from .ssh import SSHEd25519Identity, SSHEd25519Recipient
from .x25519 import X25519Identity, X25519Recipient

_PREVIEW_CHARS = 6
_OPENSSH_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
_SECRET_PREFIXES = ("AGE-SECRET-KEY-", "AGE-PLUGIN-", "-----BEGIN")


def _preview(text: str) -> str:
    """A short, printable prefix of ``text`` for an error message (never a whole key)."""
    head = text[:_PREVIEW_CHARS]
    if not head.isascii() or not head.isprintable():
        return "input"
    return repr(head + "…") if len(text) > _PREVIEW_CHARS else repr(head)


def parse_recipient(text: str) -> Recipient:
    """An ``age1…`` recipient or an ``ssh-ed25519 AAAA…`` public key line."""
    s = text.strip()
    if s.startswith("age1"):
        return X25519Recipient.from_string(s)
    if s.startswith("ssh-ed25519 "):
        return SSHEd25519Recipient.from_string(s)
    if s.startswith("ssh-"):
        raise MalformedRecipient("unsupported SSH key type: only ssh-ed25519 keys can be used")
    if s.upper().startswith(_SECRET_PREFIXES):
        # Deliberately no preview: this is (or looks like) private key material.
        raise MalformedRecipient(
            "this looks like a private key; give the public recipient (age1… or ssh-ed25519 …)"
        )
    raise MalformedRecipient(
        f"expected an age1… recipient or an ssh-ed25519 public key, got {_preview(s)}"
    )


def parse_identities(text: str) -> list[Identity]:
    """The identities in an age identity file or an unencrypted OpenSSH Ed25519 key.

    An identity file holds ``AGE-SECRET-KEY-1…`` lines; blank lines and ``#`` comments
    (such as age-keygen's "# public key:") are ignored. Errors name the line, not its text.
    """
    stripped = text.lstrip()
    if stripped.startswith(_OPENSSH_BEGIN):
        return [SSHEd25519Identity.from_openssh_private_key(text.encode("utf-8"))]
    if stripped.startswith("-----BEGIN AGE ENCRYPTED FILE") or stripped.startswith(
        "age-encryption.org/"
    ):
        raise MalformedIdentity("this identity file is itself age-encrypted; decrypt it first")
    if stripped.startswith("-----BEGIN"):
        raise MalformedIdentity("unsupported PEM key: only OpenSSH ed25519 keys are supported")

    identities: list[Identity] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("AGE-SECRET-KEY-1"):
            try:
                identities.append(X25519Identity.from_string(line))
            except MalformedIdentity:
                raise MalformedIdentity(
                    f"identity file line {number}: malformed AGE-SECRET-KEY-1… identity"
                ) from None
        elif line.startswith(("AGE-PLUGIN-", "AGE-SECRET-KEY-")):
            raise MalformedIdentity(
                f"identity file line {number}: plugin and post-quantum identities are not supported"
            )
        else:
            raise MalformedIdentity(
                f"identity file line {number}: expected an AGE-SECRET-KEY-1… identity"
            )
    if not identities:
        raise MalformedIdentity("no identities found in the identity file")
    return identities
