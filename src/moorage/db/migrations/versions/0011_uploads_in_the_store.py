"""uploads live in the blob store alone

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 05:30:00.000000

An upload's repository is now part of its name in the store (``services/blobs.py``), and its
idle time the store's to say, so the ``uploads`` table goes. Uploads in progress while a
server is upgraded past this revision are unknown afterwards: their clients get
``BLOB_UPLOAD_UNKNOWN`` and must push those blobs anew, and their files are discarded as
idle after ``upload_expiry_hours``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("uploads")


def downgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
