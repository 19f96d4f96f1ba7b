"""Sending one webhook request: a POST over httpx with the endpoint's own TLS trust.

The sender never raises for what the endpoint does (refuses the connection, times out,
presents a certificate that does not verify, answers 500): it reports the outcome, and
the caller decides whether that counts as delivered. Redirects are not followed: a
webhook URL is configured once, and a 3xx is a misconfiguration to see in the log.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

import httpx

#: Most bytes of an answer kept for the delivery log; the rest is not read.
MAX_RESPONSE_EXCERPT = 1024


@dataclass(frozen=True, slots=True)
class TlsTrust:
    """Which certificates an endpoint may present: the system's CAs, ``ca_pem``'s, or any."""

    ca_pem: str | None = None
    skip_verify: bool = False

    def verify(self) -> ssl.SSLContext | bool:
        if self.skip_verify:
            return False
        if self.ca_pem:
            return ssl.create_default_context(cadata=self.ca_pem)
        return True


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None  # None: no answer at all (see error)
    duration_ms: int
    error: str | None
    body_excerpt: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def check_ca_pem(pem: str) -> None:
    """``ValueError`` when ``pem`` holds no certificate Python's TLS can trust."""
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"not a PEM CA certificate: {exc}") from None


async def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    trust: TlsTrust,
    timeout_seconds: float,
) -> SendResult:
    """POST ``body`` to ``url``; the outcome, whatever it is."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        verify = trust.verify()
    except (ssl.SSLError, ValueError) as exc:
        return SendResult(None, 0, f"the endpoint's CA certificate is unusable: {exc}", "")
    try:
        async with (
            httpx.AsyncClient(verify=verify, timeout=timeout_seconds, follow_redirects=False) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            excerpt = b""
            async for chunk in response.aiter_bytes():
                excerpt += chunk
                if len(excerpt) >= MAX_RESPONSE_EXCERPT:
                    break
            text = excerpt[:MAX_RESPONSE_EXCERPT].decode("utf-8", "replace")
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
            return SendResult(response.status_code, elapsed(), error, text)
    except httpx.TimeoutException as exc:
        return SendResult(
            None, elapsed(), f"timed out after {timeout_seconds:g} s ({type(exc).__name__})", ""
        )
    except httpx.HTTPError as exc:
        return SendResult(None, elapsed(), _describe(exc), "")
    except (ssl.SSLError, OSError) as exc:
        return SendResult(None, elapsed(), f"{type(exc).__name__}: {exc}", "")


def _describe(exc: httpx.HTTPError) -> str:
    """The most telling cause: certificate problems name themselves under ``ConnectError``."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS: {cause.verify_message or cause}"
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
