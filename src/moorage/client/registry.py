"""An async OCI Distribution client over httpx: token auth, TLS with a custom CA or, for
testing, ``insecure`` registries, streamed and verified blob transfer, cross-repo mounts."""

from __future__ import annotations

import base64
import binascii
import json
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from moorage.client.auth import Credentials, parse_challenge
from moorage.oci.digest import new_hasher, parse_digest

ProgressCallback = Callable[[int], None]

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
CHUNK = 8 << 20


class ClientError(Exception):
    """A registry refused a request, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class CertificateProblem(ClientError):
    """The registry's TLS certificate could not be verified (the x509 errors)."""


def _hostname(host: str) -> str:
    """``host`` without its port (``[::1]:5000`` -> ``::1``)."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def explain_tls_failure(host: str, error: BaseException) -> CertificateProblem:
    text = str(error)
    lowered = text.lower()
    hostname = _hostname(host)
    if "hostname mismatch" in lowered or "doesn't match" in lowered or "ip address mismatch" in lowered:
        cause = f"x509: the certificate of {host} is not valid for the name {hostname!r}"
    elif (
        "self-signed" in lowered
        or "self signed" in lowered  # OpenSSL 1.1 spells it without the hyphen
        or "unable to get local issuer" in lowered
        or "unknown ca" in lowered
    ):
        cause = f"x509: certificate of {host} signed by unknown authority"
    elif "expired" in lowered:
        cause = f"x509: the certificate of {host} has expired"
    else:
        cause = f"x509: the certificate of {host} could not be verified ({text})"
    return CertificateProblem(
        f"{cause}.\n"
        f"Fix it for real: give the registry a certificate for its FQDN (`moorage certs generate --fqdn {hostname}`) "
        f"and trust its CA, served at https://{host}/ca (pass --ca-file, or put it in /etc/docker/certs.d/{host}/ca.crt).\n"
        f"For testing only: pass --insecure-registries {host}."
    )


def _is_certificate_failure(exc: BaseException) -> bool:
    return isinstance(exc.__cause__, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc)


#: Where Docker looks for a registry's CA (``/etc/docker/certs.d/HOST/ca.crt``); tests point it elsewhere.
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")


@dataclass
class RegistryClient:
    host: str
    credentials: Credentials | None = None
    insecure: bool = False  # skip TLS verification, and fall back to plain HTTP
    ca_file: Path | None = None
    timeout: float = 300.0
    #: An httpx transport to use instead of the network (tests plug an ASGI app in here).
    transport: httpx.AsyncBaseTransport | None = None
    #: ``http`` or ``https`` when the caller knows it (a mirror's URL); ``None``: try HTTPS first.
    scheme: str | None = None
    #: A CA certificate (PEM text) to trust, as an alternative to ``ca_file``.
    ca_pem: str | None = None
    _http: httpx.AsyncClient | None = None
    _scheme: str | None = None
    _tokens: dict[str, str] = field(default_factory=dict)
    #: Set once a basic-auth challenge was answered: later requests send the credentials at once.
    _basic: bool = False

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _verify(self) -> bool | ssl.SSLContext:
        if self.insecure:
            return False
        if self.ca_pem is not None:
            try:
                return ssl.create_default_context(cadata=self.ca_pem)
            except (ValueError, ssl.SSLError) as exc:
                raise ClientError(f"cannot use the CA certificate given for {self.host}: {exc}") from None
        ca_file = self.ca_file
        docker_ca = DOCKER_CERTS_DIR / self.host / "ca.crt"
        if ca_file is None and not docker_ca.is_file():
            return True
        try:
            if ca_file is not None:
                return ssl.create_default_context(cafile=str(ca_file))
            context = ssl.create_default_context()  # the system's CAs plus Docker's per-registry CA
            context.load_verify_locations(cafile=str(docker_ca))
            return context
        except (OSError, ssl.SSLError) as exc:
            raise ClientError(f"cannot use the CA certificate {ca_file or docker_ca}: {exc}") from None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                verify=self._verify(), timeout=self.timeout, follow_redirects=True, transport=self.transport
            )
        return self._http

    async def _base(self) -> str:
        if self._scheme is None and self.scheme is not None:
            self._scheme = self.scheme
        if self._scheme is None:
            try:
                await self._client().get(f"https://{self.host}/v2/")
                self._scheme = "https"
            except httpx.TransportError as exc:
                if _is_certificate_failure(exc):
                    raise explain_tls_failure(self.host, exc) from None
                if not self.insecure:
                    text = str(exc)
                    if (
                        "WRONG_VERSION_NUMBER" in text
                        or "wrong version number" in text
                        or "record layer" in text
                    ):
                        raise ClientError(
                            f"{self.host} speaks plain HTTP, not HTTPS; for testing pass --insecure-registries {self.host}"
                        ) from None
                    raise ClientError(f"cannot reach {self.host}: {exc or type(exc).__name__}") from None
                self._scheme = "http"  # an insecure registry: plain HTTP, as Docker falls back to
        return f"{self._scheme}://{self.host}"

    async def ping(self) -> None:
        """Check that the registry answers ``/v2/`` and accepts the credentials (``moorage login``)."""
        await self.request("GET", "/v2/", "")

    async def _token(self, challenge: str, scope: str) -> str | None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            return None
        realm = params.get("realm")
        if scheme != "bearer" or not realm:
            raise ClientError(f"unsupported authentication challenge from {self.host}: {challenge[:200]}")
        scopes = [s for s in (params.get("scope", "").split() + scope.split()) if s]
        query: dict[str, Any] = {"service": params.get("service", ""), "scope": list(dict.fromkeys(scopes))}
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        r = await self._guard(self._client().get(realm, params=query, auth=auth))
        if r.status_code != 200:
            hint = "" if self.credentials else f" (sign in with `moorage login {self.host}`)"
            raise ClientError(
                f"{self.host} refused the credentials: {_message(r)}{hint}", r.status_code, "UNAUTHORIZED"
            )
        body = r.json()
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str):
            raise ClientError(f"{self.host}'s token endpoint answered without a token")
        return str(token)

    async def request(
        self, method: str, path: str, scope: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> httpx.Response:
        """Send a request, answering an auth challenge once; raise ``ClientError`` unless the status is in ``ok``."""
        url = path if path.startswith("http") else await self._base() + path
        response = await self._send(method, url, scope, **kwargs)
        if response.status_code == 401:
            challenge = response.headers.get("www-authenticate", "")
            token = await self._token(challenge, scope)
            headers = dict(kwargs.pop("headers", None) or {})
            if token is not None:
                self._tokens[scope] = token
                headers["Authorization"] = f"Bearer {token}"
                response = await self._guard(self._client().request(method, url, headers=headers, **kwargs))
            elif self.credentials is not None:
                auth = (self.credentials.username, self.credentials.password)
                response = await self._guard(
                    self._client().request(method, url, headers=headers, auth=auth, **kwargs)
                )
                self._basic = response.status_code != 401
        if response.status_code not in ok:
            hint = ""
            if response.status_code == 401 and self.credentials is None:
                hint = f" (sign in with `moorage login {self.host}`)"
            raise ClientError(
                f"{method} {path}: {_message(response)}{hint}", response.status_code, _code(response)
            )
        return response

    async def _send(self, method: str, url: str, scope: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        token = self._tokens.get(scope)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        elif self._basic and self.credentials is not None:
            kwargs["auth"] = (self.credentials.username, self.credentials.password)
        return await self._guard(self._client().request(method, url, headers=headers, **kwargs))

    async def _guard(self, pending: Awaitable[httpx.Response]) -> httpx.Response:
        """Await an httpx call, turning transport failures (TLS, refused, reset, timeout) into ``ClientError``."""
        try:
            return await pending
        except httpx.TransportError as exc:
            if _is_certificate_failure(exc):
                raise explain_tls_failure(self.host, exc) from None
            raise ClientError(f"cannot reach {self.host}: {exc or type(exc).__name__}") from None

    # -- manifests ----------------------------------------------------------------------
    async def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """``(content, media type, digest)``; the content is checked against the digest."""
        r = await self.request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            f"repository:{repo}:pull",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        content = r.content
        media_type = r.headers.get("content-type", "").split(";")[0]
        digest = _digest_of(content, reference if reference.count(":") == 1 and "sha" in reference else None)
        header = r.headers.get("docker-content-digest")
        if header and header.startswith("sha256:") and header != digest:
            raise ClientError(
                f"{repo}:{reference}: the registry's manifest does not match its digest {header}"
            )
        return content, media_type, digest

    async def manifest_digest(self, repo: str, reference: str) -> str | None:
        """Digest a tag or digest resolves to, or ``None`` when absent."""
        r = await self.request(
            "HEAD",
            f"/v2/{repo}/manifests/{reference}",
            f"repository:{repo}:pull",
            headers={"Accept": MANIFEST_ACCEPT},
            ok=(200, 404),
        )
        if r.status_code == 404:
            return None
        digest = r.headers.get("docker-content-digest")
        if digest:
            return str(digest)
        return (await self.get_manifest(repo, reference))[2]

    async def put_manifest(self, repo: str, reference: str, content: bytes, media_type: str) -> str:
        r = await self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            f"repository:{repo}:pull,push",
            content=content,
            headers={"Content-Type": media_type},
            ok=(200, 201),
        )
        return str(r.headers.get("docker-content-digest") or _digest_of(content, None))

    async def tags(self, repo: str) -> list[str]:
        r = await self.request("GET", f"/v2/{repo}/tags/list", f"repository:{repo}:pull")
        return list(r.json().get("tags") or [])

    # -- blobs --------------------------------------------------------------------------
    async def blob_exists(self, repo: str, digest: str) -> bool:
        r = await self.request("HEAD", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull", ok=(200, 404))
        return r.status_code == 200

    async def mount_blob(self, repo: str, digest: str, source: str) -> bool:
        """Mount a blob from another repository of the same registry; ``False`` when not possible."""
        scope = f"repository:{repo}:pull,push repository:{source}:pull"
        r = await self.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}",
            scope,
            ok=(201, 202),
            content=b"",
        )
        if r.status_code == 202 and r.headers.get("location"):
            # The registry started an upload instead; cancel it.
            await self.request("DELETE", self._absolute(r), f"repository:{repo}:pull,push", ok=(204, 404))
        return r.status_code == 201

    async def push_blob(
        self, repo: str, digest: str, data: bytes | Path, progress: ProgressCallback | None = None
    ) -> None:
        """Upload a blob (from memory or a file) unless the repository has it; chunked for large files."""
        parse_digest(digest)
        if await self.blob_exists(repo, digest):
            if progress:
                progress(data.stat().st_size if isinstance(data, Path) else len(data))
            return
        scope = f"repository:{repo}:pull,push"
        if isinstance(data, bytes) and len(data) <= CHUNK:
            await self._post_whole(repo, digest, data, scope)
            if progress:
                progress(len(data))
            return
        r = await self.request("POST", f"/v2/{repo}/blobs/uploads/", scope, content=b"", ok=(202,))
        location = self._absolute(r)
        offset = 0
        async for chunk in _chunks(data):
            r = await self.request(
                "PATCH",
                location,
                scope,
                content=chunk,
                ok=(202,),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                },
            )
            location = self._absolute(r)
            offset += len(chunk)
            if progress:
                progress(len(chunk))
        sep = "&" if "?" in location else "?"
        await self.request("PUT", f"{location}{sep}digest={digest}", scope, content=b"", ok=(201,))

    async def push_blob_stream(
        self,
        repo: str,
        digest: str,
        chunks: AsyncIterable[bytes],
        progress: ProgressCallback | None = None,
    ) -> None:
        """Upload a blob read from ``chunks`` (for copying between registries) holding at most
        ``CHUNK`` bytes in memory: a blob that fits goes in one ``POST ?digest=``; a larger one is
        sent as ``PATCH`` chunks of ``CHUNK`` bytes (replayable if a token expires) and a ``PUT``.
        The caller checks existence first; the registry verifies the digest."""
        parse_digest(digest)
        scope = f"repository:{repo}:pull,push"
        buffer = bytearray()
        location: str | None = None
        offset = 0

        async def send(piece: bytes) -> None:
            nonlocal location, offset
            if location is None:
                r = await self.request("POST", f"/v2/{repo}/blobs/uploads/", scope, content=b"", ok=(202,))
                location = self._absolute(r)
            r = await self.request(
                "PATCH",
                location,
                scope,
                content=piece,
                ok=(202,),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                },
            )
            location = self._absolute(r)
            offset += len(piece)
            if progress:
                progress(len(piece))

        async for chunk in chunks:
            buffer += chunk
            while len(buffer) >= CHUNK:
                await send(bytes(buffer[:CHUNK]))
                del buffer[:CHUNK]
        if location is None:
            await self._post_whole(repo, digest, bytes(buffer), scope)
            if progress:
                progress(len(buffer))
            return
        if buffer:
            await send(bytes(buffer))
        sep = "&" if "?" in location else "?"
        await self.request("PUT", f"{location}{sep}digest={digest}", scope, content=b"", ok=(201,))

    async def _post_whole(self, repo: str, digest: str, data: bytes, scope: str) -> None:
        r = await self.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/?digest={digest}",
            scope,
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            ok=(201, 202),
        )
        if r.status_code == 202:
            # The registry does not take a blob in one POST: it opened an upload; finish it with a PUT.
            location = self._absolute(r)
            sep = "&" if "?" in location else "?"
            await self.request(
                "PUT",
                f"{location}{sep}digest={digest}",
                scope,
                content=data,
                headers={"Content-Type": "application/octet-stream"},
                ok=(201,),
            )

    async def granted_actions(self, repo: str, actions: str = "pull,push") -> set[str] | None:
        """The actions on ``repo`` a token from the registry's token flow grants these credentials;
        ``None`` when the registry does not say (no auth, basic auth, an opaque token).

        Token servers answer a request for more than a caller may do with a token for less,
        so this is how to learn before a push whether it will be allowed.
        """
        base = await self._base()
        r = await self._guard(self._client().get(f"{base}/v2/"))
        if r.status_code != 401:
            return None
        scheme, _ = parse_challenge(r.headers.get("www-authenticate", ""))
        if scheme != "bearer":
            return None
        token = await self._token(r.headers["www-authenticate"], f"repository:{repo}:{actions}")
        claims = _jwt_claims(token or "")
        if claims is None or not isinstance(claims.get("access"), list):
            return None
        granted: set[str] = set()
        for entry in claims["access"]:
            if isinstance(entry, dict) and entry.get("type") == "repository" and entry.get("name") == repo:
                granted |= {str(a) for a in entry.get("actions") or []}
        return granted

    def _absolute(self, r: httpx.Response) -> str:
        location = r.headers.get("location", "")
        if location.startswith("http"):
            return str(location)
        return f"{r.request.url.scheme}://{r.request.url.netloc.decode()}{location}"

    async def pull_blob(
        self, repo: str, digest: str, progress: ProgressCallback | None = None
    ) -> AsyncIterator[bytes]:
        """Stream a blob, verifying its digest at the end."""
        parsed = parse_digest(digest)
        hasher = new_hasher(parsed.algorithm)
        url = await self._base() + f"/v2/{repo}/blobs/{digest}"
        scope = f"repository:{repo}:pull"
        # Resolve auth with a HEAD first, so the streamed GET carries a token.
        await self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope)
        headers = {"Authorization": f"Bearer {self._tokens[scope]}"} if scope in self._tokens else {}
        auth = (
            (self.credentials.username, self.credentials.password)
            if scope not in self._tokens and self.credentials
            else None
        )
        try:
            async with self._client().stream("GET", url, headers=headers, auth=auth) as r:
                if r.status_code != 200:
                    await r.aread()
                    raise ClientError(f"GET blob {digest}: {_message(r)}", r.status_code, _code(r))
                async for chunk in r.aiter_bytes(1 << 20):
                    hasher.update(chunk)
                    if progress:
                        progress(len(chunk))
                    yield chunk
        except httpx.TransportError as exc:
            if _is_certificate_failure(exc):
                raise explain_tls_failure(self.host, exc) from None
            raise ClientError(
                f"reading blob {digest} from {self.host}: {exc or type(exc).__name__}"
            ) from None
        if hasher.hexdigest() != parsed.encoded:
            raise ClientError(f"blob {digest} from {self.host} does not match its digest")

    async def read_blob(self, repo: str, digest: str) -> bytes:
        return b"".join([chunk async for chunk in self.pull_blob(repo, digest)])


async def _chunks(data: bytes | Path) -> AsyncIterator[bytes]:
    if isinstance(data, bytes):
        for i in range(0, len(data), CHUNK):
            yield data[i : i + CHUNK]
        return
    with data.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """A JWT's claims, unverified (only to read what it grants); ``None`` if it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None


def _digest_of(content: bytes, claimed: str | None) -> str:
    algorithm = claimed.split(":")[0] if claimed else "sha256"
    hasher = new_hasher(algorithm)
    hasher.update(content)
    digest = f"{algorithm}:{hasher.hexdigest()}"
    if claimed and claimed != digest:
        raise ClientError(f"manifest content does not match the requested digest {claimed}")
    return digest


def _code(r: httpx.Response) -> str | None:
    try:
        errors = r.json().get("errors")
        return str(errors[0].get("code")) if errors else None
    except (ValueError, AttributeError, IndexError, TypeError):
        return None


def _message(r: httpx.Response) -> str:
    try:
        errors = r.json().get("errors")
        if errors:
            return f"{r.status_code} {errors[0].get('code')}: {errors[0].get('message')}"
    except (ValueError, AttributeError, IndexError, TypeError):
        pass
    return f"{r.status_code} {r.reason_phrase}"
