"""leases: index open leases by expiry, instead of every lease

The lease sweep (every server process, now and then), the overdue list and a consultant's open
leases all ask for leases that are still open. With an index on every lease's expiry, the sweep's
range "expired by now" covered every lease that ever ended, and grew with the history (10^6
ended leases: 257 ms a sweep on SQLite, inside the write lock, and 122 ms on PostgreSQL;
bench/bench_lease_sweep.py). A partial index holds the open leases alone.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_OPEN = sa.text("released_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leases_expires_at"))
        batch_op.create_index(
            "ix_leases_open_expiry",
            ["expires_at"],
            unique=False,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        )


def downgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_index("ix_leases_open_expiry")
        batch_op.create_index(batch_op.f("ix_leases_expires_at"), ["expires_at"], unique=False)
