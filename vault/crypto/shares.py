"""k-of-n secret sharing of the unseal secret, as SLIP-39 mnemonics.

We do not write our own Shamir code: SLIP-39 (Trezor's ``shamir-mnemonic``, the reference
implementation) gives shares as word lists an operator can write on paper, with a checksum that
catches a mistyped word, and an identifier that refuses shares from different splits. Any
``threshold`` shares rebuild the secret; fewer reveal nothing about it (information-theoretic
security of Shamir's scheme over GF(256)).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from vault.errors import InvalidInput, UnsealError

SECRET_SIZE = 32
MAX_SHARES = 16


def split_secret(
    threshold: int, total: int, secret: bytes | None = None
) -> tuple[bytes, list[str]]:
    """Make a fresh random unseal secret (or use ``secret``) and split it into ``total``
    mnemonic shares of which any ``threshold`` rebuild it."""
    import shamir_mnemonic

    if not 2 <= threshold <= total <= MAX_SHARES:
        raise InvalidInput(
            f"shares need 2 <= threshold <= shares <= {MAX_SHARES} "
            f"(got threshold {threshold}, shares {total})",
            field="threshold",
        )
    secret = os.urandom(SECRET_SIZE) if secret is None else secret
    groups = shamir_mnemonic.generate_mnemonics(
        group_threshold=1, groups=[(threshold, total)], master_secret=secret
    )
    return secret, list(groups[0])


def share_identifier(mnemonic: str) -> int:
    """The split a share belongs to; raises UnsealError (naming no word) if it is not a share."""
    import shamir_mnemonic
    from shamir_mnemonic.share import Share

    try:
        return int(Share.from_mnemonic(" ".join(mnemonic.split()).lower()).identifier)
    except shamir_mnemonic.MnemonicError:
        raise UnsealError("that is not a valid share (a mistyped word or a bad checksum)") from None


def combine_shares(mnemonics: Iterable[str]) -> bytes:
    import shamir_mnemonic
    from shamir_mnemonic.share import Share

    cleaned = [" ".join(m.split()).lower() for m in mnemonics if m.strip()]
    for number, mnemonic in enumerate(cleaned, start=1):
        try:
            Share.from_mnemonic(mnemonic)
        except shamir_mnemonic.MnemonicError:
            # The library's message quotes words of the share: say only which one failed.
            raise UnsealError(
                f"share {number} is not a valid share (a mistyped word or a bad checksum)"
            ) from None
    try:
        return bytes(shamir_mnemonic.combine_mnemonics(cleaned))
    except shamir_mnemonic.MnemonicError as exc:
        # Once every share parses, the remaining messages describe counts and indices only.
        raise UnsealError(f"shares could not be combined: {exc}") from None
