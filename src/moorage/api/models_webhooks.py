"""Request and response bodies of the webhook endpoints (camelCase on the wire)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from moorage.api.models import NO_NUL, Input, Output, Page, ShortText, UtcDatetime, _Clean
from moorage.services.events import EVENT_TYPES
from moorage.services.webhooks import (
    MAX_SECRET_LENGTH,
    MAX_URL_LENGTH,
    MIN_SECRET_LENGTH,
    TEST_EVENT,
    URL_PATTERN,
)


def _pem_schema(schema: dict[str, Any]) -> None:
    """A PEM's validity is not a pattern: the document names a format instead (the property-based
    API test registers certificates for it), the model still refuses NUL characters."""
    schema.pop("pattern", None)
    schema["format"] = "pem-certificate"


EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
Format = Literal["default", "cloudevents"]
Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        pattern=NO_NUL,
        json_schema_extra={"pattern": URL_PATTERN},
        description="Where deliveries are POSTed: an http:// or https:// URL with a host name or IPv4 "
        "address, an optional port, then printable ASCII characters",
        examples=["https://ci.example.com/hooks/moorage"],
    ),
    _Clean,
]
Secret = Annotated[
    str,
    Field(
        min_length=MIN_SECRET_LENGTH,
        max_length=MAX_SECRET_LENGTH,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="Key of the X-Moorage-Signature HMAC; generated when left out",
    ),
    _Clean,
]
CaCert = Annotated[
    str,
    Field(
        min_length=1,
        max_length=65536,
        pattern=NO_NUL,
        json_schema_extra=_pem_schema,
        description="PEM CA certificate(s) the endpoint's certificate must chain to (instead of the system's)",
    ),
    _Clean,
]
EventTypes = Annotated[
    list[EventType],
    Field(min_length=1, max_length=len(EVENT_TYPES), description="The event types delivered"),
]


class WebhookCreate(Input):
    url: Url
    event_types: EventTypes
    name: ShortText | None = None
    secret: Secret | None = None
    format: Format = Field("default", description="default: {type, createdAt, contents, location}; "
                           "cloudevents: CloudEvents 1.0 structured JSON")  # fmt: skip
    ca_cert: CaCert | None = None
    skip_verify: bool = Field(
        False, description="Accept any certificate from the endpoint (testing only); wins over caCert"
    )
    active: bool = True


class WebhookUpdate(Input):
    """Only the fields given change; ``caCert: null`` removes the custom CA."""

    url: Url | None = None
    event_types: EventTypes | None = None
    name: ShortText | None = None
    secret: Secret | None = None
    format: Format | None = None
    ca_cert: CaCert | None = None
    skip_verify: bool | None = None
    active: bool | None = None


class Webhook(Output):
    id: int
    scope: Literal["repository", "namespace", "global"]
    repository: str | None
    namespace: str | None
    name: str | None
    url: str
    event_types: list[str]
    format: Format
    ca_cert: str | None
    skip_verify: bool
    active: bool
    created_by: str | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class WebhookWithSecret(Webhook):
    secret: str | None = Field(
        None, description="The signing secret: shown only when it was just generated or set"
    )


class WebhookPage(Page[Webhook]):
    pass


class Delivery(Output):
    id: int
    webhook_id: int
    event_id: int | None = Field(description=f"null for a {TEST_EVENT} delivery")
    event_type: str
    job_id: int | None
    attempt: int
    status: Literal["succeeded", "failed"]
    response_code: int | None = Field(description="null when there was no answer (see error)")
    duration_ms: int
    error: str | None
    at: UtcDatetime


class DeliveryPage(Page[Delivery]):
    pass
