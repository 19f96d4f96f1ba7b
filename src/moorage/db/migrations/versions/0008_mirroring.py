"""push and pull mirrors

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mirrors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("remote_repository", sa.String(length=255), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("password", sa.Text(), nullable=True),
        sa.Column("ca_certificate", sa.Text(), nullable=True),
        sa.Column("skip_verify", sa.Boolean(), nullable=False),
        sa.Column("tag_template", sa.String(length=255), nullable=True),
        sa.Column("rules", sa.Text(), nullable=True),
        sa.Column("cron", sa.String(length=255), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_job_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_mirrors_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirrors")),
    )
    op.create_index(op.f("ix_mirrors_repository_id_direction"), "mirrors", ["repository_id", "direction"])


def downgrade() -> None:
    op.drop_index(op.f("ix_mirrors_repository_id_direction"), table_name="mirrors")
    op.drop_table("mirrors")
