"""Promotion and pruning policies of a repository (repository administrators).

``/repositories/{namespace}/{name}/promotion-policies`` and ``…/pruning-policies``; included
before the repositories router, whose ``{name:path}`` would otherwise take the suffix.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from moorage.api.deps import CurrentPrincipal, Services
from moorage.api.errors import guard_methods
from moorage.api.models import NO_NUL
from moorage.api.models_policies import (
    JobQueued,
    PromotionPolicy,
    PromotionPolicyCreate,
    PromotionPolicyUpdate,
    PromotionRun,
    PrunePlan,
    PruningPolicy,
    PruningPolicyCreate,
    PruningPolicyUpdate,
)

router = APIRouter(tags=["policies"])
Namespace = Annotated[str, Path(max_length=255, pattern=NO_NUL)]
RepoName = Annotated[str, Path(max_length=255, pattern=NO_NUL, description="May contain '/'")]
PolicyId = Annotated[int, Path(alias="policyId", ge=1, le=2**31 - 1)]
PROMOTION = "/repositories/{namespace}/{name:path}/promotion-policies"
PRUNING = "/repositories/{namespace}/{name:path}/pruning-policies"


# -- promotion ---------------------------------------------------------------------------------
@router.get(PROMOTION, summary="List a repository's promotion policies")
async def list_promotion_policies(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName
) -> list[PromotionPolicy]:
    rows = await svc.promotion.policies(principal, f"{namespace}/{name}")
    return [PromotionPolicy.model_validate(r) for r in rows]


@router.post(
    PROMOTION,
    status_code=201,
    summary="Create a promotion policy: copy tags matching the rules into the target repository",
)
async def create_promotion_policy(
    svc: Services,
    principal: CurrentPrincipal,
    namespace: Namespace,
    name: RepoName,
    body: PromotionPolicyCreate,
) -> PromotionPolicy:
    row = await svc.promotion.create(
        principal,
        f"{namespace}/{name}",
        target=body.target,
        rules=[r.model_dump() for r in body.rules],
        tag_template=body.tag_template,
        enabled=body.enabled,
    )
    return PromotionPolicy.model_validate(row)


@router.get(PROMOTION + "/{policyId}", summary="Get a promotion policy")
async def get_promotion_policy(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, policy_id: PolicyId
) -> PromotionPolicy:
    return PromotionPolicy.model_validate(
        await svc.promotion.get(principal, f"{namespace}/{name}", policy_id)
    )


@router.patch(PROMOTION + "/{policyId}", summary="Change a promotion policy (the fields given)")
async def update_promotion_policy(
    svc: Services,
    principal: CurrentPrincipal,
    namespace: Namespace,
    name: RepoName,
    policy_id: PolicyId,
    body: PromotionPolicyUpdate,
) -> PromotionPolicy:
    row = await svc.promotion.update(
        principal,
        f"{namespace}/{name}",
        policy_id,
        target=body.target,
        rules=[r.model_dump() for r in body.rules] if body.rules is not None else None,
        tag_template=body.tag_template,
        enabled=body.enabled,
    )
    return PromotionPolicy.model_validate(row)


@router.delete(PROMOTION + "/{policyId}", status_code=204, summary="Delete a promotion policy")
async def delete_promotion_policy(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, policy_id: PolicyId
) -> None:
    await svc.promotion.delete(principal, f"{namespace}/{name}", policy_id)


@router.post(
    PROMOTION + "/{policyId}/run",
    status_code=202,
    summary="Promote now: evaluate every tag (or one) and promote those that match, as a job",
)
async def run_promotion_policy(
    svc: Services,
    principal: CurrentPrincipal,
    namespace: Namespace,
    name: RepoName,
    policy_id: PolicyId,
    body: PromotionRun | None = None,
) -> JobQueued:
    job_id = await svc.promotion.run_now(
        principal, f"{namespace}/{name}", policy_id, body.tag if body is not None else None
    )
    return JobQueued(job_id=job_id)


# -- pruning -----------------------------------------------------------------------------------
@router.get(PRUNING, summary="List a repository's pruning policies")
async def list_pruning_policies(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName
) -> list[PruningPolicy]:
    rows = await svc.pruning.policies(principal, f"{namespace}/{name}")
    return [PruningPolicy.model_validate(r) for r in rows]


@router.post(
    PRUNING,
    status_code=201,
    summary="Create a pruning policy: remove matching tags beyond the newest N or the tag limit",
)
async def create_pruning_policy(
    svc: Services,
    principal: CurrentPrincipal,
    namespace: Namespace,
    name: RepoName,
    body: PruningPolicyCreate,
) -> PruningPolicy:
    row = await svc.pruning.create(
        principal,
        f"{namespace}/{name}",
        rules=[r.model_dump() for r in body.rules],
        keep_newest=body.keep_newest,
        max_tags=body.max_tags,
        cron=body.cron,
        enabled=body.enabled,
    )
    return PruningPolicy.model_validate(row)


@router.get(PRUNING + "/{policyId}", summary="Get a pruning policy")
async def get_pruning_policy(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, policy_id: PolicyId
) -> PruningPolicy:
    return PruningPolicy.model_validate(await svc.pruning.get(principal, f"{namespace}/{name}", policy_id))


@router.patch(PRUNING + "/{policyId}", summary="Change a pruning policy (the fields given; null clears)")
async def update_pruning_policy(
    svc: Services,
    principal: CurrentPrincipal,
    namespace: Namespace,
    name: RepoName,
    policy_id: PolicyId,
    body: PruningPolicyUpdate,
) -> PruningPolicy:
    changes = body.model_dump(exclude_unset=True)
    row = await svc.pruning.update(principal, f"{namespace}/{name}", policy_id, changes)
    return PruningPolicy.model_validate(row)


@router.delete(PRUNING + "/{policyId}", status_code=204, summary="Delete a pruning policy (and its schedule)")
async def delete_pruning_policy(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, policy_id: PolicyId
) -> None:
    await svc.pruning.delete(principal, f"{namespace}/{name}", policy_id)


@router.post(
    PRUNING + "/{policyId}/run",
    status_code=202,
    summary="Prune now, as a job (202 with its id); with dryRun=true, list what would be pruned (200)",
    responses={200: {"model": PrunePlan, "description": "The dry run's plan"}},
)
async def run_pruning_policy(
    svc: Services,
    principal: CurrentPrincipal,
    namespace: Namespace,
    name: RepoName,
    policy_id: PolicyId,
    response: Response,
    dry_run: Annotated[bool, Query(alias="dryRun", description="Only list what would be pruned")] = False,
) -> JobQueued | PrunePlan:
    repository = f"{namespace}/{name}"
    if dry_run:
        response.status_code = 200
        return PrunePlan.model_validate(await svc.pruning.dry_run(principal, repository, policy_id))
    return JobQueued(job_id=await svc.pruning.run_now(principal, repository, policy_id))


# These paths also match the repository item route ({name:path} could end in "/pruning-policies"):
# other methods on them are answered here, so they are not taken as a repository name.
_ALLOWED = {
    PROMOTION: ("GET", "POST"),
    PROMOTION + "/{policyId}": ("GET", "PATCH", "DELETE"),
    PROMOTION + "/{policyId}/run": ("POST",),
    PRUNING: ("GET", "POST"),
    PRUNING + "/{policyId}": ("GET", "PATCH", "DELETE"),
    PRUNING + "/{policyId}/run": ("POST",),
}


guard_methods(router, _ALLOWED)
