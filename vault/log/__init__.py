"""Transparency-log primitives: RFC 9162 Merkle trees and C2SP signed notes and checkpoints.

``merkle.py`` hashes leaves, keeps a compact range of an append-only tree, and makes and checks
inclusion and consistency proofs (RFC 9162, section 2.1). ``note.py`` signs and opens C2SP signed
notes (c2sp.org/signed-note, Ed25519) and formats tree heads as C2SP checkpoints
(c2sp.org/tlog-checkpoint). Both are pure: they take bytes and strings and return bytes and
strings; storage and time belong to the journal that uses them.
"""
