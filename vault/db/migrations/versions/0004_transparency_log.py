"""transparency log: leaf index and hash per event, log head, subtree hashes, checkpoints

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Events recorded before this revision become the first leaves of the log, in the order they
were written (by id). The log key that signs checkpoints needs the unsealed root key, so it is
made at the next unseal, not here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("compact", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_state")),
    )
    op.create_table(
        "log_nodes",
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_log_nodes")),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_log_checkpoints")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("leaf_hash", sa.LargeBinary(), nullable=True))

    _backfill(op.get_bind())

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("leaf_hash", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_audit_events_seq"), ["seq"])


def _backfill(conn: sa.Connection) -> None:
    # The leaf encoding is frozen by docs/audit-log.md (v1), so calling it from here is safe.
    from vault.db.models import UTCDateTime
    from vault.keys import initial_origin
    from vault.log import merkle
    from vault.log.events import leaf_bytes
    from vault.services.auditlog import STORED_LEVELS

    meta = conn.execute(sa.text("SELECT vault_id FROM vault_meta WHERE id = 1")).first()
    if meta is None:
        return  # no vault yet: init creates the log head
    events = sa.table(
        "audit_events",
        sa.column("id", sa.Integer()),
        sa.column("seq", sa.BigInteger()),
        sa.column("leaf_hash", sa.LargeBinary()),
        sa.column("at", UTCDateTime()),
        sa.column("actor", sa.String()),
        sa.column("role", sa.String()),
        sa.column("source", sa.String()),
        sa.column("action", sa.String()),
        sa.column("outcome", sa.String()),
        sa.column("client_id", sa.String()),
        sa.column("subject_kind", sa.String()),
        sa.column("subject_id", sa.String()),
        sa.column("detail", sa.JSON()),
    )
    compact = merkle.CompactRange()
    nodes: list[dict[str, object]] = []

    def keep(level: int, idx: int, digest: bytes) -> None:
        if level in STORED_LEVELS:
            nodes.append({"level": level, "idx": idx, "hash": digest})

    rows = conn.execute(sa.select(events).order_by(events.c.id)).mappings().all()
    for seq, row in enumerate(rows):
        digest = merkle.leaf_hash(leaf_bytes(seq, dict(row)))
        compact.append(digest, keep)
        conn.execute(
            events.update().where(events.c.id == row["id"]).values(seq=seq, leaf_hash=digest)
        )
    if nodes:
        conn.execute(
            sa.table(
                "log_nodes",
                sa.column("level", sa.Integer()),
                sa.column("idx", sa.BigInteger()),
                sa.column("hash", sa.LargeBinary()),
            ).insert(),
            nodes,
        )
    conn.execute(
        sa.text("INSERT INTO log_state (id, origin, size, compact) VALUES (1, :o, :n, :c)"),
        {"o": initial_origin(meta[0]), "n": compact.size, "c": compact.to_bytes()},
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_seq"), type_="unique")
        batch_op.drop_column("leaf_hash")
        batch_op.drop_column("seq")
    op.drop_table("log_checkpoints")
    op.drop_table("log_nodes")
    op.drop_table("log_state")
