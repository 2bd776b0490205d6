"""Errors of the transparency-log primitives, under the one root :class:`CustodyError`.

Proofs, notes and checkpoints arrive from outside (a client's stored checkpoint, a witness, an
export bundle), so every way they can be wrong is one of these classes and never a bare
``ValueError``. Messages name what was wrong (a size, a line, a key name), never key material.
"""

from __future__ import annotations

from vault.errors import CustodyError


class LogError(CustodyError):
    """Something about the transparency log did not check out."""

    code = "log_error"


class ProofError(LogError):
    """A Merkle inclusion or consistency proof did not verify (or its sizes are impossible)."""

    code = "invalid_proof"


class NoteError(LogError):
    """A signed note, checkpoint or key string is malformed."""

    code = "invalid_note"


class SignatureError(NoteError):
    """A signed note has no verified signature from a known key, or a known key's fails."""

    code = "bad_signature"
