"""scans: layer inventories, scan jobs, findings, vulnerability overrides, scan on push

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 13:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repository_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scan_on_push", sa.Boolean(), nullable=True))
    op.create_table(
        "layer_inventories",
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("inventory", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_layer_inventories")),
    )
    op.create_table(
        "scans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("vulndb_version", sa.String(length=80), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_scans_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scans")),
        sa.UniqueConstraint("repository_id", "digest", name=op.f("uq_scans_repository_id_digest")),
    )
    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scans_status"), ["status"], unique=False)
    op.create_table(
        "scan_findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("vuln_id", sa.String(length=255), nullable=False),
        sa.Column("package", sa.String(length=255), nullable=False),
        sa.Column("ecosystem", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("fixed_versions", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("layer", sa.String(length=200), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("aliases", sa.Text(), nullable=False),
        sa.Column("purl", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["scan_id"], ["scans.id"], name=op.f("fk_scan_findings_scan_id_scans"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_findings")),
    )
    with op.batch_alter_table("scan_findings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scan_findings_scan_id"), ["scan_id"], unique=False)
    op.create_table(
        "vulnerability_overrides",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("vuln_id", sa.String(length=255), nullable=False),
        sa.Column("package", sa.String(length=255), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_vulnerability_overrides_repository_id_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vulnerability_overrides")),
        sa.UniqueConstraint(
            "repository_id",
            "vuln_id",
            "package",
            name=op.f("uq_vulnerability_overrides_repository_id_vuln_id_package"),
        ),
    )


def downgrade() -> None:
    op.drop_table("vulnerability_overrides")
    with op.batch_alter_table("scan_findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scan_findings_scan_id"))
    op.drop_table("scan_findings")
    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scans_status"))
    op.drop_table("scans")
    op.drop_table("layer_inventories")
    with op.batch_alter_table("repository_settings", schema=None) as batch_op:
        batch_op.drop_column("scan_on_push")
