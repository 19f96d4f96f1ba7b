"""Request and response bodies of the mirroring endpoints (camelCase on the wire)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from moorage.api.models import NO_NUL, Input, Output, UtcDatetime, _Clean
from moorage.oci.reference import MAX_NAME_LENGTH

Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=1024,
        pattern=NO_NUL,
        description="The remote registry: http(s)://host[:port] (a bare host[:port] means https)",
        examples=["https://registry.example.com", "http://127.0.0.1:5000"],
    ),
    _Clean,
]
RemoteRepository = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NO_NUL, description="Repository on the remote"),
    _Clean,
]
Username = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL), _Clean]
Secret = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        pattern=NO_NUL,
        description="Password or access token at the remote; stored to be presented there, never returned",
    ),
    _Clean,
]
CaCert = Annotated[
    str,
    Field(
        min_length=1,
        max_length=65536,
        pattern=NO_NUL,
        description="PEM CA certificate(s) the remote's certificate must chain to (instead of the system's)",
    ),
    _Clean,
]
TagTemplate = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=NO_NUL,
        description="The remote tag: %n = the source tag, %D = 12 hex digits of the digest, "
        "%Y %m %d %H %M %S = the time (UTC)",
    ),
    _Clean,
]
Cron = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=NO_NUL,
        description="When to poll: a cron expression (minute hour day month weekday)",
        examples=["*/15 * * * *"],
    ),
    _Clean,
]
RuleValue = Annotated[
    str | int | list[Annotated[str, Field(max_length=255, pattern=NO_NUL), _Clean]],
    Field(description="A string, a whole number, or a list of strings, as the operator wants"),
]


class MirrorRule(Input):
    """A rule a tag must match (all rules of a mirror must); the rule language of policies,
    over ``tag`` (and, for push mirrors, ``pushed``)."""

    field: Annotated[str, Field(min_length=1, max_length=64, examples=["tag"])]
    operator: Annotated[str, Field(min_length=1, max_length=32, examples=["startswith"])]
    value: RuleValue


Rules = Annotated[list[MirrorRule], Field(max_length=50, description="All must match; none: every tag")]


class MirrorCreate(Input):
    url: Url
    remote_repository: RemoteRepository
    username: Username | None = None
    password: Secret | None = None
    ca_certificate: CaCert | None = None
    skip_verify: bool = Field(False, description="Accept any certificate from the remote (testing only)")
    rules: Rules = []
    enabled: bool = True


class PushMirrorCreate(MirrorCreate):
    tag_template: TagTemplate = "%n"


class PullMirrorCreate(MirrorCreate):
    cron: Cron


class MirrorUpdate(Input):
    """Only the fields given change; ``username``/``password``/``caCertificate: null`` remove them."""

    url: Url | None = None
    remote_repository: RemoteRepository | None = None
    username: Username | None = None
    password: Secret | None = None
    ca_certificate: CaCert | None = None
    skip_verify: bool | None = None
    rules: Rules | None = None
    enabled: bool | None = None


class PushMirrorUpdate(MirrorUpdate):
    tag_template: TagTemplate | None = None


class PullMirrorUpdate(MirrorUpdate):
    cron: Cron | None = None


class Mirror(Output):
    id: int
    repository: str = Field(description="The Moorage repository: the source (push) or the target (pull)")
    direction: Literal["push", "pull"]
    url: str
    remote_repository: str
    username: str | None
    has_password: bool = Field(description="Whether a password or token is stored (it is never shown)")
    ca_certificate: str | None
    skip_verify: bool
    tag_template: str | None = Field(description="Push mirrors: the remote tag")
    rules: list[dict[str, Any]]
    cron: str | None = Field(description="Pull mirrors: when the remote is polled")
    enabled: bool
    created_by: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    last_status: Literal["succeeded", "failed", "partial"] | None
    last_error: str | None
    last_run_at: UtcDatetime | None
    last_job_id: int | None = Field(description="The last run's job: GET /jobs/{id} shows its log")
    next_run_at: UtcDatetime | None = Field(description="Pull mirrors: the next scheduled poll")


class SyncStarted(Output):
    job_id: int = Field(description="GET /jobs/{id} follows it")
