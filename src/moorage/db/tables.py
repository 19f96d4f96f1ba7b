"""Table definitions. Schema changes go through Alembic migrations (``db/migrations``) only;
``tests/db/test_migrations.py`` checks the migrations produce exactly these tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
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

# -- identity and access -------------------------------------------------------------------

# A namespace is a user's or an organization's; repositories live in one ("ns/name").
namespaces = Table(
    "namespaces",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # user | organization
    Column("created_at", DateTime(timezone=True), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"), nullable=False, unique=True
    ),
    Column("username", String(255), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("full_name", String(255), nullable=True),
    Column("email", String(255), nullable=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

organization_members = Table(
    "organization_members",
    metadata,
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),  # owner | member
    Index(None, "user_id"),
)

teams = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("namespace_id", "name"),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Index(None, "user_id"),
)

# Per-repository settings that are not protocol state.
repository_settings = Table(
    "repository_settings",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"), nullable=False),
    Column("visibility", String(16), nullable=False),  # public | private
    Column("description", Text, nullable=True),
    Column("immutable_tags", Boolean, nullable=False, default=False),
    Column("created_by", String(255), nullable=True),
    Column("scan_on_push", Boolean, nullable=True),  # None: the global default (scan_on_push_default)
    Index(None, "namespace_id"),
)

team_repository_access = Table(
    "team_repository_access",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("level", String(16), nullable=False),  # read-only | read-write | admin
    Index(None, "repository_id"),
)

team_namespace_access = Table(
    "team_namespace_access",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True),
    Column("level", String(16), nullable=False),
    Index(None, "namespace_id"),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(255), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 hex of the secret
    Column("token_prefix", String(16), nullable=False),  # shown in listings to tell tokens apart
    Column("is_active", Boolean, nullable=False, default=True),
    Column("kind", String(16), nullable=False),  # personal | refresh
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Index(None, "user_id"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_pem", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=True),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(300), primary_key=True),  # "user:<name>" or "addr:<ip>"
    Column("failures", Integer, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True), nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(255), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(512), nullable=True),
    Column("detail", Text, nullable=True),  # JSON
    Column("remote_addr", String(64), nullable=True),
    Index(None, "at"),
)

# --- Vulnerability database (OSV records, imported offline) ---

# One row per completed import: the database's version and when it was imported.
vulndb_imports = Table(
    "vulndb_imports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(80), nullable=False),  # digest of every (id, modified, withdrawn) held
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("counts", Text, nullable=False),  # JSON: per ecosystem, added/updated/unchanged, invalid
)

vulnerabilities = Table(
    "vulnerabilities",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("modified", DateTime(timezone=True), nullable=False),
    Column("withdrawn", DateTime(timezone=True), nullable=True),
    Column("record", Text, nullable=False),  # the OSV record, JSON as imported
    Column("summary", Text, nullable=True),
    Column("severity", String(16), nullable=True),  # critical | high | medium | low
    Column("score", Float, nullable=True),
)

# The (ecosystem, name) pairs a record names, for lookup; names normalized (PEP 503 for PyPI).
vulnerability_packages = Table(
    "vulnerability_packages",
    metadata,
    Column("vuln_id", String(255), ForeignKey("vulnerabilities.id", ondelete="CASCADE"), primary_key=True),
    Column("ecosystem", String(100), primary_key=True),
    Column("name", String(255), primary_key=True),
    Index(None, "ecosystem", "name"),
)

# --- Scans (issue 5): per-layer inventories, scan jobs and their findings, overrides ---

# A layer's package inventory (``LayerInventory.to_json``), read once per layer digest.
layer_inventories = Table(
    "layer_inventories",
    metadata,
    Column("digest", DIGEST, primary_key=True),
    Column("inventory", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One scan per manifest of a repository; its pending rows are the scan queue.
scans = Table(
    "scans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", DIGEST, nullable=False),
    Column("status", String(16), nullable=False),  # pending | scanning | completed | failed
    Column("reason", Text, nullable=True),
    Column("vulndb_version", String(80), nullable=True),
    Column("queued_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    UniqueConstraint("repository_id", "digest"),
    Index(None, "status"),
)

scan_findings = Table(
    "scan_findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scan_id", Integer, ForeignKey("scans.id", ondelete="CASCADE"), nullable=False),
    Column("vuln_id", String(255), nullable=False),
    Column("package", String(255), nullable=False),
    Column("ecosystem", String(100), nullable=False),
    Column("version", String(255), nullable=False),
    Column("fixed_versions", Text, nullable=False),  # JSON list
    Column("severity", String(16), nullable=True),
    Column("score", Float, nullable=True),
    Column("layer", DIGEST, nullable=True),
    Column("path", Text, nullable=True),
    Column("summary", Text, nullable=True),
    Column("aliases", Text, nullable=False),  # JSON list
    Column("purl", Text, nullable=True),
    Index(None, "scan_id"),
)

# A repository admin hides a vulnerability for one package ("*": every package).
vulnerability_overrides = Table(
    "vulnerability_overrides",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("vuln_id", String(255), nullable=False),
    Column("package", String(255), nullable=False),
    Column("note", Text, nullable=True),
    Column("created_by", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("repository_id", "vuln_id", "package"),
)

# --- Events and jobs (issue 7): the outbox, its consumers' cursors, background jobs, schedules ---

# Every change, written in the change's own transaction; consumers read it in id order.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("namespace", String(255), nullable=True),
    Column("repository", String(512), nullable=True),
    Column("tag", String(255), nullable=True),
    Column("digest", DIGEST, nullable=True),
    Column("actor", String(255), nullable=True),
    Column("contents", Text, nullable=False),  # JSON
    Index(None, "repository", "id"),
    Index(None, "type", "id"),
)

# How far each consumer of the outbox has read (the highest event id it has handled).
event_cursors = Table(
    "event_cursors",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("last_id", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Background work: pending rows are the queue; claimed with a conditional UPDATE.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending | running | succeeded | failed | cancelled
    Column("payload", Text, nullable=False),  # JSON
    Column("result", Text, nullable=True),  # JSON
    Column("error", Text, nullable=True),
    Column("log", Text, nullable=False, default=""),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False, default=1),
    Column("backoff_seconds", Float, nullable=False, default=5.0),
    Column("dedupe_key", String(255), nullable=True, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("run_after", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index(None, "status", "run_after"),
    Index(None, "kind", "id"),
)

# Recurring jobs in cron syntax; a due schedule enqueues one job and moves to its next time.
schedules = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("kind", String(64), nullable=False),
    Column("cron", String(255), nullable=False),
    Column("payload", Text, nullable=False),  # JSON
    Column("enabled", Boolean, nullable=False),
    Column("next_run_at", DateTime(timezone=True), nullable=False),
    Column("last_run_at", DateTime(timezone=True), nullable=True),
    Column("last_job_id", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# --- Web UI sessions (issue 6): a signed-in browser, revocable server-side ---

# ``id`` is the SHA-256 of the cookie's secret: a leaked database does not hand out sessions.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index(None, "user_id"),
    Index(None, "expires_at"),
)

# --- Webhooks (issue 7): endpoints told about events, and every attempt to tell them ---

# One endpoint, for a repository, a namespace, or the whole registry (both ids null). The
# secret signs every delivery (HMAC-SHA256), so it is stored as given, recoverable.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(16), nullable=False),  # repository | namespace | global
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=True),
    Column("namespace_id", Integer, ForeignKey("namespaces.id", ondelete="CASCADE"), nullable=True),
    Column("name", String(255), nullable=True),
    Column("url", Text, nullable=False),
    Column("event_types", Text, nullable=False),  # JSON list
    Column("secret", String(255), nullable=False),
    Column("format", String(16), nullable=False),  # default | cloudevents
    Column("ca_cert", Text, nullable=True),  # PEM, trusted for this endpoint only
    Column("skip_verify", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_by", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "repository_id"),
    Index(None, "namespace_id"),
)

# Every attempt to deliver an event (or a test) to a webhook, newest kept per webhook.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", Integer, nullable=True),  # null for a test delivery
    Column("event_type", String(32), nullable=False),
    Column("job_id", Integer, nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # succeeded | failed
    Column("response_code", Integer, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index(None, "webhook_id", "id"),
)

# --- Mirroring (issue 7): push mirrors (to a remote on push) and pull mirrors (polled) ---

# One mirror of a repository. ``direction`` push: the repository's tags are sent to
# ``remote_repository`` on ``url`` (tag from ``tag_template``); pull: ``remote_repository``'s
# tags are copied into the repository on the ``cron`` schedule. ``password`` is kept as given
# (it must be sent to the remote); the API never returns it.
mirrors = Table(
    "mirrors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("direction", String(8), nullable=False),  # push | pull
    Column("url", String(1024), nullable=False),
    Column("remote_repository", String(255), nullable=False),
    Column("username", String(255), nullable=True),
    Column("password", Text, nullable=True),
    Column("ca_certificate", Text, nullable=True),  # PEM
    Column("skip_verify", Boolean, nullable=False),
    Column("tag_template", String(255), nullable=True),  # push: "%n" = the source tag
    Column("rules", Text, nullable=True),  # JSON: rules (services/policy_rules.py) a tag must match
    Column("cron", String(255), nullable=True),  # pull
    Column("enabled", Boolean, nullable=False),
    Column("created_by", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_status", String(16), nullable=True),  # succeeded | failed | partial
    Column("last_error", Text, nullable=True),
    Column("last_run_at", DateTime(timezone=True), nullable=True),
    Column("last_job_id", Integer, nullable=True),
    Index(None, "repository_id", "direction"),
)

# --- Policies (issue 7): promotion and pruning, per source repository ---

# Copy matching tags into another repository, on push, on scan completion, or on demand.
promotion_policies = Table(
    "promotion_policies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("target", String(255), nullable=False),  # a repository name: it may not exist yet
    Column("rules", Text, nullable=False),  # JSON list of {field, operator, value}
    Column("tag_template", String(255), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_by", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "repository_id"),
)

# Remove matching tags beyond the newest N or the repository's tag limit; on demand, by cron, after pushes.
pruning_policies = Table(
    "pruning_policies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("rules", Text, nullable=False),  # JSON list of {field, operator, value}
    Column("keep_newest", Integer, nullable=True),
    Column("max_tags", Integer, nullable=True),
    Column("cron", String(255), nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("created_by", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(None, "repository_id"),
)

# --- Garbage collection (issue 7): one row per run, what it found or removed ---

gc_runs = Table(
    "gc_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, nullable=True),  # the gc.run job (none when run from the CLI)
    Column("status", String(16), nullable=False),  # queued | running | succeeded | failed
    Column("dry_run", Boolean, nullable=False),
    Column("trigger", String(16), nullable=False),  # api | schedule | cli
    Column("requested_by", String(255), nullable=True),
    Column("grace_seconds", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("manifests_deleted", Integer, nullable=False, default=0),
    Column("blob_links_deleted", Integer, nullable=False, default=0),
    Column("blobs_deleted", Integer, nullable=False, default=0),
    Column("bytes_freed", BigInteger, nullable=False, default=0),
    Column("summary", Text, nullable=True),  # JSON: per-kind counts and bytes
    Column("error", Text, nullable=True),
    Index(None, "status"),
)

# Garbage collection asks "does any repository still link this blob?" per digest.
Index("ix_repository_blobs_digest", repository_blobs.c.digest)
