"""Push and pull mirroring: a repository's content sent to, or polled from, another registry.

*Push mirrors* follow the events outbox: the ``mirroring`` consumer turns each ``TAG_PUSH``
whose tag the mirror's rules accept into a ``mirror.push`` job, which sends the manifest with
everything it references (an image's blobs; a multi-arch index's or an application's child
manifests, children first) to the remote repository under the mirror's tag template. A
failure is retried with exponential backoff, except a refusal (a 4xx answer: the remote's tag
is immutable, the credentials lost their rights...), which cannot get better by retrying: it
is reported at once in the job's log, the mirror's last status and a ``PUSH_MIRRORING`` event
with ``status: failed``.

*Pull mirrors* are cron schedules (``mirror:pull:<id>``) that enqueue ``mirror.pull`` jobs:
the remote repository's tags (those the rules accept) that are new or point elsewhere than
the local tag are copied in, each emitting ``POLL_MIRRORING``. A local tag that would change
in a repository with immutable tags is skipped and logged.

Both go through Moorage's own OCI client (``client/copy.py``); digests are preserved. A mirror
is verified when it is created or its connection changes: the remote's ``/v2/`` must accept
the credentials, and when its token service says what a token grants, the mirror's remote
repository must be writable (push) or readable (pull) with them; otherwise nothing is stored
and the error names the field ``credentials``.

**How credentials are stored.** The username and password (or token) are kept as given in
the ``mirrors`` table of Moorage's database, because Moorage must present them to the remote
on every run (a hash cannot be presented). They are never returned by the API (it says only
whether a password is set), never written to job logs or events, and deleted with the mirror
or its repository. Protect the database (and its backups) accordingly, and give a mirror a
token with only the rights it needs: push to one repository, or pull from one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection

from moorage.client.auth import Credentials
from moorage.client.copy import CopyReport, RemoteEndpoint, copy_artifact
from moorage.client.registry import CertificateProblem, ClientError, RegistryClient
from moorage.db import content as q
from moorage.db import mirroring as qm
from moorage.db.consumers import any_push_mirror
from moorage.db.engine import Database
from moorage.db.events import EventRow
from moorage.db.mirroring import PULL, PUSH, MirrorRow
from moorage.jobs import cron
from moorage.oci.digest import is_digest
from moorage.oci.errors import ManifestUnknown, NameInvalid, RegistryError, TagImmutable
from moorage.oci.reference import validate_name
from moorage.services import events as ev
from moorage.services import policy_rules as pr
from moorage.services.access import AccessService, Level, Principal
from moorage.services.blobs import BlobService
from moorage.services.clock import Clock
from moorage.services.errors import Forbidden, InvalidInput, NotFound
from moorage.services.events import EventLog
from moorage.services.jobs import JobContext, JobService, PermanentFailure
from moorage.services.manifests import ManifestService

log = logging.getLogger("moorage.mirroring")

PUSH_JOB = "mirror.push"
PULL_JOB = "mirror.pull"
CONSUMER = "mirroring"
SCHEDULE_PREFIX = "mirror:pull:"
SUCCEEDED, FAILED, PARTIAL = "succeeded", "failed", "partial"

#: Fields a mirror's rules may use: push mirrors know a tag's push time, pull mirrors only its name.
#: Scan rules are not offered: a mirror runs on push, before any scan could be complete.
RULE_FIELDS = {PUSH: (pr.TAG, pr.PUSHED), PULL: (pr.TAG,)}
#: Other remote repositories a push tries to mount a missing blob from (one request each).
#: Pull mirrors never mount locally: a remote could name another repository's private blob.
MAX_MOUNT_SOURCES = 3
#: Remote answers that retrying cannot change: refusals, except "try later" ones.
_TRANSIENT_4XX = (408, 425, 429)


def schedule_name(mirror_id: int) -> str:
    return f"{SCHEDULE_PREFIX}{mirror_id}"


@dataclass(frozen=True, slots=True)
class Mirror:
    """A mirror as the API shows it: everything but the password."""

    id: int
    repository: str
    direction: str
    url: str
    remote_repository: str
    username: str | None
    has_password: bool
    ca_certificate: str | None
    skip_verify: bool
    tag_template: str | None
    rules: list[dict[str, Any]]
    cron: str | None
    enabled: bool
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    last_status: str | None
    last_error: str | None
    last_run_at: dt.datetime | None
    last_job_id: int | None
    next_run_at: dt.datetime | None

    @classmethod
    def of(cls, row: MirrorRow, next_run_at: dt.datetime | None = None) -> Mirror:
        return cls(
            row.id,
            row.repository,
            row.direction,
            row.url,
            row.remote_repository,
            row.username,
            bool(row.password),
            row.ca_certificate,
            row.skip_verify,
            row.tag_template,
            json.loads(row.rules) if row.rules else [],
            row.cron,
            row.enabled,
            row.created_by,
            row.created_at,
            row.updated_at,
            row.last_status,
            row.last_error,
            row.last_run_at,
            row.last_job_id,
            next_run_at,
        )


@dataclass(frozen=True, slots=True)
class Remote:
    """How to reach a mirror's remote registry."""

    scheme: str
    host: str
    username: str | None
    password: str | None
    ca_certificate: str | None
    skip_verify: bool

    @classmethod
    def of(cls, row: MirrorRow) -> Remote:
        scheme, host = parse_url(row.url)
        return cls(scheme, host, row.username, row.password, row.ca_certificate, row.skip_verify)

    def client(self, timeout: float) -> RegistryClient:
        creds = Credentials(self.username, self.password or "") if self.username else None
        return RegistryClient(
            self.host,
            credentials=creds,
            insecure=self.skip_verify,
            scheme=self.scheme,
            ca_pem=self.ca_certificate,
            timeout=timeout,
        )


def parse_url(url: str) -> tuple[str, str]:
    """``(scheme, host[:port])`` of a registry URL; a bare ``host[:port]`` means HTTPS."""
    text = url.strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise InvalidInput(f"url {url[:200]!r} is not a registry URL: {exc}", "url") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"url {url[:200]!r}: use http:// or https://", "url")
    if not parts.hostname or parts.username or parts.password:
        raise InvalidInput(
            f"url {url[:200]!r} must name a host (credentials go in username and password)", "url"
        )
    if parts.path not in ("", "/", "/v2", "/v2/") or parts.query or parts.fragment:
        raise InvalidInput(
            f"url {url[:200]!r}: a registry is addressed by scheme, host and port only; "
            "put the repository in remoteRepository",
            "url",
        )
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return parts.scheme, f"{host}:{port}" if port is not None else host


def parse_mirror_rules(data: Any, direction: str) -> list[pr.Rule]:
    rules = pr.parse_rules(data)
    allowed = RULE_FIELDS[direction]
    for i, rule in enumerate(rules):
        if rule.field not in allowed:
            raise InvalidInput(
                f"rules[{i}]: a {direction} mirror's rules may use {' and '.join(allowed)} only, "
                f"not {rule.field}",
                "rules",
            )
    return rules


def _check_ca(pem: str) -> None:
    try:
        ssl.create_default_context(cadata=pem)
    except (ValueError, ssl.SSLError) as exc:
        raise InvalidInput(f"the CA certificate is not a PEM certificate: {exc}", "ca_certificate") from None


def _is_refusal(exc: ClientError) -> bool:
    return exc.status is not None and 400 <= exc.status < 500 and exc.status not in _TRANSIENT_4XX


@dataclass
class LocalEndpoint:
    """Moorage's own storage as one side of a copy (``client.copy.Endpoint``).

    Reads do not count as pulls (no ``TAG_PULL`` events); writes go through the manifest and
    blob services, so they are validated, typed and emit ``TAG_PUSH`` like any push.
    """

    db: Database
    blobs: BlobService
    manifests: ManifestService
    actor: str | None

    async def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        async with self.db.read() as conn:
            if is_digest(reference):
                found = await q.manifest_by_digest(conn, repo, reference)
            else:
                found = await q.manifest_by_tag(conn, repo, reference)
        if found is None:
            raise ManifestUnknown(f"manifest {reference!r} is not in repository {repo!r}")
        return found.content, found.media_type, found.digest

    async def manifest_digest(self, repo: str, reference: str) -> str | None:
        try:
            return (await self.get_manifest(repo, reference))[2]
        except ManifestUnknown:
            return None

    def read_blob(self, repo: str, digest: str) -> AsyncIterator[bytes]:
        return self.blobs.read(digest)

    async def has_blob(self, repo: str, digest: str) -> bool:
        async with self.db.read() as conn:
            return await q.linked_blob_size(conn, repo, digest) is not None

    async def mount_blob(self, repo: str, digest: str, source: str) -> bool:
        return await self.blobs.mount(repo, digest, source)

    async def put_blob(self, repo: str, digest: str, chunks: AsyncIterator[bytes]) -> None:
        await self.blobs.put_monolithic(repo, digest, chunks)

    async def put_manifest(self, repo: str, reference: str, content: bytes, media_type: str) -> str:
        pushed = await self.manifests.put(repo, reference, content, media_type, pushed_by=self.actor)
        return pushed.digest


@dataclass
class MirrorService:
    db: Database
    clock: Clock
    access: AccessService
    events: EventLog
    jobs: JobService
    blobs: BlobService
    manifests: ManifestService
    #: Attempts and first backoff of a push job (doubling each time).
    push_attempts: int = 5
    backoff_seconds: float = 5.0
    #: Seconds to wait on the remote: when verifying a mirror, and for a copy's requests.
    verify_timeout: float = 15.0
    transfer_timeout: float = 300.0

    def register(self) -> None:
        """Subscribe to the outbox and handle the mirroring jobs (called by ``build_services``)."""
        self.events.subscribe(CONSUMER, self.on_event, types=(ev.TAG_PUSH,), active=any_push_mirror)
        self.jobs.handle(PUSH_JOB, self.run_push)
        self.jobs.handle(PULL_JOB, self.run_pull)

    # -- management -------------------------------------------------------------------------

    async def _repository_id(
        self, conn: AsyncConnection, principal: Principal | None, repository: str
    ) -> int:
        access = await self.access.repository_in(conn, principal, repository)
        rid = await q.repository_id(conn, repository)
        if rid is None or access.level < Level.READ_ONLY:
            raise NotFound(f"repository {repository!r} does not exist")
        if access.level < Level.ADMIN:
            raise Forbidden(f"only administrators of {repository!r} may manage its mirrors")
        return rid

    async def _row(
        self,
        conn: AsyncConnection,
        principal: Principal | None,
        repository: str,
        direction: str,
        mirror_id: int,
    ) -> MirrorRow:
        await self._repository_id(conn, principal, repository)
        row = await qm.mirror(conn, mirror_id)
        if row is None or row.repository != repository or row.direction != direction:
            raise NotFound(f"{repository!r} has no {direction} mirror {mirror_id}")
        return row

    async def _view(self, row: MirrorRow) -> Mirror:
        next_run = None
        if row.direction == PULL:
            schedule = await self.jobs.get_schedule(schedule_name(row.id))
            next_run = schedule.next_run_at if schedule is not None and schedule.enabled else None
        return Mirror.of(row, next_run)

    async def mirrors(self, principal: Principal | None, repository: str, direction: str) -> list[Mirror]:
        async with self.db.read() as conn:
            await self._repository_id(conn, principal, repository)
            rows = await qm.mirrors_of(conn, repository, direction)
        return [await self._view(r) for r in rows]

    async def get(
        self, principal: Principal | None, repository: str, direction: str, mirror_id: int
    ) -> Mirror:
        async with self.db.read() as conn:
            row = await self._row(conn, principal, repository, direction, mirror_id)
        return await self._view(row)

    async def create(
        self,
        principal: Principal | None,
        repository: str,
        direction: str,
        *,
        url: str,
        remote_repository: str,
        username: str | None = None,
        password: str | None = None,
        ca_certificate: str | None = None,
        skip_verify: bool = False,
        tag_template: str | None = None,
        rules: Sequence[Any] | None = None,
        cron_expression: str | None = None,
        enabled: bool = True,
    ) -> Mirror:
        """Create a mirror after checking the remote accepts its credentials; nothing is
        stored when it does not (``InvalidInput`` naming the field at fault)."""
        async with self.db.read() as conn:
            rid = await self._repository_id(conn, principal, repository)
        values = self._validated(
            direction,
            url=url,
            remote_repository=remote_repository,
            username=username,
            password=password,
            ca_certificate=ca_certificate,
            skip_verify=skip_verify,
            tag_template=tag_template,
            rules=rules,
            cron_expression=cron_expression,
        )
        await self._verify(direction, values)
        now = self.clock()
        values.update(
            direction=direction,
            enabled=enabled,
            created_by=principal.username if principal else None,
            created_at=now,
            updated_at=now,
        )
        async with self.db.write() as conn:
            mirror_id = await qm.insert_mirror(conn, rid, values)
        if direction == PULL:
            assert values["cron"] is not None
            await self.jobs.schedule(
                schedule_name(mirror_id), PULL_JOB, values["cron"], {"mirror_id": mirror_id}, enabled
            )
        return await self.get(principal, repository, direction, mirror_id)

    async def update(
        self,
        principal: Principal | None,
        repository: str,
        direction: str,
        mirror_id: int,
        changes: dict[str, Any],
    ) -> Mirror:
        """Change some of a mirror's settings (keys as ``create`` takes them; a missing key keeps
        its value, ``password`` too). A change to the connection is verified as on creation."""
        async with self.db.read() as conn:
            row = await self._row(conn, principal, repository, direction, mirror_id)
        known = {
            "url",
            "remote_repository",
            "username",
            "password",
            "ca_certificate",
            "skip_verify",
            "tag_template",
            "rules",
            "cron_expression",
            "enabled",
        }
        unknown = set(changes) - known
        if unknown:
            raise InvalidInput(f"unknown setting {sorted(unknown)[0]!r}", sorted(unknown)[0])
        current: dict[str, Any] = {
            "url": row.url,
            "remote_repository": row.remote_repository,
            "username": row.username,
            "password": row.password,
            "ca_certificate": row.ca_certificate,
            "skip_verify": row.skip_verify,
            "tag_template": row.tag_template,
            "rules": json.loads(row.rules) if row.rules else None,
            "cron_expression": row.cron,
        }
        if "username" in changes and changes["username"] is None:
            changes.setdefault("password", None)  # anonymous from now on
        elif "username" in changes and changes["username"] != row.username and "password" not in changes:
            raise InvalidInput("give the password (or token) of the new username too", "credentials")
        enabled = changes.pop("enabled", None)
        merged = {**current, **changes}
        values = self._validated(direction, **merged)
        connection = ("url", "remote_repository", "username", "password", "ca_certificate", "skip_verify")
        if any(values[k] != getattr(row, k) for k in connection):
            await self._verify(direction, values)
        if enabled is not None:
            values["enabled"] = bool(enabled)
        values["updated_at"] = self.clock()
        async with self.db.write() as conn:
            await qm.update_mirror(conn, mirror_id, values)
        if direction == PULL:
            assert values["cron"] is not None
            await self.jobs.schedule(
                schedule_name(mirror_id),
                PULL_JOB,
                values["cron"],
                {"mirror_id": mirror_id},
                values.get("enabled", row.enabled),
            )
        return await self.get(principal, repository, direction, mirror_id)

    async def delete(
        self, principal: Principal | None, repository: str, direction: str, mirror_id: int
    ) -> None:
        async with self.db.write() as conn:
            await self._row(conn, principal, repository, direction, mirror_id)
            await qm.delete_mirror(conn, mirror_id)
        if direction == PULL:
            await self.jobs.unschedule(schedule_name(mirror_id))

    async def sync(self, principal: Principal | None, repository: str, direction: str, mirror_id: int) -> int:
        """Run the mirror now ("sync now"): every tag the rules accept; returns the job's id."""
        async with self.db.read() as conn:
            await self._row(conn, principal, repository, direction, mirror_id)
        kind = PUSH_JOB if direction == PUSH else PULL_JOB
        job_id = await self.jobs.enqueue(
            kind,
            {"mirror_id": mirror_id, "manual": True},
            max_attempts=self.push_attempts,
            backoff_seconds=self.backoff_seconds,
        )
        assert job_id is not None
        return job_id

    def _validated(
        self,
        direction: str,
        *,
        url: str,
        remote_repository: str,
        username: str | None,
        password: str | None,
        ca_certificate: str | None,
        skip_verify: bool,
        tag_template: str | None,
        rules: Sequence[Any] | None,
        cron_expression: str | None,
    ) -> dict[str, Any]:
        scheme, host = parse_url(url)
        try:
            validate_name(remote_repository)
        except NameInvalid as exc:
            raise InvalidInput(str(exc), "remote_repository") from None
        if bool(username) != bool(password):
            raise InvalidInput("give both a username and a password (or token), or neither", "credentials")
        if ca_certificate:
            _check_ca(ca_certificate)
        parsed = parse_mirror_rules(rules, direction)
        values: dict[str, Any] = {
            "url": f"{scheme}://{host}",
            "remote_repository": remote_repository,
            "username": username or None,
            "password": password or None,
            "ca_certificate": ca_certificate or None,
            "skip_verify": bool(skip_verify),
            "rules": json.dumps([r.to_json() for r in parsed]) if parsed else None,
            "tag_template": None,
            "cron": None,
        }
        if direction == PUSH:
            values["tag_template"] = pr.validate_template(tag_template or "%n")
        else:
            if not cron_expression:
                raise InvalidInput("a pull mirror needs a cron schedule (such as */15 * * * *)", "cron")
            try:
                values["cron"] = cron.validate(cron_expression)
            except cron.CronError as exc:
                raise InvalidInput(str(exc), "cron") from None
        return values

    async def _verify(self, direction: str, values: dict[str, Any]) -> None:
        """The remote answers ``/v2/`` with these credentials, and grants what the mirror needs."""
        scheme, host = parse_url(values["url"])
        remote = Remote(
            scheme,
            host,
            values["username"],
            values["password"],
            values["ca_certificate"],
            values["skip_verify"],
        )
        needed = "push" if direction == PUSH else "pull"
        repo = values["remote_repository"]
        try:
            async with remote.client(self.verify_timeout) as client:
                await client.ping()
                granted = await client.granted_actions(repo, "pull,push" if direction == PUSH else "pull")
        except CertificateProblem as exc:
            raise InvalidInput(
                f"{host}'s TLS certificate could not be verified: give its CA (caCertificate), "
                f"or for testing only set skipVerify. {str(exc).splitlines()[0]}",
                "ca_certificate",
            ) from None
        except ClientError as exc:
            if exc.status in (401, 403) or exc.code in ("UNAUTHORIZED", "DENIED"):
                who = (
                    f"the credentials of {values['username']!r}" if values["username"] else "anonymous access"
                )
                raise InvalidInput(f"{host} refused {who}: {exc}", "credentials") from None
            raise InvalidInput(f"cannot use the registry at {values['url']}: {exc}", "url") from None
        if granted is not None and needed not in granted:
            who = f"user {values['username']!r}" if values["username"] else "anonymous access"
            raise InvalidInput(
                f"{host} does not let {who} {needed} {repo!r} "
                f"(granted: {', '.join(sorted(granted)) or 'nothing'})",
                "credentials",
            )

    # -- push mirroring ----------------------------------------------------------------------

    async def on_event(self, event: EventRow, conn: AsyncConnection) -> None:
        """The outbox consumer: a ``TAG_PUSH`` becomes a push job for each mirror that wants it."""
        if event.type != ev.TAG_PUSH or not event.repository or not event.tag or not event.digest:
            return
        for mirror in await qm.mirrors_of(conn, event.repository, PUSH):
            if not mirror.enabled:
                continue
            rules = parse_mirror_rules(json.loads(mirror.rules) if mirror.rules else None, PUSH)
            facts = pr.Facts(event.tag, event.created_at, self.clock())
            if pr.evaluate(rules, facts).outcome is not pr.Outcome.MATCH:
                continue
            await self.jobs.enqueue(
                PUSH_JOB,
                {
                    "mirror_id": mirror.id,
                    "repository": event.repository,
                    "tag": event.tag,
                    "digest": event.digest,
                    "event_id": event.id,
                },
                conn=conn,
                max_attempts=self.push_attempts,
                backoff_seconds=self.backoff_seconds,
                dedupe_key=f"{PUSH_JOB}:{mirror.id}:{event.id}",
            )

    async def _load(self, ctx: JobContext, direction: str) -> MirrorRow | None:
        async with self.db.read() as conn:
            row = await qm.mirror(conn, int(ctx.payload["mirror_id"]))
        if row is None or row.direction != direction:
            await ctx.log(f"{direction} mirror {ctx.payload['mirror_id']} no longer exists: nothing to do")
            return None
        if not row.enabled and not ctx.payload.get("manual"):
            await ctx.log(f"{direction} mirror {row.id} is disabled: nothing to do")
            return None
        return row

    async def run_push(self, ctx: JobContext) -> dict[str, Any] | None:
        """The ``mirror.push`` job: one pushed tag, or (sync now) every tag the rules accept."""
        mirror = await self._load(ctx, PUSH)
        if mirror is None:
            return {"skipped": True}
        async with self.db.read() as conn:
            tagged = await qm.tagged(conn, mirror.repository)
            # Blobs the remote holds for other mirrors can be mounted there instead of sent again.
            others = await qm.remote_repositories(conn, mirror.url, PUSH, mirror.id, MAX_MOUNT_SOURCES)
            mount_from = [r for r in others if r != mirror.remote_repository]
        current = {tag: digest for tag, digest, _ in tagged}
        if "tag" in ctx.payload:
            tag, digest = str(ctx.payload["tag"]), str(ctx.payload["digest"])
            if current.get(tag) != digest:
                await ctx.log(
                    f"{mirror.repository}:{tag} no longer points at {digest}: a later push mirrors it"
                )
                return {"skipped": True}
            work = [(tag, digest)]
        else:
            rules = parse_mirror_rules(json.loads(mirror.rules) if mirror.rules else None, PUSH)
            now = self.clock()
            work = [
                (tag, digest)
                for tag, digest, pushed in tagged
                if pr.evaluate(rules, pr.Facts(tag, pushed, now)).outcome is pr.Outcome.MATCH
            ]
        remote = Remote.of(mirror)
        local = LocalEndpoint(self.db, self.blobs, self.manifests, mirror.created_by)
        await ctx.log(
            f"push mirror {mirror.id}: {len(work)} tag(s) of {mirror.repository} to "
            f"{mirror.url}/{mirror.remote_repository}"
        )
        done: list[str] = []
        refused: list[str] = []
        async with remote.client(self.transfer_timeout) as client:
            destination = RemoteEndpoint(client)
            for tag, digest in work:
                assert mirror.tag_template is not None
                remote_tag = pr.render_template(mirror.tag_template, tag=tag, digest=digest, at=self.clock())
                contents = {
                    "mirrorId": mirror.id,
                    "jobId": ctx.job.id,
                    "sourceRepository": mirror.repository,
                    "sourceTag": tag,
                    "sourceDigest": digest,
                    "remoteUrl": mirror.url,
                    "remoteRepository": mirror.remote_repository,
                    "remoteTag": remote_tag,
                }
                try:
                    if await client.manifest_digest(mirror.remote_repository, remote_tag) == digest:
                        await ctx.log(f"{tag}: {mirror.remote_repository}:{remote_tag} is {digest} already")
                        done.append(tag)
                        continue
                    report = await copy_artifact(
                        local,
                        mirror.repository,
                        digest,
                        destination,
                        mirror.remote_repository,
                        remote_tag,
                        mount_from=mount_from,
                        log=ctx.log,
                    )
                except ClientError as exc:
                    if _is_refusal(exc):
                        await ctx.log(f"{tag}: the remote refused it, not retried: {exc}")
                        await self._emit(ev.PUSH_MIRRORING, mirror, tag, digest, contents, FAILED, str(exc))
                        refused.append(tag)
                        continue
                    if ctx.job.attempts >= ctx.job.max_attempts:
                        await self._emit(ev.PUSH_MIRRORING, mirror, tag, digest, contents, FAILED, str(exc))
                    await self._record(mirror, FAILED, f"{tag}: {exc}", ctx)
                    raise
                await ctx.log(f"{tag}: sent as {mirror.remote_repository}:{remote_tag} ({_summary(report)})")
                await self._emit(
                    ev.PUSH_MIRRORING, mirror, tag, digest, {**contents, **_counts(report)}, SUCCEEDED, None
                )
                done.append(tag)
        return await self._outcome(ctx, mirror, done, refused, [])

    # -- pull mirroring ----------------------------------------------------------------------

    async def run_pull(self, ctx: JobContext) -> dict[str, Any] | None:
        """The ``mirror.pull`` job: copy in the remote tags that are new or changed."""
        mirror = await self._load(ctx, PULL)
        if mirror is None:
            if ctx.payload.get("schedule") and await self._gone(int(ctx.payload["mirror_id"])):
                await self.jobs.unschedule(str(ctx.payload["schedule"]))
            return {"skipped": True}
        rules = parse_mirror_rules(json.loads(mirror.rules) if mirror.rules else None, PULL)
        local = LocalEndpoint(self.db, self.blobs, self.manifests, mirror.created_by)
        done: list[str] = []
        skipped: list[str] = []
        refused: list[str] = []
        async with Remote.of(mirror).client(self.transfer_timeout) as client:
            source = RemoteEndpoint(client)
            try:
                remote_tags = await client.tags(mirror.remote_repository)
            except ClientError as exc:
                await self._record(mirror, FAILED, str(exc), ctx)
                if _is_refusal(exc):
                    raise PermanentFailure(f"listing {mirror.remote_repository}'s tags: {exc}") from None
                raise
            now = self.clock()
            wanted = sorted(
                t
                for t in remote_tags
                if pr.evaluate(rules, pr.Facts(t, now, now)).outcome is pr.Outcome.MATCH
            )
            await ctx.log(
                f"pull mirror {mirror.id}: {len(wanted)} of {len(remote_tags)} tag(s) of "
                f"{mirror.url}/{mirror.remote_repository} into {mirror.repository}"
            )
            async with self.db.read() as conn:
                current = {tag: digest for tag, digest, _ in await qm.tagged(conn, mirror.repository)}
                rid = await q.repository_id(conn, mirror.repository)
                immutable = rid is not None and await q.tags_immutable(conn, rid)
            for tag in wanted:
                contents = {
                    "mirrorId": mirror.id,
                    "jobId": ctx.job.id,
                    "remoteUrl": mirror.url,
                    "remoteRepository": mirror.remote_repository,
                    "remoteTag": tag,
                    "targetRepository": mirror.repository,
                    "targetTag": tag,
                }
                try:
                    digest = await client.manifest_digest(mirror.remote_repository, tag)
                    if digest is None or current.get(tag) == digest:
                        continue
                    if tag in current and immutable:
                        await ctx.log(
                            f"{tag}: skipped: {mirror.repository}'s tags are immutable and {tag} is "
                            f"{current[tag]} here, {digest} there"
                        )
                        skipped.append(tag)
                        continue
                    report = await copy_artifact(
                        source, mirror.remote_repository, digest, local, mirror.repository, tag, log=ctx.log
                    )
                except TagImmutable as exc:
                    await ctx.log(f"{tag}: skipped: {exc}")
                    skipped.append(tag)
                    continue
                except RegistryError as exc:
                    # Moorage refused the content itself (invalid manifest, too large...).
                    await ctx.log(f"{tag}: refused here: {exc}")
                    await self._emit(ev.POLL_MIRRORING, mirror, tag, None, contents, FAILED, str(exc))
                    refused.append(tag)
                    continue
                except ClientError as exc:
                    if _is_refusal(exc):
                        await ctx.log(f"{tag}: the remote refused it: {exc}")
                        await self._emit(ev.POLL_MIRRORING, mirror, tag, None, contents, FAILED, str(exc))
                        refused.append(tag)
                        continue
                    await self._record(mirror, FAILED, f"{tag}: {exc}", ctx)
                    raise
                await ctx.log(f"{tag}: copied {digest} ({_summary(report)})")
                await self._emit(
                    ev.POLL_MIRRORING, mirror, tag, digest, {**contents, **_counts(report)}, SUCCEEDED, None
                )
                done.append(tag)
        return await self._outcome(ctx, mirror, done, refused, skipped)

    async def _gone(self, mirror_id: int) -> bool:
        async with self.db.read() as conn:
            return await qm.mirror(conn, mirror_id) is None

    # -- outcome -----------------------------------------------------------------------------

    async def _emit(
        self,
        type: str,
        mirror: MirrorRow,
        tag: str,
        digest: str | None,
        contents: dict[str, Any],
        status: str,
        reason: str | None,
    ) -> None:
        body = {**contents, "status": status}
        if reason is not None:
            body["reason"] = reason[:2000]
        async with self.db.write() as conn:
            await self.events.emit(
                conn,
                type,
                repository=mirror.repository,
                tag=tag,
                digest=digest,
                actor=mirror.created_by,
                contents=body,
            )

    async def _record(self, mirror: MirrorRow, status: str, error: str | None, ctx: JobContext) -> None:
        async with self.db.write() as conn:
            await qm.record_run(
                conn, mirror.id, status, error[:4000] if error else None, self.clock(), ctx.job.id
            )

    async def _outcome(
        self, ctx: JobContext, mirror: MirrorRow, done: list[str], refused: list[str], skipped: list[str]
    ) -> dict[str, Any]:
        result = {"mirrored": done, "refused": refused, "skipped": skipped}
        if refused:
            status = FAILED if not done else PARTIAL
            error = f"refused: {', '.join(refused[:20])} (see job {ctx.job.id}'s log)"
            await self._record(mirror, status, error, ctx)
            if not done:
                raise PermanentFailure(error)
        else:
            await self._record(mirror, SUCCEEDED, None, ctx)
        await ctx.log(f"done: {len(done)} mirrored, {len(refused)} refused, {len(skipped)} skipped")
        return result


def _counts(report: CopyReport) -> dict[str, int]:
    return {
        "manifestsCopied": report.manifests_copied,
        "blobsCopied": report.blobs_copied,
        "blobsMounted": report.blobs_mounted,
        "bytesCopied": report.bytes_copied,
    }


def _summary(report: CopyReport) -> str:
    return (
        f"{report.manifests_copied} manifest(s), {report.blobs_copied} blob(s) / {report.bytes_copied} bytes copied, "
        f"{report.blobs_mounted} mounted, {report.blobs_present + report.manifests_present} present already"
    )
