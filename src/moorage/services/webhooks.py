"""Webhooks: endpoints told about events, for a repository, a namespace or the whole registry.

Who manages them: a repository's administrators its webhooks, a namespace's administrators
(its user, an organization's owners) the namespace's, system administrators the global ones.

Delivery is two steps, so no event is lost and no HTTP call runs inside a transaction. The
``webhooks`` event consumer (``on_event``) runs in the transaction that marks the event
handled and enqueues one ``webhook.deliver`` job per matching (webhook, event), deduplicated
by ``webhook:<id>:<event id>``. The job (``deliver``) renders the payload, signs it and POSTs
it; every attempt is written to the delivery log; anything but a 2xx answer fails the job,
which the job queue retries with exponential backoff (``webhook_backoff_seconds`` doubled
per attempt) up to ``webhook_max_attempts``.

Payloads are ``{type, createdAt, contents, location}`` or, for webhooks in the
``cloudevents`` format, a CloudEvents 1.0 structured-mode JSON event. Each request carries
``X-Moorage-Signature: sha256=<hex HMAC-SHA256 of the body, keyed by the webhook's secret>``.

Secrets are stored as is (not hashed, not encrypted): signing needs the secret itself, and
the database is already trusted with everything else a webhook could reveal. The API shows
a secret once, when it is generated or set.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
import logging
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection

from moorage import __version__
from moorage.client import webhooks as sender
from moorage.db import accounts as qa
from moorage.db import content as q
from moorage.db import webhooks as qw
from moorage.db.consumers import any_active_webhook
from moorage.db.engine import Database
from moorage.db.events import EventRow
from moorage.db.webhooks import DeliveryRow, WebhookRow
from moorage.services import events as ev
from moorage.services.access import AccessService, Level, Principal
from moorage.services.audit import AuditLog
from moorage.services.clock import Clock
from moorage.services.errors import Forbidden, InvalidInput, NotFound
from moorage.services.events import EventLog
from moorage.services.jobs import JobContext, JobService, PermanentFailure

log = logging.getLogger("moorage.webhooks")

#: The job kind of one delivery, and the name of the event consumer.
JOB_KIND = "webhook.deliver"
CONSUMER = "webhooks"
#: The event type of a "send test" delivery (never emitted to the outbox).
TEST_EVENT = "WEBHOOK_TEST"
FORMATS = ("default", "cloudevents")
SIGNATURE_HEADER = "X-Moorage-Signature"
MAX_URL_LENGTH = 2048
MIN_SECRET_LENGTH, MAX_SECRET_LENGTH = 16, 255
#: Delivery log entries kept per webhook (the oldest are removed).
KEEP_DELIVERIES = 1000
CLOUDEVENTS_TYPE_PREFIX = "io.moorage."

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)"
#: Every URL a webhook may have: http(s), a host name or IPv4 address, an optional port, then
#: printable ASCII (others percent-encoded). The API document states it as the field's pattern.
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://{_LABEL}(?:\.{_LABEL})*(?::{_PORT})?(?:[/?#][!-~]*)?$"


class _Unset(enum.Enum):
    UNSET = 0


#: "Leave as it is" in ``update``.
UNSET = _Unset.UNSET


@dataclass(frozen=True, slots=True)
class HookScope:
    """Whose webhooks: a repository's, a namespace's, or the global ones (``name`` None)."""

    kind: str
    name: str | None = None

    @classmethod
    def repository(cls, name: str) -> HookScope:
        return cls(qw.REPOSITORY, name)

    @classmethod
    def namespace(cls, name: str) -> HookScope:
        return cls(qw.NAMESPACE, name)

    @classmethod
    def global_(cls) -> HookScope:
        return cls(qw.GLOBAL)

    def holds(self, hook: WebhookRow) -> bool:
        if hook.scope != self.kind:
            return False
        if self.kind == qw.REPOSITORY:
            return hook.repository == self.name
        if self.kind == qw.NAMESPACE:
            return hook.namespace == self.name
        return True

    def __str__(self) -> str:
        return self.kind if self.name is None else f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook as the API shows it; ``secret`` only when it was just generated or set."""

    id: int
    scope: str
    repository: str | None
    namespace: str | None
    name: str | None
    url: str
    event_types: list[str]
    format: str
    ca_cert: str | None
    skip_verify: bool
    active: bool
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    secret: str | None = None

    @classmethod
    def of(cls, row: WebhookRow, show_secret: bool = False) -> Webhook:
        return cls(
            row.id,
            row.scope,
            row.repository,
            row.namespace,
            row.name,
            row.url,
            row.event_types,
            row.format,
            row.ca_cert,
            row.skip_verify,
            row.active,
            row.created_by,
            row.created_at,
            row.updated_at,
            row.secret if show_secret else None,
        )


@dataclass(frozen=True, slots=True)
class Message:
    """What one delivery sends: the body (exact bytes, as signed) and its headers."""

    body: bytes
    headers: dict[str, str]


# -- checks -----------------------------------------------------------------------------------
def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host; ``InvalidInput`` (field ``url``) otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"a webhook URL may be at most {MAX_URL_LENGTH} characters", "url")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidInput("a webhook URL may not contain spaces or control characters", "url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as exc:
        raise InvalidInput(f"{url[:200]!r} is not a valid URL: {exc}", "url") from None
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"; this one is {parts.scheme[:20]}:" if parts.scheme else ""
        raise InvalidInput(f"a webhook URL must start with http:// or https://{shown}", "url")
    if not parts.hostname:
        raise InvalidInput(f"{url[:200]!r} names no host", "url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "put no credentials in a webhook URL: deliveries are signed with its secret", "url"
        )
    if re.fullmatch(URL_PATTERN, url) is None:
        raise InvalidInput(
            f"{url[:200]!r} is not a URL Moorage delivers to: http(s)://, a host name or IPv4 address, "
            "an optional port, then printable ASCII characters (percent-encode others)",
            "url",
        )
    return url


def check_event_types(types: Sequence[str]) -> list[str]:
    if not types:
        raise InvalidInput("choose at least one event type", "event_types")
    return ev.validate_types(types)


def check_secret(secret: str) -> str:
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        raise InvalidInput(
            f"a webhook secret is {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters "
            "(leave it out to have one generated)",
            "secret",
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in secret):
        raise InvalidInput("a webhook secret may not contain control characters", "secret")
    return secret


def check_ca_cert(pem: str) -> str:
    try:
        sender.check_ca_pem(pem)
    except ValueError as exc:
        raise InvalidInput(f"caCert: {exc}", "ca_cert") from None
    return pem


def check_format(format: str) -> str:
    if format not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}", "format")
    return format


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def cloudevents_type(event_type: str) -> str:
    """``TAG_PUSH`` -> ``io.moorage.tag.push``."""
    return CLOUDEVENTS_TYPE_PREFIX + event_type.lower().replace("_", ".")


# -- rendering --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Renderer:
    """Builds payloads; ``base_url`` is where others reach this registry (``external_url``)."""

    base_url: str

    def location(self, event_type: str, repository: str | None, tag: str | None, digest: str | None) -> str:
        """The URL of what the event is about, in this registry."""
        if repository is None:
            if event_type == ev.VULNDB_UPDATED:
                return f"{self.base_url}/api/v1/system/vulndb"
            return self.base_url
        if event_type in (ev.SCAN_COMPLETED, ev.SCAN_FAILED) and digest is not None:
            return f"{self.base_url}/api/v1/repositories/{repository}/manifests/{digest}/vulnerabilities"
        reference = digest or tag
        if reference is not None:
            return f"{self.base_url}/v2/{repository}/manifests/{quote(reference, safe=':')}"
        return f"{self.base_url}/api/v1/repositories/{repository}"

    def message(
        self,
        hook: WebhookRow,
        *,
        event_id: str,
        event_type: str,
        created_at: dt.datetime,
        contents: dict[str, Any],
        location: str,
        attempt: int,
    ) -> Message:
        created = created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        if hook.format == "cloudevents":
            subject = contents.get("imageName") or contents.get("repository")
            document: dict[str, Any] = {
                "specversion": "1.0",
                "id": event_id,
                "source": self.source(contents.get("repository")),
                "type": cloudevents_type(event_type),
                "time": created,
                "datacontenttype": "application/json",
                **({"subject": subject} if subject else {}),
                "location": location,
                "data": contents,
            }
            content_type = "application/cloudevents+json"
        else:
            document = {"type": event_type, "createdAt": created, "contents": contents, "location": location}
            content_type = "application/json"
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
        headers = {
            "Content-Type": content_type,
            "User-Agent": f"Moorage-Webhook/{__version__}",
            SIGNATURE_HEADER: sign(hook.secret, body),
            "X-Moorage-Event": event_type,
            "X-Moorage-Event-Id": event_id,
            "X-Moorage-Webhook-Id": str(hook.id),
            "X-Moorage-Attempt": str(attempt),
        }
        return Message(body, headers)

    def source(self, repository: str | None) -> str:
        return f"{self.base_url}/v2/{repository}" if repository else self.base_url


# -- the service ------------------------------------------------------------------------------
@dataclass
class WebhookService:
    db: Database
    clock: Clock
    access: AccessService
    audit: AuditLog
    events: EventLog
    jobs: JobService
    renderer: Renderer
    timeout_seconds: float = 10.0
    max_attempts: int = 6
    backoff_seconds: float = 10.0
    keep_deliveries: int = KEEP_DELIVERIES

    def register(self) -> None:
        """Subscribe to the outbox and handle delivery jobs (once, in ``build_services``)."""
        self.events.subscribe_batch(CONSUMER, self.on_events, active=any_active_webhook)
        self.jobs.handle(JOB_KIND, self.deliver)

    # --- who may ---

    async def _authorize(self, principal: Principal | None, scope: HookScope) -> None:
        if principal is None:
            raise Forbidden("sign in to manage webhooks")
        if scope.kind == qw.GLOBAL:
            if not principal.is_admin:
                raise Forbidden("only system administrators may manage global webhooks")
            return
        assert scope.name is not None
        if scope.kind == qw.NAMESPACE:
            async with self.db.read() as conn:
                exists = await qa.namespace(conn, scope.name) is not None
            if not exists:
                raise NotFound(f"namespace {scope.name!r} does not exist")
            if await self.access.namespace_level(principal, scope.name) < Level.ADMIN:
                raise Forbidden(f"only administrators of namespace {scope.name!r} may manage its webhooks")
            return
        async with self.db.read() as conn:
            info = await qa.repository_info(conn, scope.name)
            access = await self.access.repository_in(conn, principal, scope.name)
        if info is None or access.level < Level.READ_ONLY:
            raise NotFound(f"repository {scope.name!r} does not exist")
        if access.level < Level.ADMIN:
            raise Forbidden(f"only administrators of {scope.name!r} may manage its webhooks")

    @staticmethod
    async def _owner_id(conn: AsyncConnection, scope: HookScope) -> int | None:
        if scope.kind == qw.GLOBAL:
            return None
        assert scope.name is not None
        if scope.kind == qw.NAMESPACE:
            ns = await qa.namespace(conn, scope.name)
            if ns is None:
                raise NotFound(f"namespace {scope.name!r} does not exist")
            return ns[0]
        rid = await q.repository_id(conn, scope.name)
        if rid is None:
            raise NotFound(f"repository {scope.name!r} does not exist")
        return rid

    async def _load(self, conn: AsyncConnection, scope: HookScope, webhook_id: int) -> WebhookRow:
        hook = await qw.webhook(conn, webhook_id)
        if hook is None or not scope.holds(hook):
            raise NotFound(f"webhook {webhook_id} does not exist for {scope}")
        return hook

    # --- management ---

    async def create(
        self,
        principal: Principal | None,
        scope: HookScope,
        *,
        url: str,
        event_types: Sequence[str],
        name: str | None = None,
        secret: str | None = None,
        format: str = "default",
        ca_cert: str | None = None,
        skip_verify: bool = False,
        active: bool = True,
    ) -> Webhook:
        """A new webhook, with its secret (generated unless given) shown this once."""
        await self._authorize(principal, scope)
        url = check_url(url)
        types = check_event_types(event_types)
        format = check_format(format)
        secret = check_secret(secret) if secret is not None else secrets.token_urlsafe(32)
        if ca_cert is not None:
            check_ca_cert(ca_cert)
        actor = principal.username if principal else None
        now = self.clock()
        async with self.db.write() as conn:
            owner = await self._owner_id(conn, scope)
            hook_id = await qw.insert_webhook(
                conn,
                scope=scope.kind,
                owner_id=owner,
                name=name,
                url=url,
                event_types=types,
                secret=secret,
                format=format,
                ca_cert=ca_cert,
                skip_verify=skip_verify,
                active=active,
                created_by=actor,
                now=now,
            )
            await self.audit.record(
                "webhook.create",
                actor=actor,
                target=str(scope),
                detail={"webhook": hook_id, "url": url, "eventTypes": types},
                conn=conn,
            )
            row = await qw.webhook(conn, hook_id)
        assert row is not None
        return Webhook.of(row, show_secret=True)

    async def list_webhooks(
        self, principal: Principal | None, scope: HookScope, offset: int = 0, limit: int = 50
    ) -> tuple[list[Webhook], int]:
        await self._authorize(principal, scope)
        async with self.db.read() as conn:
            owner = await self._owner_id(conn, scope)
            rows, total = await qw.list_webhooks(conn, scope.kind, owner, offset, limit)
        return [Webhook.of(r) for r in rows], total

    async def get(self, principal: Principal | None, scope: HookScope, webhook_id: int) -> Webhook:
        await self._authorize(principal, scope)
        async with self.db.read() as conn:
            return Webhook.of(await self._load(conn, scope, webhook_id))

    async def update(
        self,
        principal: Principal | None,
        scope: HookScope,
        webhook_id: int,
        *,
        url: str | _Unset = UNSET,
        event_types: Sequence[str] | _Unset = UNSET,
        name: str | _Unset | None = UNSET,
        secret: str | _Unset = UNSET,
        format: str | _Unset = UNSET,
        ca_cert: str | _Unset | None = UNSET,
        skip_verify: bool | _Unset = UNSET,
        active: bool | _Unset = UNSET,
    ) -> Webhook:
        """Change what is given; a new ``secret`` is shown in the answer, once."""
        await self._authorize(principal, scope)
        async with self.db.read() as conn:
            await self._load(conn, scope, webhook_id)  # 404 before judging the input
        values: dict[str, Any] = {}
        if not isinstance(url, _Unset):
            values["url"] = check_url(url)
        if not isinstance(event_types, _Unset):
            values["event_types"] = check_event_types(event_types)
        if not isinstance(name, _Unset):
            values["name"] = name
        if not isinstance(secret, _Unset):
            values["secret"] = check_secret(secret)
        if not isinstance(format, _Unset):
            values["format"] = check_format(format)
        if not isinstance(ca_cert, _Unset):
            values["ca_cert"] = check_ca_cert(ca_cert) if ca_cert is not None else None
        if not isinstance(skip_verify, _Unset):
            values["skip_verify"] = skip_verify
        if not isinstance(active, _Unset):
            values["active"] = active
        actor = principal.username if principal else None
        async with self.db.write() as conn:
            await self._load(conn, scope, webhook_id)
            if values:
                await qw.update_webhook(conn, webhook_id, self.clock(), **values)
                detail = {k: v for k, v in values.items() if k not in ("secret", "ca_cert")}
                await self.audit.record(
                    "webhook.update",
                    actor=actor,
                    target=str(scope),
                    detail={"webhook": webhook_id, **detail, "changed": sorted(values)},
                    conn=conn,
                )
            row = await qw.webhook(conn, webhook_id)
        assert row is not None
        return Webhook.of(row, show_secret="secret" in values)

    async def delete(self, principal: Principal | None, scope: HookScope, webhook_id: int) -> None:
        await self._authorize(principal, scope)
        actor = principal.username if principal else None
        async with self.db.write() as conn:
            hook = await self._load(conn, scope, webhook_id)
            await qw.delete_webhook(conn, webhook_id)
            await self.audit.record(
                "webhook.delete", actor=actor, target=str(scope), detail={"webhook": hook.id}, conn=conn
            )

    async def deliveries(
        self,
        principal: Principal | None,
        scope: HookScope,
        webhook_id: int,
        offset: int = 0,
        limit: int = 50,
        event_id: int | None = None,
    ) -> tuple[list[DeliveryRow], int]:
        """The webhook's delivery log, newest first."""
        await self._authorize(principal, scope)
        async with self.db.read() as conn:
            await self._load(conn, scope, webhook_id)
            return await qw.list_deliveries(conn, webhook_id, offset, limit, event_id)

    async def send_test(self, principal: Principal | None, scope: HookScope, webhook_id: int) -> DeliveryRow:
        """Deliver a ``WEBHOOK_TEST`` event now (once, even to an inactive webhook); logged like any other."""
        await self._authorize(principal, scope)
        async with self.db.read() as conn:
            hook = await self._load(conn, scope, webhook_id)
        contents: dict[str, Any] = {
            "webhookId": hook.id,
            "message": "a test delivery from Moorage",
            "author": principal.username if principal else None,
        }
        if hook.namespace is not None:
            contents["namespace"] = hook.namespace
        if hook.repository is not None:
            contents["namespace"] = hook.repository.split("/", 1)[0]
            contents["repository"] = hook.repository
        message = self.renderer.message(
            hook,
            event_id=f"test-{uuid.uuid4()}",
            event_type=TEST_EVENT,
            created_at=self.clock(),
            contents=contents,
            location=self.renderer.location(TEST_EVENT, hook.repository, None, None),
            attempt=1,
        )
        result = await self._send(hook, message)
        delivery_id = await self._record(hook, None, TEST_EVENT, None, 1, result)
        async with self.db.read() as conn:
            found = await qw.delivery(conn, delivery_id)
        if found is None:  # removed at once: only when keep_deliveries is tiny
            raise NotFound("the test delivery's record is gone")
        return found

    # --- delivery ---

    async def on_events(self, events: list[EventRow], conn: AsyncConnection) -> None:
        """The outbox consumer: one delivery job per active webhook that wants each event.

        The active webhooks are read once per batch (there are few; events are many, pulls
        included) and matched here by scope and event type.
        """
        hooks = await qw.active_webhooks(conn)
        if not hooks:
            return
        for event in events:
            for hook in hooks:
                if event.type not in hook.event_types or not _in_scope(hook, event):
                    continue
                await self.jobs.enqueue(
                    JOB_KIND,
                    {"webhook": hook.id, "event": event.id, "type": event.type},
                    conn=conn,
                    max_attempts=self.max_attempts,
                    backoff_seconds=self.backoff_seconds,
                    dedupe_key=f"webhook:{hook.id}:{event.id}",
                )

    def message_for(self, hook: WebhookRow, event: EventRow, attempt: int) -> Message:
        return self.renderer.message(
            hook,
            event_id=str(event.id),
            event_type=event.type,
            created_at=event.created_at,
            contents=event.contents,
            location=self.renderer.location(event.type, event.repository, event.tag, event.digest),
            attempt=attempt,
        )

    async def deliver(self, ctx: JobContext) -> dict[str, Any] | None:
        """The ``webhook.deliver`` job: one attempt; raises (to be retried) unless answered 2xx."""
        hook_id, event_id = int(ctx.payload["webhook"]), int(ctx.payload["event"])
        async with self.db.read() as conn:
            hook = await qw.webhook(conn, hook_id)
        if hook is None:
            return {"skipped": "the webhook was deleted"}
        if not hook.active:
            return {"skipped": "the webhook is inactive"}
        event = await self.events.event_by_id(event_id)
        if event is None:
            raise PermanentFailure(f"event {event_id} no longer exists")
        attempt = ctx.job.attempts
        result = await self._send(hook, self.message_for(hook, event, attempt))
        await self._record(hook, event.id, event.type, ctx.job.id, attempt, result)
        outcome = f"HTTP {result.status_code}" if result.status_code is not None else result.error
        await ctx.log(f"attempt {attempt} to {hook.url}: {outcome} in {result.duration_ms} ms")
        if not result.ok:
            raise DeliveryFailed(result.error or "no answer")
        return {"webhook": hook.id, "event": event.id, "responseCode": result.status_code}

    async def _send(self, hook: WebhookRow, message: Message) -> sender.SendResult:
        return await sender.post(
            hook.url,
            message.body,
            message.headers,
            trust=sender.TlsTrust(hook.ca_cert, hook.skip_verify),
            timeout_seconds=self.timeout_seconds,
        )

    async def _record(
        self,
        hook: WebhookRow,
        event_id: int | None,
        event_type: str,
        job_id: int | None,
        attempt: int,
        result: sender.SendResult,
    ) -> int:
        async with self.db.write() as conn:
            if await qw.webhook(conn, hook.id) is None:
                return 0  # deleted while the request was under way: nothing to log it under
            return await qw.insert_delivery(
                conn,
                webhook_id=hook.id,
                event_id=event_id,
                event_type=event_type,
                job_id=job_id,
                attempt=attempt,
                status=qw.SUCCEEDED if result.ok else qw.FAILED,
                response_code=result.status_code,
                duration_ms=result.duration_ms,
                error=result.error,
                at=self.clock(),
                keep=self.keep_deliveries,
            )


class DeliveryFailed(Exception):
    """The endpoint did not answer 2xx: the job fails and is retried."""


def _in_scope(hook: WebhookRow, event: EventRow) -> bool:
    if hook.scope == qw.GLOBAL:
        return True
    if hook.scope == qw.NAMESPACE:
        return hook.namespace is not None and hook.namespace == event.namespace
    return hook.repository is not None and hook.repository == event.repository
