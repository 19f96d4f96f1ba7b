"""Table definitions. Schema changes go through Alembic migrations (``db/migrations``) only;
``tests/db/test_migrations.py`` checks the migrations produce exactly these tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

DIGEST = String(200)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Every blob the store holds, with its size: the database's view of the blob store.
blobs = Table(
    "blobs",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A blob is visible in a repository once pushed or mounted there ("links").
repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", DIGEST, ForeignKey("blobs.digest", ondelete="CASCADE"), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255), nullable=True),
    # Classification, decided once on push: image, multi-arch, application, invocation, plugin, artifact.
    Column("kind", String(32), nullable=False),
    Column("config_digest", DIGEST, nullable=True),
    Column("subject_digest", DIGEST, nullable=True),
    Column("platform_os", String(64), nullable=True),
    Column("platform_architecture", String(64), nullable=True),
    Column("platform_variant", String(64), nullable=True),
    Column("annotations", Text, nullable=True),  # JSON object, for the referrers API
    Column("size", BigInteger, nullable=False),  # the manifest's own length
    Column("total_size", BigInteger, nullable=False),  # manifest + what it references
    Column("content", LargeBinary, nullable=False),
    Column("pushed_at", DateTime(timezone=True), nullable=False),
    Column("pushed_by", String(255), nullable=True),
    UniqueConstraint("repository_id", "digest"),
    Index(None, "repository_id", "subject_digest"),
)

# Blobs (config and layers) a manifest references.
manifest_blobs = Table(
    "manifest_blobs",
    metadata,
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", DIGEST, primary_key=True),
    Index(None, "digest"),
)

# Manifests an index references.
manifest_children = Table(
    "manifest_children",
    metadata,
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True),
    Column("child_digest", DIGEST, primary_key=True),
    Index(None, "child_digest"),
)

tags = Table(
    "tags",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(255), nullable=True),
    Index(None, "manifest_id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
