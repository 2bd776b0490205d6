"""The two roles a key plays in age, as structural types any key class can satisfy."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .format import Stanza


@runtime_checkable
class Recipient(Protocol):
    """Something a file can be encrypted to."""

    def wrap(self, file_key: bytes) -> list[Stanza]:
        """Stanzas that let the matching identity recover ``file_key``."""
        ...


@runtime_checkable
class Identity(Protocol):
    """Something that can decrypt files encrypted to its recipient."""

    def unwrap(self, stanzas: list[Stanza]) -> bytes | None:
        """The file key from the first stanza this identity opens, or None if none is its.

        Stanzas of other types are ignored (so new types and "grease" never break
        decryption). A malformed stanza *of this identity's own type* raises
        AgeHeaderError instead: the file is invalid, not merely addressed to someone else.
        """
        ...
