"""Request and response bodies of the management API (camelCase on the wire).

Input models refuse unknown fields and carry the limits the database can store, so bad
input is a 422 naming the field, never a database error. Output models are built from
the services' dataclasses by attribute name.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from moorage.oci.reference import MAX_NAME_LENGTH, MAX_NAMESPACE_LENGTH
from moorage.services.passwords import MAX_SECRET_LENGTH, MIN_PASSWORD_LENGTH

#: No NUL characters: PostgreSQL cannot store them in text columns.
NO_NUL = r"^[^\x00]*$"
#: The distribution-spec's path component. The services check names (with messages that
#: say what is wrong); these patterns only make the document say what they accept.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_PATTERN = rf"^{_COMPONENT}$"
REPOSITORY_PATTERN = rf"^{_COMPONENT}(?:/{_COMPONENT})+$"
NOT_BLANK = r"^[^\x00]*[^\x00\s][^\x00]*$"


def _encodable(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


def _utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; everything Moorage stores is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


_Clean = AfterValidator(_encodable)  # and, with NO_NUL, text any database stores

UtcDatetime = Annotated[dt.datetime, AfterValidator(_utc)]
#: Users, organizations, teams: a lowercase path component.
Name = Annotated[
    str, Field(min_length=1, max_length=MAX_NAMESPACE_LENGTH, json_schema_extra={"pattern": NAME_PATTERN})
]
Password = Annotated[
    str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_SECRET_LENGTH, pattern=NO_NUL), _Clean
]
Label = Annotated[
    str, Field(min_length=1, max_length=255, pattern=NO_NUL, json_schema_extra={"pattern": NOT_BLANK}), _Clean
]
ShortText = Annotated[str, Field(max_length=255, pattern=NO_NUL), _Clean]
LongText = Annotated[str, Field(max_length=4096, pattern=NO_NUL), _Clean]
RepositoryName = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME_LENGTH, json_schema_extra={"pattern": REPOSITORY_PATTERN})
]
Visibility = Literal["public", "private"]
AccessLevel = Literal["read-only", "read-write", "admin"]
Role = Literal["owner", "member"]


class Input(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_alias=True, validate_by_name=False, extra="forbid", strict=True
    )


class Output(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True, from_attributes=True
    )


class ErrorBody(Output):
    code: str = Field(description="Machine-readable kind: unauthorized, forbidden, not_found, conflict, …")
    message: str
    field: str | None = Field(None, description="The input field at fault, when there is one.")


T = TypeVar("T")


class Page(Output, Generic[T]):
    """One page of a list; a ``Link: <…>; rel="next"`` header points to the next one."""

    items: list[T]
    total: int
    page: int
    per_page: int


# -- users --------------------------------------------------------------------------------
class User(Output):
    username: str
    full_name: str | None
    email: str | None
    is_admin: bool
    is_active: bool
    created_at: UtcDatetime


class UserPage(Page[User]):
    pass


class UserCreate(Input):
    username: Name
    password: Password
    full_name: ShortText | None = None
    email: ShortText | None = None
    is_admin: bool = False


class UserUpdate(Input):
    """Fields left out (or null) stay as they are. ``isAdmin`` and ``isActive``: administrators only."""

    password: Password | None = None
    full_name: ShortText | None = None
    email: ShortText | None = None
    is_admin: bool | None = None
    is_active: bool | None = None


# -- organizations --------------------------------------------------------------------------
class OrganizationSummary(Output):
    name: str


class OrganizationPage(Page[OrganizationSummary]):
    pass


class OrganizationMember(Output):
    username: str
    role: Role


class TeamSummary(Output):
    name: str
    description: str | None


class Organization(Output):
    name: str
    members: list[OrganizationMember]
    teams: list[TeamSummary]


class OrganizationCreate(Input):
    name: Name


class MembershipSet(Input):
    role: Role


# -- teams ------------------------------------------------------------------------------------
class Grant(Output):
    kind: Literal["repository", "namespace"]
    name: str
    level: AccessLevel


class Team(Output):
    organization: str
    name: str
    description: str | None
    members: list[str]
    access: list[Grant]


class TeamMember(Output):
    username: str


class TeamCreate(Input):
    name: Name
    description: LongText | None = None


class TeamUpdate(Input):
    description: LongText | None = None


class GrantSet(Input):
    level: AccessLevel


# -- repositories -------------------------------------------------------------------------
class Repository(Output):
    name: str = Field(description="The full name, NAMESPACE/NAME (NAME may contain '/').")
    namespace: str
    visibility: Visibility
    description: str | None
    immutable_tags: bool
    created_at: UtcDatetime
    level: AccessLevel = Field(description="The caller's access level on the repository.")
    scan_on_push: bool | None = Field(description="Scan what is pushed; null: the registry's default.")


class RepositoryPage(Page[Repository]):
    pass


class RepositoryCreate(Input):
    name: RepositoryName = Field(description="NAMESPACE/NAME; the namespace is a user or an organization.")
    visibility: Visibility = "private"
    description: LongText | None = None
    immutable_tags: bool = False
    scan_on_push: bool | None = Field(None, description="null: the registry's default")


class RepositoryUpdate(Input):
    visibility: Visibility | None = None
    description: LongText | None = None
    immutable_tags: bool | None = None
    scan_on_push: bool | None = None


# -- personal access tokens ---------------------------------------------------------------
class Token(Output):
    id: int
    label: str
    prefix: str = Field(description="The first characters after mrg_pat_, to tell tokens apart.")
    is_active: bool
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None


class TokenCreated(Token):
    secret: str = Field(description="The token itself: shown this once, stored only hashed.")


class TokenCreate(Input):
    label: Label


class TokenUpdate(Input):
    label: Label | None = None
    is_active: bool | None = None


# -- audit ----------------------------------------------------------------------------------
class AuditEntry(Output):
    id: int
    at: UtcDatetime
    actor: str | None
    action: str
    target: str | None
    detail: dict[str, Any] | None
    remote_addr: str | None


class AuditPage(Page[AuditEntry]):
    pass


# -- artifacts (tags and manifests) -----------------------------------------------------
ArtifactKind = Literal["image", "multi-arch", "application", "invocation", "plugin", "artifact"]


class PlatformOut(Output):
    os: str
    architecture: str
    variant: str | None = None


class ScanSummary(Output):
    status: Literal["not_scanned", "pending", "scanning", "completed", "failed"]
    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    unknown: int = Field(0, description="Findings whose vulnerability record carries no rating.")


class Tag(Output):
    """One tag of a repository with what it holds. Outside tools rely on these fields."""

    name: str
    type: ArtifactKind
    digest: str
    media_type: str
    artifact_type: str | None
    platforms: list[PlatformOut] = Field(
        description="One for an image, one per child for a multi-arch image."
    )
    size: int = Field(description="Bytes of the manifest and everything it references.")
    pushed_at: UtcDatetime
    pushed_by: str | None
    scan: ScanSummary | None = Field(
        None, description="The scan's status and counts; an application's aggregates its images."
    )


class ManifestDetail(Output):
    """A manifest in full: ``config`` and ``layers`` for images, ``manifests`` for indexes,
    ``bundle`` for applications."""

    digest: str
    type: ArtifactKind
    media_type: str
    artifact_type: str | None
    size: int
    pushed_at: UtcDatetime
    pushed_by: str | None
    tags: list[str]
    platform: PlatformOut | None
    subject: str | None
    annotations: dict[str, str]
    config: dict[str, Any] | None = None
    layers: list[dict[str, Any]] | None = None
    manifests: list[dict[str, Any]] | None = None
    bundle: dict[str, Any] | None = None


# -- scans and the vulnerability database ------------------------------------------------
ScanStatus = Literal["not_scanned", "pending", "scanning", "completed", "failed"]


class SeverityCounts(Output):
    """Visible findings per severity; ``unknown`` counts those whose record carries no rating,
    so the counts add up to the findings."""

    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    unknown: int = 0


Severity = Literal["critical", "high", "medium", "low", "unknown"]


class FindingOut(Output):
    id: str
    aliases: list[str]
    severity: Severity = Field(
        description="From the record's CVSS vector (v4, v3, v2: the base score is computed) or its "
        "vendor label; 'unknown' when the record carries neither."
    )
    score: float | None = Field(description="The CVSS base score, when the record has a vector.")
    package: str
    ecosystem: str
    version: str
    fixed_versions: list[str]
    layer: str | None
    path: str | None
    summary: str | None
    override: dict[str, Any] | None = Field(None, description="For hidden findings: the override hiding it.")


class ComponentScan(Output):
    name: str
    reference: str | None
    digest: str
    status: ScanStatus
    summary: SeverityCounts


class PlatformScan(Output):
    os: str | None
    architecture: str | None
    variant: str | None
    digest: str
    status: ScanStatus
    summary: SeverityCounts


class VulnerabilityReport(Output):
    """A manifest's scan: for an application also ``components``, for a multi-arch image ``platforms``."""

    status: ScanStatus
    summary: SeverityCounts
    findings: list[FindingOut]
    hidden: list[FindingOut]
    components: list[ComponentScan] | None = None
    platforms: list[PlatformScan] | None = None


class OverrideCreate(Input):
    id: Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL), _Clean]
    package: Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL), _Clean] = "*"
    note: LongText | None = None


class VulnDbInfo(Output):
    version: str | None
    imported_at: UtcDatetime | None
    records: int
    withdrawn: int
    ecosystems: dict[str, int]
    last_import: dict[str, Any] | None
