"""Pruning policies: remove old tags of a repository, by rule, keeping the newest and a tag limit.

A policy has rules (``services.policy_rules``, as promotion's; all must match, none means every
tag), ``keepNewest`` (the newest N matching tags always stay) and ``maxTags`` (the repository's
tag limit). What is pruned:

* without ``maxTags``: every matching tag beyond the newest ``keepNewest``;
* with ``maxTags``: of those, the oldest, as many as the repository holds tags beyond the limit.

"Newest" is by the time the tag was last pushed. A tag whose scan rules cannot be decided yet
(scans not complete) is kept. Pruning removes tags only, through ``ManifestService.delete`` of
the tag (``TAG_DELETE``); a manifest stays while anything else refers to it, and what no tag
and no index refers to any more is garbage collection's to remove.

It runs as ``pruning.run`` jobs: on demand, on the policy's cron schedule, and after each push
into a repository whose policy sets a tag limit. A dry run lists what would go and why the rest stay.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db import content as cq
from moorage.db import policies as qp
from moorage.db.consumers import any_tag_limit
from moorage.db.engine import Database
from moorage.db.events import EventRow
from moorage.jobs import cron
from moorage.oci.errors import ManifestUnknown
from moorage.services import events as ev
from moorage.services import policy_rules as pr
from moorage.services.access import AccessService, Principal
from moorage.services.clock import Clock
from moorage.services.errors import InvalidInput, NotFound
from moorage.services.events import EventLog
from moorage.services.jobs import JobContext, JobService
from moorage.services.manifests import ManifestService
from moorage.services.policies import ContentFacts, TagState, require_admin, tag_states

JOB_KIND = "pruning.run"
CONSUMER = "pruning"
SCHEDULE_PREFIX = "pruning:"
MAX_COUNT = 100_000


@dataclass(frozen=True, slots=True)
class PlannedTag:
    tag: str
    digest: str
    pushed_at: dt.datetime
    reason: str


@dataclass(frozen=True, slots=True)
class PrunePlan:
    policy_id: int
    repository: str
    dry_run: bool
    total_tags: int
    pruned: list[PlannedTag] = field(default_factory=list)
    kept: list[PlannedTag] = field(default_factory=list)


def _count(value: Any, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_COUNT:
        raise InvalidInput(f"{name} must be a whole number from {minimum} to {MAX_COUNT}", name)
    return value


def _cron(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput("cron must be a string such as '0 3 * * *'", "cron")
    try:
        return cron.validate(value)
    except cron.CronError as exc:
        raise InvalidInput(str(exc), "cron") from None


@dataclass
class PruningService:
    db: Database
    clock: Clock
    access: AccessService
    manifests: ManifestService
    jobs: JobService
    facts: ContentFacts
    events: EventLog

    def register(self) -> None:
        """Subscribe to pushes (tag limits), and handle ``pruning.run`` jobs (on demand and by cron)."""
        self.events.subscribe(CONSUMER, self.consume, types=(ev.TAG_PUSH,), active=any_tag_limit)
        self.jobs.handle(JOB_KIND, self.run_job)

    # -- management ----------------------------------------------------------------------
    async def policies(self, actor: Principal | None, repository: str) -> list[qp.PruningPolicyRow]:
        await require_admin(self.access, actor, repository)
        async with self.db.read() as conn:
            rid = await cq.repository_id(conn, repository)
            return await qp.pruning_policies_of(conn, rid) if rid is not None else []

    async def get(self, actor: Principal | None, repository: str, policy_id: int) -> qp.PruningPolicyRow:
        await require_admin(self.access, actor, repository)
        async with self.db.read() as conn:
            found = await qp.pruning_policy(conn, policy_id)
        if found is None or found.repository != repository:
            raise NotFound(f"pruning policy {policy_id} does not exist in {repository!r}")
        return found

    @staticmethod
    def _check(rules: list[pr.Rule], keep_newest: int | None, max_tags: int | None) -> None:
        if not rules and keep_newest is None and max_tags is None:
            raise InvalidInput(
                "a pruning policy needs rules, keepNewest or maxTags: without any it would remove every tag",
                "rules",
            )

    async def create(
        self,
        actor: Principal | None,
        repository: str,
        *,
        rules: Any = None,
        keep_newest: int | None = None,
        max_tags: int | None = None,
        cron: str | None = None,
        enabled: bool = True,
    ) -> qp.PruningPolicyRow:
        await require_admin(self.access, actor, repository)
        parsed = pr.parse_rules(rules)
        keep = _count(keep_newest, "keep_newest", 0)
        limit = _count(max_tags, "max_tags", 1)
        expression = _cron(cron)
        self._check(parsed, keep, limit)
        now = self.clock()
        async with self.db.write() as conn:
            rid = await cq.repository_id(conn, repository)
            if rid is None:
                raise NotFound(f"repository {repository!r} does not exist")
            policy_id = await qp.insert_pruning(
                conn,
                rid,
                {
                    "rules": [r.to_json() for r in parsed],
                    "keep_newest": keep,
                    "max_tags": limit,
                    "cron": expression,
                    "enabled": enabled,
                    "created_by": actor.username if actor else None,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            created = await qp.pruning_policy(conn, policy_id)
        assert created is not None
        await self._sync_schedule(created)
        return created

    async def update(
        self,
        actor: Principal | None,
        repository: str,
        policy_id: int,
        changes: dict[str, Any],
    ) -> qp.PruningPolicyRow:
        """Change the fields named in ``changes`` (rules, keep_newest, max_tags, cron, enabled);
        ``None`` clears keep_newest, max_tags and cron."""
        current = await self.get(actor, repository, policy_id)
        unknown = sorted(set(changes) - {"rules", "keep_newest", "max_tags", "cron", "enabled"})
        if unknown:
            raise InvalidInput(f"unknown field {unknown[0]!r}", unknown[0])
        values: dict[str, Any] = {}
        rules = pr.parse_rules(changes["rules"]) if "rules" in changes else pr.parse_rules(current.rules)
        values["rules"] = [r.to_json() for r in rules]
        keep = (
            _count(changes["keep_newest"], "keep_newest", 0)
            if "keep_newest" in changes
            else current.keep_newest
        )
        limit = _count(changes["max_tags"], "max_tags", 1) if "max_tags" in changes else current.max_tags
        values["keep_newest"], values["max_tags"] = keep, limit
        if "cron" in changes:
            values["cron"] = _cron(changes["cron"])
        if changes.get("enabled") is not None:
            values["enabled"] = bool(changes["enabled"])
        self._check(rules, keep, limit)
        values["updated_at"] = self.clock()
        async with self.db.write() as conn:
            await qp.update_pruning(conn, policy_id, values)
            updated = await qp.pruning_policy(conn, policy_id)
        assert updated is not None
        await self._sync_schedule(updated)
        return updated

    async def delete(self, actor: Principal | None, repository: str, policy_id: int) -> None:
        await self.get(actor, repository, policy_id)
        async with self.db.write() as conn:
            await qp.delete_pruning(conn, policy_id)
        await self.jobs.unschedule(f"{SCHEDULE_PREFIX}{policy_id}")

    async def _sync_schedule(self, policy: qp.PruningPolicyRow) -> None:
        name = f"{SCHEDULE_PREFIX}{policy.id}"
        if policy.cron is None:
            await self.jobs.unschedule(name)
        else:
            await self.jobs.schedule(
                name, JOB_KIND, policy.cron, {"policy": policy.id}, enabled=policy.enabled
            )

    # -- planning ------------------------------------------------------------------------
    async def plan(self, policy: qp.PruningPolicyRow, dry_run: bool = True) -> PrunePlan:
        """What the policy prunes now, and why every other tag stays."""
        rules = pr.parse_rules(policy.rules)
        async with self.db.read() as conn:
            states = await tag_states(conn, policy.repository)
        states.sort(key=lambda s: (s.pushed_at, s.tag), reverse=True)  # newest first
        now = self.clock()
        matching: list[TagState] = []
        kept: list[PlannedTag] = []
        for state in states:
            facts, note = await self.facts.facts(state, rules, now)
            verdict = pr.evaluate(rules, facts)
            if verdict.outcome is pr.Outcome.MATCH:
                matching.append(state)
            elif verdict.outcome is pr.Outcome.WAITING:
                kept.append(_planned(state, f"scan rules wait for scans: {note}"))
            else:
                assert verdict.failed is not None
                kept.append(_planned(state, f"rule '{verdict.failed.describe()}' does not match"))
        protected = matching[: policy.keep_newest] if policy.keep_newest is not None else []
        kept.extend(_planned(s, f"one of the newest {policy.keep_newest} matching tags") for s in protected)
        eligible = matching[len(protected) :]
        if policy.max_tags is None:
            pruned = [_planned(s, "matches the rules") for s in eligible]
        else:
            excess = max(0, len(states) - policy.max_tags)
            cut = len(eligible) - min(excess, len(eligible))
            pruned = [
                _planned(s, f"the repository holds {len(states)} tags, over its limit of {policy.max_tags}")
                for s in eligible[cut:]
            ]
            kept.extend(_planned(s, f"within the limit of {policy.max_tags} tags") for s in eligible[:cut])
        order = {s.tag: i for i, s in enumerate(states)}
        kept.sort(key=lambda p: order[p.tag])
        return PrunePlan(policy.id, policy.repository, dry_run, len(states), pruned, kept)

    async def dry_run(self, actor: Principal | None, repository: str, policy_id: int) -> PrunePlan:
        return await self.plan(await self.get(actor, repository, policy_id), dry_run=True)

    async def run_now(self, actor: Principal | None, repository: str, policy_id: int) -> int:
        await self.get(actor, repository, policy_id)
        job_id = await self.jobs.enqueue(
            JOB_KIND,
            {"policy": policy_id, "trigger": "manual", "requestedBy": actor.username if actor else None},
            max_attempts=3,
        )
        assert job_id is not None
        return job_id

    # -- the consumer: a push into a repository with a tag limit --------------------------
    async def consume(self, event: EventRow, conn: AsyncConnection) -> None:
        if event.type != ev.TAG_PUSH or event.repository is None:
            return
        rid = await cq.repository_id(conn, event.repository)
        if rid is None:
            return
        for policy in await qp.pruning_policies_of(conn, rid, enabled_only=True):
            if policy.max_tags is None:
                continue
            await self.jobs.enqueue(
                JOB_KIND,
                {"policy": policy.id, "trigger": "push", "event": event.id},
                conn=conn,
                max_attempts=3,
                dedupe_key=f"pruning:{policy.id}:{event.id}",
            )

    # -- the job -------------------------------------------------------------------------
    async def run_job(self, ctx: JobContext) -> dict[str, Any]:
        async with self.db.read() as conn:
            policy = await qp.pruning_policy(conn, int(ctx.payload["policy"]))
        if policy is None:
            await ctx.log(f"pruning policy {ctx.payload['policy']} no longer exists: nothing to do")
            return {"outcome": "skipped", "pruned": []}
        if not policy.enabled and ctx.payload.get("trigger") != "manual":
            await ctx.log(f"pruning policy {policy.id} is disabled: nothing to do")
            return {"outcome": "skipped", "pruned": []}
        plan = await self.plan(policy, dry_run=False)
        actor = policy.created_by
        pruned: list[str] = []
        for item in plan.pruned:
            async with self.db.read() as conn:
                current = await cq.manifest_by_tag(conn, policy.repository, item.tag)
            if current is None or current.digest != item.digest:
                await ctx.log(f"{policy.repository}:{item.tag} changed since the plan: kept")
                continue
            try:
                await self.manifests.delete(policy.repository, item.tag, actor)
            except ManifestUnknown:
                await ctx.log(f"{policy.repository}:{item.tag} was already gone")
                continue
            pruned.append(item.tag)
            await ctx.log(f"pruned {policy.repository}:{item.tag} ({item.digest}): {item.reason}")
        await ctx.log(
            f"pruned {len(pruned)} of {plan.total_tags} tags of {policy.repository}; {len(plan.kept)} kept"
        )
        return {"outcome": "pruned", "pruned": pruned, "kept": len(plan.kept), "totalTags": plan.total_tags}


def _planned(state: TagState, reason: str) -> PlannedTag:
    return PlannedTag(state.tag, state.digest, state.pushed_at, reason)
