"""Webhooks of a repository (``/repositories/{namespace}/{name}/webhooks``), of a namespace
(``/namespaces/{namespace}/webhooks``) and global ones (``/webhooks``, administrators).

The three sets of routes are the same operations over a different scope. Included before the
repositories router, whose ``{name:path}`` would otherwise take the ``/webhooks`` suffix.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from moorage.api.deps import CurrentPrincipal, PageParams, Services
from moorage.api.errors import guard_methods
from moorage.api.models import NO_NUL
from moorage.api.models_webhooks import (
    Delivery,
    DeliveryPage,
    Webhook,
    WebhookCreate,
    WebhookPage,
    WebhookUpdate,
    WebhookWithSecret,
)
from moorage.services.webhooks import HookScope

router = APIRouter(tags=["webhooks"])
Namespace = Annotated[str, Path(max_length=255, pattern=NO_NUL)]
RepoName = Annotated[str, Path(max_length=255, pattern=NO_NUL, description="May contain '/'")]
WebhookId = Annotated[int, Path(alias="webhookId", ge=1, le=2**31 - 1)]
EventFilter = Annotated[
    int | None, Query(alias="eventId", ge=1, le=2**31 - 1, description="Only deliveries of this event")
]

#: Fields that cannot be cleared: ``null`` leaves them as they are.
_NOT_NULLABLE = ("url", "event_types", "secret", "format", "skip_verify", "active")


def _changes(body: WebhookUpdate) -> dict[str, Any]:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return {k: v for k, v in changes.items() if not (v is None and k in _NOT_NULLABLE)}


async def _list(
    svc: Services, principal: CurrentPrincipal, paging: PageParams, scope: HookScope
) -> WebhookPage:
    hooks, total = await svc.webhooks.list_webhooks(principal, scope, paging.offset, paging.limit)
    return paging.render(WebhookPage, [Webhook.model_validate(h) for h in hooks], total)


async def _create(
    svc: Services, principal: CurrentPrincipal, scope: HookScope, body: WebhookCreate
) -> WebhookWithSecret:
    hook = await svc.webhooks.create(
        principal,
        scope,
        url=body.url,
        event_types=list(body.event_types),
        name=body.name,
        secret=body.secret,
        format=body.format,
        ca_cert=body.ca_cert,
        skip_verify=body.skip_verify,
        active=body.active,
    )
    return WebhookWithSecret.model_validate(hook)


async def _deliveries(
    svc: Services,
    principal: CurrentPrincipal,
    paging: PageParams,
    scope: HookScope,
    webhook_id: int,
    event_id: int | None,
) -> DeliveryPage:
    rows, total = await svc.webhooks.deliveries(
        principal, scope, webhook_id, paging.offset, paging.limit, event_id
    )
    return paging.render(DeliveryPage, [Delivery.model_validate(r) for r in rows], total)


# -- repository webhooks ----------------------------------------------------------------------
REPO = "/repositories/{namespace}/{name:path}/webhooks"


@router.get(REPO, summary="List a repository's webhooks (repository administrators)")
async def list_repository_webhooks(
    svc: Services, principal: CurrentPrincipal, paging: PageParams, namespace: Namespace, name: RepoName
) -> WebhookPage:
    return await _list(svc, principal, paging, HookScope.repository(f"{namespace}/{name}"))


@router.post(
    REPO, status_code=201, summary="Add a webhook to a repository; the answer shows its secret, once"
)
async def create_repository_webhook(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, body: WebhookCreate
) -> WebhookWithSecret:
    return await _create(svc, principal, HookScope.repository(f"{namespace}/{name}"), body)


@router.get(REPO + "/{webhookId}", summary="Get a repository webhook")
async def get_repository_webhook(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, webhook_id: WebhookId
) -> Webhook:
    hook = await svc.webhooks.get(principal, HookScope.repository(f"{namespace}/{name}"), webhook_id)
    return Webhook.model_validate(hook)


@router.patch(
    REPO + "/{webhookId}",
    summary="Change a repository webhook: URL, event types, format, TLS, secret; activate or deactivate",
)
async def update_repository_webhook(
    svc: Services,
    principal: CurrentPrincipal,
    namespace: Namespace,
    name: RepoName,
    webhook_id: WebhookId,
    body: WebhookUpdate,
) -> WebhookWithSecret:
    scope = HookScope.repository(f"{namespace}/{name}")
    hook = await svc.webhooks.update(principal, scope, webhook_id, **_changes(body))
    return WebhookWithSecret.model_validate(hook)


@router.delete(REPO + "/{webhookId}", status_code=204, summary="Remove a repository webhook")
async def delete_repository_webhook(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, webhook_id: WebhookId
) -> None:
    await svc.webhooks.delete(principal, HookScope.repository(f"{namespace}/{name}"), webhook_id)


@router.get(REPO + "/{webhookId}/deliveries", summary="A repository webhook's delivery log, newest first")
async def repository_webhook_deliveries(
    svc: Services,
    principal: CurrentPrincipal,
    paging: PageParams,
    namespace: Namespace,
    name: RepoName,
    webhook_id: WebhookId,
    event_id: EventFilter = None,
) -> DeliveryPage:
    scope = HookScope.repository(f"{namespace}/{name}")
    return await _deliveries(svc, principal, paging, scope, webhook_id, event_id)


@router.post(
    REPO + "/{webhookId}/test", summary="Send a WEBHOOK_TEST event to a repository webhook now; logged"
)
async def test_repository_webhook(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, name: RepoName, webhook_id: WebhookId
) -> Delivery:
    scope = HookScope.repository(f"{namespace}/{name}")
    return Delivery.model_validate(await svc.webhooks.send_test(principal, scope, webhook_id))


# -- namespace webhooks -----------------------------------------------------------------------
NS = "/namespaces/{namespace}/webhooks"


@router.get(NS, summary="List a namespace's webhooks (namespace administrators)")
async def list_namespace_webhooks(
    svc: Services, principal: CurrentPrincipal, paging: PageParams, namespace: Namespace
) -> WebhookPage:
    return await _list(svc, principal, paging, HookScope.namespace(namespace))


@router.post(
    NS,
    status_code=201,
    summary="Add a webhook for every repository of a namespace (a user's, or an organization's); "
    "the answer shows its secret, once",
)
async def create_namespace_webhook(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, body: WebhookCreate
) -> WebhookWithSecret:
    return await _create(svc, principal, HookScope.namespace(namespace), body)


@router.get(NS + "/{webhookId}", summary="Get a namespace webhook")
async def get_namespace_webhook(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, webhook_id: WebhookId
) -> Webhook:
    return Webhook.model_validate(
        await svc.webhooks.get(principal, HookScope.namespace(namespace), webhook_id)
    )


@router.patch(NS + "/{webhookId}", summary="Change a namespace webhook; activate or deactivate it")
async def update_namespace_webhook(
    svc: Services,
    principal: CurrentPrincipal,
    namespace: Namespace,
    webhook_id: WebhookId,
    body: WebhookUpdate,
) -> WebhookWithSecret:
    hook = await svc.webhooks.update(principal, HookScope.namespace(namespace), webhook_id, **_changes(body))
    return WebhookWithSecret.model_validate(hook)


@router.delete(NS + "/{webhookId}", status_code=204, summary="Remove a namespace webhook")
async def delete_namespace_webhook(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, webhook_id: WebhookId
) -> None:
    await svc.webhooks.delete(principal, HookScope.namespace(namespace), webhook_id)


@router.get(NS + "/{webhookId}/deliveries", summary="A namespace webhook's delivery log, newest first")
async def namespace_webhook_deliveries(
    svc: Services,
    principal: CurrentPrincipal,
    paging: PageParams,
    namespace: Namespace,
    webhook_id: WebhookId,
    event_id: EventFilter = None,
) -> DeliveryPage:
    return await _deliveries(svc, principal, paging, HookScope.namespace(namespace), webhook_id, event_id)


@router.post(NS + "/{webhookId}/test", summary="Send a WEBHOOK_TEST event to a namespace webhook now; logged")
async def test_namespace_webhook(
    svc: Services, principal: CurrentPrincipal, namespace: Namespace, webhook_id: WebhookId
) -> Delivery:
    delivery = await svc.webhooks.send_test(principal, HookScope.namespace(namespace), webhook_id)
    return Delivery.model_validate(delivery)


# -- global webhooks --------------------------------------------------------------------------
GLOBAL = "/webhooks"


@router.get(GLOBAL, summary="List the global webhooks (system administrators)")
async def list_global_webhooks(svc: Services, principal: CurrentPrincipal, paging: PageParams) -> WebhookPage:
    return await _list(svc, principal, paging, HookScope.global_())


@router.post(
    GLOBAL,
    status_code=201,
    summary="Add a webhook for events anywhere in the registry (system administrators); "
    "the answer shows its secret, once",
)
async def create_global_webhook(
    svc: Services, principal: CurrentPrincipal, body: WebhookCreate
) -> WebhookWithSecret:
    return await _create(svc, principal, HookScope.global_(), body)


@router.get(GLOBAL + "/{webhookId}", summary="Get a global webhook")
async def get_global_webhook(svc: Services, principal: CurrentPrincipal, webhook_id: WebhookId) -> Webhook:
    return Webhook.model_validate(await svc.webhooks.get(principal, HookScope.global_(), webhook_id))


@router.patch(GLOBAL + "/{webhookId}", summary="Change a global webhook; activate or deactivate it")
async def update_global_webhook(
    svc: Services, principal: CurrentPrincipal, webhook_id: WebhookId, body: WebhookUpdate
) -> WebhookWithSecret:
    hook = await svc.webhooks.update(principal, HookScope.global_(), webhook_id, **_changes(body))
    return WebhookWithSecret.model_validate(hook)


@router.delete(GLOBAL + "/{webhookId}", status_code=204, summary="Remove a global webhook")
async def delete_global_webhook(svc: Services, principal: CurrentPrincipal, webhook_id: WebhookId) -> None:
    await svc.webhooks.delete(principal, HookScope.global_(), webhook_id)


@router.get(GLOBAL + "/{webhookId}/deliveries", summary="A global webhook's delivery log, newest first")
async def global_webhook_deliveries(
    svc: Services,
    principal: CurrentPrincipal,
    paging: PageParams,
    webhook_id: WebhookId,
    event_id: EventFilter = None,
) -> DeliveryPage:
    return await _deliveries(svc, principal, paging, HookScope.global_(), webhook_id, event_id)


@router.post(
    GLOBAL + "/{webhookId}/test", summary="Send a WEBHOOK_TEST event to a global webhook now; logged"
)
async def test_global_webhook(svc: Services, principal: CurrentPrincipal, webhook_id: WebhookId) -> Delivery:
    return Delivery.model_validate(await svc.webhooks.send_test(principal, HookScope.global_(), webhook_id))


# The repository paths above also match the repository item route ({name:path} could end in
# "/webhooks"): other methods on them are answered here, so they are not taken as a repository name.
_ALLOWED = {
    REPO: ("GET", "POST"),
    REPO + "/{webhookId}": ("GET", "PATCH", "DELETE"),
    REPO + "/{webhookId}/deliveries": ("GET",),
    REPO + "/{webhookId}/test": ("POST",),
}


guard_methods(router, _ALLOWED)
