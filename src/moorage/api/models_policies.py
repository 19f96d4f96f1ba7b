"""Request and response bodies of the promotion and pruning policy endpoints (camelCase on the wire).

Rules are checked by the service (``services.policy_rules``), so an unknown field or operator, a
bad regular expression or time is answered with a message that says which rule and what is wrong.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from moorage.api.models import NO_NUL, Input, Output, UtcDatetime, _Clean
from moorage.services import policy_rules as pr


def _whole(value: Any) -> Any:
    """JSON has one number type: ``3.0`` is the integer 3 (as JSON Schema says), ``3.5`` is not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Whole = BeforeValidator(_whole)
RuleValue = Annotated[
    str | int | list[Annotated[str, Field(max_length=pr.MAX_TEXT)]],
    Field(
        description="A string, a whole number (vulnerability counts) or a list of strings (oneof / noneof)"
    ),
    Whole,
]


class Rule(Input):
    field: Annotated[
        str,
        Field(
            max_length=64,
            pattern=NO_NUL,
            description="tag, component.name, license.name, vulnerability.all|critical|high|medium|low, pushed",
            examples=["tag"],
        ),
    ]
    operator: Annotated[
        str,
        Field(
            max_length=32,
            pattern=NO_NUL,
            description="eq, startswith, endswith, contains, oneof, noneof, matches; gte, gt, eq, neq, lte, lt; "
            "before, after, olderthan",
            examples=["startswith"],
        ),
    ]
    value: RuleValue


class RuleOut(Output):
    field: str
    operator: str
    value: Any


TagTemplate = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=NO_NUL,
        description="The target tag: %n source tag, %D short digest, %Y %m %d %H %M %S promotion time (UTC)",
        examples=["%n", "%n-%Y%m%d"],
    ),
    _Clean,
]
Target = Annotated[
    str,
    Field(min_length=1, max_length=255, pattern=NO_NUL, description="The target repository (NAMESPACE/NAME)"),
]
Rules = Annotated[list[Rule], Field(max_length=pr.MAX_RULES, description="All must match")]
Cron = Annotated[
    str,
    Field(
        max_length=255, pattern=NO_NUL, description="Five-field cron expression (UTC)", examples=["0 3 * * *"]
    ),
]


class PromotionPolicyCreate(Input):
    target: Target
    rules: Rules = []
    tag_template: TagTemplate = "%n"
    enabled: bool = True


class PromotionPolicyUpdate(Input):
    target: Target | None = None
    rules: Rules | None = None
    tag_template: TagTemplate | None = None
    enabled: bool | None = None


class PromotionPolicy(Output):
    id: int
    repository: str
    target: str
    rules: list[RuleOut]
    tag_template: str
    enabled: bool
    created_by: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class PromotionRun(Input):
    tag: Annotated[str, Field(min_length=1, max_length=128, pattern=NO_NUL)] | None = Field(
        None, description="Only this tag; every tag of the repository when left out"
    )


class JobQueued(Output):
    job_id: int = Field(description="The job: GET /jobs/{id} shows its status and log")


Count = Annotated[int, Field(ge=0, le=100_000), Whole]
Limit = Annotated[int, Field(ge=1, le=100_000), Whole]


class PruningPolicyCreate(Input):
    rules: Rules = []
    keep_newest: Count | None = Field(None, description="The newest N matching tags always stay")
    max_tags: Limit | None = Field(
        None, description="The repository's tag limit: the oldest matching tags beyond it are pruned"
    )
    cron: Cron | None = Field(None, description="Run on this schedule as well (UTC)")
    enabled: bool = True


class PruningPolicyUpdate(Input):
    """Only the fields given change; ``null`` clears keepNewest, maxTags and cron."""

    rules: Rules | None = None
    keep_newest: Count | None = None
    max_tags: Limit | None = None
    cron: Cron | None = None
    enabled: bool | None = None


class PruningPolicy(Output):
    id: int
    repository: str
    rules: list[RuleOut]
    keep_newest: int | None
    max_tags: int | None
    cron: str | None
    enabled: bool
    created_by: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class PlannedTag(Output):
    tag: str
    digest: str
    pushed_at: UtcDatetime
    reason: str


class PrunePlan(Output):
    policy_id: int
    repository: str
    dry_run: bool
    total_tags: int
    pruned: list[PlannedTag] = Field(description="Tags the run removes (a dry run: would remove)")
    kept: list[PlannedTag] = Field(description="Every other tag, with why it stays")
