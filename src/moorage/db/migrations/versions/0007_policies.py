"""promotion and pruning policies

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "promotion_policies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("tag_template", sa.String(length=255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_promotion_policies_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_policies")),
    )
    op.create_index(op.f("ix_promotion_policies_repository_id"), "promotion_policies", ["repository_id"])
    op.create_table(
        "pruning_policies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("keep_newest", sa.Integer(), nullable=True),
        sa.Column("max_tags", sa.Integer(), nullable=True),
        sa.Column("cron", sa.String(length=255), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_pruning_policies_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pruning_policies")),
    )
    op.create_index(op.f("ix_pruning_policies_repository_id"), "pruning_policies", ["repository_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pruning_policies_repository_id"), table_name="pruning_policies")
    op.drop_table("pruning_policies")
    op.drop_index(op.f("ix_promotion_policies_repository_id"), table_name="promotion_policies")
    op.drop_table("promotion_policies")
