"""leases: one foreign key for the secret and its client together

A lease referred to its secret and, separately, to its client. Now one key refers to the pair
(secrets.id, secrets.client_id): a lease's client can no longer differ from its secret's, and
a check-out no longer locks the client's row (PostgreSQL takes FOR KEY SHARE on every row a new
foreign key refers to, so concurrent check-outs of one client's secrets all shared that row).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f("uq_secrets_id"), ["id", "client_id"])
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_leases_client_id_clients"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_leases_secret_id_secrets"), type_="foreignkey")
        batch_op.create_foreign_key(
            batch_op.f("fk_leases_secret_id_secrets"),
            "secrets",
            ["secret_id", "client_id"],
            ["id", "client_id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_leases_secret_id_secrets"), type_="foreignkey")
        batch_op.create_foreign_key(
            batch_op.f("fk_leases_secret_id_secrets"),
            "secrets",
            ["secret_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_leases_client_id_clients"),
            "clients",
            ["client_id"],
            ["id"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_secrets_id"), type_="unique")
