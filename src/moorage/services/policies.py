"""Promotion policies: copy matching tags of a repository into another, by rule.

A policy on a source repository names a target repository, rules (``services.policy_rules``;
all must match) and a tag template. It is evaluated when a tag is pushed (``TAG_PUSH``), when a
scan completes (``SCAN_COMPLETED``: the scan is of one image, so every tagged multi-arch image and
application of the repository that holds it is looked at again), and on demand. The consumer only
queues ``promotion.run`` jobs; the job evaluates and copies.

Rules over vulnerabilities, components and licenses wait until every image the tagged manifest
consists of has a completed scan: an application is promoted only after its invocation image and
every component image (each platform of a multi-arch one) are scanned; the job of the last
``SCAN_COMPLETED`` is the one that promotes.

Promotion copies by digest: blobs are linked (mounted) into the target, children (platform images,
an application's invocation, component and config manifests) are put first, then the manifest under
the templated tag, through ``ManifestService.put`` (which validates, classifies and emits
``MANIFEST_PUSH`` / ``TAG_PUSH``). A target tag that is immutable and points elsewhere is not
overwritten: the job log says so. Each promotion emits ``PROMOTION``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.db import content as cq
from moorage.db import events as qe
from moorage.db import policies as qp
from moorage.db import scans as qs
from moorage.db.consumers import any_promotion_policy
from moorage.db.engine import Database
from moorage.db.events import EventRow
from moorage.oci import cnab
from moorage.oci.classify import APPLICATION, IMAGE, INVOCATION, MULTI_ARCH
from moorage.oci.errors import NameInvalid, RegistryError, TagImmutable
from moorage.oci.manifest import parse_manifest
from moorage.oci.reference import namespace_of, validate_name
from moorage.scanner.inventory import LayerInventory, merge_layers
from moorage.services import events as ev
from moorage.services import policy_rules as pr
from moorage.services.access import AccessService, Level, Principal
from moorage.services.blobs import BlobService
from moorage.services.clock import Clock
from moorage.services.errors import Forbidden, InvalidInput, NotFound
from moorage.services.events import EventLog
from moorage.services.jobs import JobContext, JobService
from moorage.services.manifests import ManifestService
from moorage.services.scanning import ScanService

log = logging.getLogger("moorage.policies")

JOB_KIND = "promotion.run"
CONSUMER = "promotion"
#: How deep indexes may nest (index of index of …) when copying or looking for images.
MAX_DEPTH = 4
#: The license annotation / label of the OCI image spec.
LICENSES_KEY = "org.opencontainers.image.licenses"
_MAX_CONFIG = 4 << 20
_SPDX_WORDS = frozenset({"AND", "OR", "WITH"})


# -- the facts rules look at -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TagState:
    repository: str
    repository_id: int
    tag: str
    digest: str
    kind: str
    pushed_at: dt.datetime


def spdx_names(expression: str) -> set[str]:
    """License identifiers of an SPDX expression (``MIT OR (Apache-2.0 AND BSD-3-Clause)``)."""
    return {w for w in re.split(r"[\s()]+", expression) if w and w.upper() not in _SPDX_WORDS}


@dataclass
class ContentFacts:
    """Reads what rules need about a tagged manifest: scan state and counts, components, licenses.

    Components are the package names of the stored layer inventories (what the scanner found);
    licenses are the ``org.opencontainers.image.licenses`` annotation of every manifest in the
    tree and label of every image config, and an application's ``license`` in its bundle.json.
    """

    db: Database
    blobs: BlobService
    scanning: ScanService

    async def images(self, repository: str, digest: str, depth: int = 0) -> list[str]:
        """The image manifests ``digest`` consists of, as the scanner counts them."""
        async with self.db.read() as conn:
            rid = await cq.repository_id(conn, repository)
            summary = await cq.manifest_summary(conn, rid, digest) if rid is not None else None
            stored = await cq.manifest_by_digest(conn, repository, digest) if summary else None
        if summary is None or stored is None:
            return []
        if summary.kind in (IMAGE, INVOCATION):
            return [digest]
        if summary.kind not in (MULTI_ARCH, APPLICATION) or depth >= MAX_DEPTH:
            return []
        manifest = parse_manifest(stored.content, stored.media_type)
        if summary.kind == APPLICATION:
            index = cnab.parse_bundle_index(manifest)
            children = [index.invocation.digest, *(d.digest for d in index.components.values())]
        else:
            children = [d.digest for d in manifest.manifests]
        out: list[str] = []
        for child in children:
            out.extend(await self.images(repository, child, depth + 1))
        return list(dict.fromkeys(out))

    async def facts(
        self, state: TagState, rules: list[pr.Rule], now: dt.datetime
    ) -> tuple[pr.Facts, str | None]:
        """The facts for ``rules``, and a note for logs when scans are not all complete."""
        base = pr.Facts(tag=state.tag, pushed_at=state.pushed_at, now=now)
        if not pr.needs_scan(rules):
            return base, None
        images = await self.images(state.repository, state.digest)
        if not images:
            return base, f"{state.kind} {state.digest} holds no image to scan"
        async with self.db.read() as conn:
            scans = await qs.scans_of(conn, state.repository_id, images)
        done = sum(1 for d in images if d in scans and scans[d].status == qs.COMPLETED)
        if done < len(images):
            failed = sum(1 for d in images if d in scans and scans[d].status == qs.FAILED)
            note = f"{done} of {len(images)} images scanned"
            return base, note + (f" ({failed} failed: scan them again)" if failed else "")
        summary = await self.scanning.summary(state.repository, state.digest)
        if summary.get("status") != qs.COMPLETED:
            return base, f"scan status is {summary.get('status')}"
        counts = {k: int(v) for k, v in summary.items() if k != "status"}
        fields = {r.field for r in rules}
        components = (
            await self._components(state.repository, images) if pr.COMPONENT_NAME in fields else frozenset()
        )
        licenses = (
            await self._licenses(state.repository, state.digest) if pr.LICENSE_NAME in fields else frozenset()
        )
        return (
            pr.Facts(
                tag=state.tag,
                pushed_at=state.pushed_at,
                now=now,
                scanned=True,
                vulnerabilities=counts,
                components=components,
                licenses=licenses,
            ),
            None,
        )

    async def _components(self, repository: str, images: list[str]) -> frozenset[str]:
        names: set[str] = set()
        for image in images:
            async with self.db.read() as conn:
                stored = await cq.manifest_by_digest(conn, repository, image)
                if stored is None:
                    continue
                layers = [d.digest for d in parse_manifest(stored.content, stored.media_type).layers]
                inventories = await qs.layer_inventories_of(conn, layers)
            merged = merge_layers(
                LayerInventory.from_json(inventories[x]) for x in layers if x in inventories
            )
            names.update(c.name for c in merged.components)
        return frozenset(names)

    async def _licenses(self, repository: str, digest: str, depth: int = 0) -> frozenset[str]:
        async with self.db.read() as conn:
            rid = await cq.repository_id(conn, repository)
            summary = await cq.manifest_summary(conn, rid, digest) if rid is not None else None
            stored = await cq.manifest_by_digest(conn, repository, digest)
        if stored is None or summary is None:
            return frozenset()
        manifest = parse_manifest(stored.content, stored.media_type)
        names: set[str] = set()
        if LICENSES_KEY in manifest.annotations:
            names |= spdx_names(manifest.annotations[LICENSES_KEY])
        if summary.kind == APPLICATION:
            names |= await self._bundle_license(repository, manifest)
        elif manifest.config is not None:
            config = await self._json_blob(manifest.config.digest)
            labels = (config.get("config") or {}).get("Labels") if isinstance(config, dict) else None
            if isinstance(labels, dict) and isinstance(labels.get(LICENSES_KEY), str):
                names |= spdx_names(labels[LICENSES_KEY])
        if depth < MAX_DEPTH:
            for child in manifest.manifests:
                names |= await self._licenses(repository, child.digest, depth + 1)
        return frozenset(names)

    async def _bundle_license(self, repository: str, manifest: Any) -> set[str]:
        try:
            index = cnab.parse_bundle_index(manifest)
            async with self.db.read() as conn:
                config = await cq.manifest_by_digest(conn, repository, index.config.digest)
            if config is None:
                return set()
            blob = cnab.config_blob_descriptor(parse_manifest(config.content, config.media_type))
        except RegistryError:
            return set()
        doc = await self._json_blob(blob.digest)
        value = doc.get("license") if isinstance(doc, dict) else None
        return spdx_names(value) if isinstance(value, str) else set()

    async def _json_blob(self, digest: str) -> Any:
        data = await self.blobs.read_small(digest, _MAX_CONFIG)
        if data is None:
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return None


async def tag_state(conn: AsyncConnection, repository: str, tag: str) -> TagState | None:
    rid = await cq.repository_id(conn, repository)
    if rid is None:
        return None
    for row in await cq.tags_with_manifests(conn, rid):
        if row.name == tag:
            pushed = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=dt.UTC)
            return TagState(repository, rid, tag, row.manifest.digest, row.manifest.kind, pushed)
    return None


async def tag_states(conn: AsyncConnection, repository: str) -> list[TagState]:
    rid = await cq.repository_id(conn, repository)
    if rid is None:
        return []
    out = []
    for row in await cq.tags_with_manifests(conn, rid):
        pushed = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=dt.UTC)
        out.append(TagState(repository, rid, row.name, row.manifest.digest, row.manifest.kind, pushed))
    return out


async def require_admin(access: AccessService, actor: Principal | None, repository: str) -> None:
    """Policies are for repository administrators; a repository the caller cannot see does not exist."""
    try:
        validate_name(repository)
    except NameInvalid as exc:
        raise NotFound(exc.message) from None
    found = await access.repository(actor, repository)
    if not found.exists or found.level < Level.READ_ONLY:
        raise NotFound(f"repository {repository!r} does not exist")
    if found.level < Level.ADMIN:
        raise Forbidden(f"only administrators of {repository!r} may manage its policies")


# -- promotion ---------------------------------------------------------------------------------
@dataclass
class PromotionService:
    db: Database
    clock: Clock
    access: AccessService
    blobs: BlobService
    manifests: ManifestService
    events: EventLog
    jobs: JobService
    facts: ContentFacts

    def register(self) -> None:
        """Subscribe to pushes and scan outcomes, and handle ``promotion.run`` jobs."""
        self.events.subscribe(
            CONSUMER, self.consume, types=(ev.TAG_PUSH, ev.SCAN_COMPLETED), active=any_promotion_policy
        )
        self.jobs.handle(JOB_KIND, self.run_job)

    # -- management ----------------------------------------------------------------------
    async def policies(self, actor: Principal | None, repository: str) -> list[qp.PromotionPolicyRow]:
        await require_admin(self.access, actor, repository)
        async with self.db.read() as conn:
            rid = await cq.repository_id(conn, repository)
            return await qp.promotion_policies_of(conn, rid) if rid is not None else []

    async def get(self, actor: Principal | None, repository: str, policy_id: int) -> qp.PromotionPolicyRow:
        await require_admin(self.access, actor, repository)
        async with self.db.read() as conn:
            found = await qp.promotion_policy(conn, policy_id)
        if found is None or found.repository != repository:
            raise NotFound(f"promotion policy {policy_id} does not exist in {repository!r}")
        return found

    async def _check_target(self, actor: Principal | None, source: str, target: str) -> str:
        if not isinstance(target, str):
            raise InvalidInput("the target repository is required", "target")
        try:
            validate_name(target)
        except NameInvalid as exc:
            raise InvalidInput(exc.message, "target") from None
        if "/" not in target:
            raise InvalidInput("the target repository is NAMESPACE/NAME", "target")
        if target == source:
            raise InvalidInput(f"the target must be another repository than the source {source!r}", "target")
        found = await self.access.repository(actor, target)
        if found.exists:
            if found.level < Level.READ_WRITE:
                raise Forbidden(
                    f"you may not push to {target!r}: a promotion target must be writable by the "
                    "policy's creator",
                    "target",
                )
        elif await self.access.namespace_level(actor, namespace_of(target)) < Level.ADMIN:
            raise Forbidden(
                f"repository {target!r} does not exist and you may not create it: create it first, "
                "or choose a target you may push to",
                "target",
            )
        return target

    async def create(
        self,
        actor: Principal | None,
        repository: str,
        *,
        target: str,
        rules: Any = None,
        tag_template: str = "%n",
        enabled: bool = True,
    ) -> qp.PromotionPolicyRow:
        await require_admin(self.access, actor, repository)
        parsed = pr.parse_rules(rules)
        pr.validate_template(tag_template)
        await self._check_target(actor, repository, target)
        now = self.clock()
        async with self.db.write() as conn:
            rid = await cq.repository_id(conn, repository)
            if rid is None:
                raise NotFound(f"repository {repository!r} does not exist")
            policy_id = await qp.insert_promotion(
                conn,
                rid,
                {
                    "target": target,
                    "rules": [r.to_json() for r in parsed],
                    "tag_template": tag_template,
                    "enabled": enabled,
                    "created_by": actor.username if actor else None,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            created = await qp.promotion_policy(conn, policy_id)
        assert created is not None
        return created

    async def update(
        self,
        actor: Principal | None,
        repository: str,
        policy_id: int,
        *,
        target: str | None = None,
        rules: Any = None,
        tag_template: str | None = None,
        enabled: bool | None = None,
    ) -> qp.PromotionPolicyRow:
        await self.get(actor, repository, policy_id)
        values: dict[str, Any] = {}
        if rules is not None:
            values["rules"] = [r.to_json() for r in pr.parse_rules(rules)]
        if tag_template is not None:
            values["tag_template"] = pr.validate_template(tag_template)
        if target is not None:
            values["target"] = await self._check_target(actor, repository, target)
        if enabled is not None:
            values["enabled"] = enabled
        values["updated_at"] = self.clock()
        async with self.db.write() as conn:
            await qp.update_promotion(conn, policy_id, values)
            updated = await qp.promotion_policy(conn, policy_id)
        assert updated is not None
        return updated

    async def delete(self, actor: Principal | None, repository: str, policy_id: int) -> None:
        await self.get(actor, repository, policy_id)
        async with self.db.write() as conn:
            await qp.delete_promotion(conn, policy_id)

    async def run_now(
        self, actor: Principal | None, repository: str, policy_id: int, tag: str | None = None
    ) -> int:
        """Promote now ("promote now"): every tag of the repository, or just ``tag``; returns the job."""
        await self.get(actor, repository, policy_id)
        payload: dict[str, Any] = {
            "policy": policy_id,
            "repository": repository,
            "trigger": "manual",
            "requestedBy": actor.username if actor else None,
        }
        if tag is not None:
            payload["tag"] = tag
        job_id = await self.jobs.enqueue(JOB_KIND, payload, max_attempts=3)
        assert job_id is not None
        return job_id

    # -- the consumer: decide which tags to look at, queue jobs ------------------------------
    async def consume(self, event: EventRow, conn: AsyncConnection) -> None:
        if event.repository is None or event.type not in (ev.TAG_PUSH, ev.SCAN_COMPLETED):
            return
        rid = await cq.repository_id(conn, event.repository)
        if rid is None:
            return
        policies = await qp.promotion_policies_of(conn, rid, enabled_only=True)
        if not policies:
            return
        if event.type == ev.TAG_PUSH:
            if event.tag is None:
                return
            for policy in policies:
                await self._enqueue(conn, policy.id, event, event.tag, event.digest, "push")
            return
        # SCAN_COMPLETED: one image; look again at every tag that holds it, for scan rules only.
        scan_policies = [p for p in policies if pr.needs_scan(pr.parse_rules(p.rules))]
        if not scan_policies or event.digest is None:
            return
        holders = await qp.containing(conn, rid, event.digest)
        tagged = await cq.tags_by_digest(conn, rid, holders)
        for digest, names in sorted(tagged.items()):
            for name in names:
                for policy in scan_policies:
                    await self._enqueue(conn, policy.id, event, name, digest, "scan")

    async def _enqueue(
        self,
        conn: AsyncConnection,
        policy_id: int,
        event: EventRow,
        tag: str,
        digest: str | None,
        trigger: str,
    ) -> None:
        await self.jobs.enqueue(
            JOB_KIND,
            {
                "policy": policy_id,
                "repository": event.repository,
                "tag": tag,
                "digest": digest,
                "trigger": trigger,
                "event": event.id,
            },
            conn=conn,
            max_attempts=3,
            dedupe_key=f"promotion:{policy_id}:{event.id}:{tag}",
        )

    # -- the job -------------------------------------------------------------------------
    async def run_job(self, ctx: JobContext) -> dict[str, Any]:
        payload = ctx.payload
        async with self.db.read() as conn:
            policy = await qp.promotion_policy(conn, int(payload["policy"]))
        if policy is None:
            await ctx.log(f"promotion policy {payload['policy']} no longer exists: nothing to do")
            return {"outcome": "skipped"}
        manual = payload.get("trigger") == "manual"
        if not policy.enabled and not manual:
            await ctx.log(f"promotion policy {policy.id} is disabled: nothing to do")
            return {"outcome": "skipped"}
        rules = pr.parse_rules(policy.rules)
        async with self.db.read() as conn:
            if payload.get("tag") is not None:
                state = await tag_state(conn, policy.repository, str(payload["tag"]))
                states = [state] if state is not None else []
                if state is None:
                    await ctx.log(f"{policy.repository}:{payload['tag']} no longer exists: nothing to do")
            else:
                states = await tag_states(conn, policy.repository)
        results = []
        for state in states:
            expected = payload.get("digest")
            if expected and not manual and state.digest != expected:
                await ctx.log(
                    f"{policy.repository}:{state.tag} has moved on from {expected} to {state.digest}; "
                    "its own push is evaluated on its own"
                )
                results.append({"tag": state.tag, "outcome": "skipped"})
                continue
            results.append(await self._promote(ctx, policy, rules, state))
        if len(results) == 1:
            return results[0]
        return {"results": results, "promoted": sum(1 for r in results if r["outcome"] == "promoted")}

    async def _promote(
        self, ctx: JobContext, policy: qp.PromotionPolicyRow, rules: list[pr.Rule], state: TagState
    ) -> dict[str, Any]:
        source = f"{state.repository}:{state.tag}"
        result: dict[str, Any] = {"tag": state.tag, "digest": state.digest}
        facts, note = await self.facts.facts(state, rules, self.clock())
        verdict = pr.evaluate(rules, facts)
        if verdict.outcome is pr.Outcome.WAITING:
            await ctx.log(f"{source}: waiting for scans before evaluating its scan rules: {note}")
            return {**result, "outcome": "waiting", "detail": note}
        if verdict.outcome is pr.Outcome.NO_MATCH:
            assert verdict.failed is not None
            detail = f"rule '{verdict.failed.describe()}' does not match"
            await ctx.log(f"{source}: not promoted: {detail}")
            return {**result, "outcome": "no-match", "detail": detail}
        try:
            target_tag = pr.render_template(
                policy.tag_template, tag=state.tag, digest=state.digest, at=self.clock()
            )
        except InvalidInput as exc:
            await ctx.log(f"{source}: not promoted: {exc.message}")
            return {**result, "outcome": "refused", "detail": exc.message}
        target = f"{policy.target}:{target_tag}"
        result["target"] = target
        async with self.db.read() as conn:
            current = await cq.manifest_by_tag(conn, policy.target, target_tag)
            trid = await cq.repository_id(conn, policy.target)
            immutable = trid is not None and await cq.tags_immutable(conn, trid)
        if current is not None and current.digest == state.digest:
            await ctx.log(f"{source}: {target} already is {state.digest}: nothing to do")
            return {**result, "outcome": "already-promoted"}
        if current is not None and immutable:
            detail = f"{target} is immutable and points at {current.digest}: not overwritten"
            await ctx.log(f"{source}: refused: {detail}")
            return {**result, "outcome": "refused", "detail": detail}
        actor = policy.created_by
        copied = await self._copy_children(policy.repository, policy.target, state.digest, actor)
        async with self.db.read() as conn:
            stored = await cq.manifest_by_digest(conn, policy.repository, state.digest)
        if stored is None:
            await ctx.log(f"{source}: {state.digest} was deleted meanwhile: nothing promoted")
            return {**result, "outcome": "skipped"}
        await self._link_blobs(policy.repository, policy.target, stored.content, stored.media_type)
        try:
            await self.manifests.put(policy.target, target_tag, stored.content, stored.media_type, actor)
        except TagImmutable as exc:
            await ctx.log(f"{source}: refused: {exc.message}")
            return {**result, "outcome": "refused", "detail": exc.message}
        async with self.db.write() as conn:
            if await self._promoted_meanwhile(conn, ctx, policy, state, target_tag):
                await ctx.log(f"{source}: another job promoted it to {target} meanwhile")
                return {**result, "outcome": "already-promoted"}
            await self.events.emit(
                conn,
                ev.PROMOTION,
                repository=policy.repository,
                tag=state.tag,
                digest=state.digest,
                actor=actor,
                contents={
                    "sourceRepository": policy.repository,
                    "sourceTag": state.tag,
                    "sourceDigest": state.digest,
                    "targetRepository": policy.target,
                    "targetTag": target_tag,
                    "policyId": policy.id,
                    "artifactKind": state.kind,
                    "promotedAt": self.clock().isoformat(),
                },
            )
        await ctx.log(
            f"{source}: promoted {state.digest} to {target}"
            + (f" with {copied} child manifest(s)" if copied else "")
        )
        return {**result, "outcome": "promoted"}

    async def _promoted_meanwhile(
        self,
        conn: AsyncConnection,
        ctx: JobContext,
        policy: qp.PromotionPolicyRow,
        state: TagState,
        target_tag: str,
    ) -> bool:
        """Whether a job that ran alongside this one (two platforms' scans completing together)
        already announced this promotion; the policy's row lock makes the check and the event atomic."""
        await qp.lock_promotion(conn, policy.id)
        since = ctx.job.started_at or ctx.job.created_at
        recent, _ = await qe.list_events(conn, repository=policy.repository, types=[ev.PROMOTION], limit=50)
        return any(
            e.tag == state.tag
            and e.digest == state.digest
            and e.created_at >= since
            and e.contents.get("policyId") == policy.id
            and e.contents.get("targetTag") == target_tag
            for e in recent
        )

    async def _link_blobs(self, source: str, target: str, content: bytes, media_type: str) -> None:
        for blob in parse_manifest(content, media_type).blob_digests():
            if not await self.blobs.mount(target, blob, source):
                raise RuntimeError(f"blob {blob} is missing from {source!r}: cannot promote")

    async def _copy_children(
        self, source: str, target: str, digest: str, actor: str | None, depth: int = 0
    ) -> int:
        """Put every manifest ``digest`` references into ``target`` (children first); returns how many."""
        async with self.db.read() as conn:
            stored = await cq.manifest_by_digest(conn, source, digest)
        if stored is None or depth >= MAX_DEPTH:
            return 0
        copied = 0
        for child in parse_manifest(stored.content, stored.media_type).manifests:
            async with self.db.read() as conn:
                present = await cq.manifest_by_digest(conn, target, child.digest) is not None
                found = await cq.manifest_by_digest(conn, source, child.digest)
            if present:
                continue
            if found is None:
                raise RuntimeError(f"manifest {child.digest} is missing from {source!r}: cannot promote")
            copied += await self._copy_children(source, target, child.digest, actor, depth + 1)
            await self._link_blobs(source, target, found.content, found.media_type)
            await self.manifests.put(target, child.digest, found.content, found.media_type, actor)
            copied += 1
        return copied
