"""escrow drop destinations, client-triggered takeover, notices

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("notice_days", sa.Integer(), server_default="7", nullable=False)
        )
        batch_op.add_column(
            sa.Column("takeover_requested_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("takeover_requested_by", sa.String(200), nullable=True))
        batch_op.add_column(
            sa.Column("takeover_effective_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("owned_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("by_client", sa.Boolean(), server_default="false", nullable=False)
        )
    op.create_table(
        "escrow_destinations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=True),
        sa.Column("token_ct", sa.LargeBinary(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("every_hours", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overdue_since", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('directory', 'https')", name=op.f("ck_escrow_destinations_kind")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_escrow_destinations_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_destinations")),
    )
    op.create_index(op.f("ix_escrow_destinations_client_id"), "escrow_destinations", ["client_id"])
    op.create_index(
        op.f("ix_escrow_destinations_next_attempt_at"), "escrow_destinations", ["next_attempt_at"]
    )
    op.create_table(
        "notices",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_notices_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
    )
    op.create_index(op.f("ix_notices_client_id"), "notices", ["client_id"])
    op.create_index(op.f("ix_notices_created_at"), "notices", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notices_created_at"), table_name="notices")
    op.drop_index(op.f("ix_notices_client_id"), table_name="notices")
    op.drop_table("notices")
    op.drop_index(op.f("ix_escrow_destinations_next_attempt_at"), table_name="escrow_destinations")
    op.drop_index(op.f("ix_escrow_destinations_client_id"), table_name="escrow_destinations")
    op.drop_table("escrow_destinations")
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_column("by_client")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("owned_at")
        batch_op.drop_column("takeover_effective_at")
        batch_op.drop_column("takeover_requested_by")
        batch_op.drop_column("takeover_requested_at")
        batch_op.drop_column("notice_days")
