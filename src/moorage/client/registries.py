"""One ``RegistryClient`` per registry host, with the settings every app-client command shares:
which registries are insecure, a CA file, and credentials from Docker's ``config.json``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from moorage.client.auth import Credentials, load_credentials
from moorage.client.registry import RegistryClient


def split_hosts(values: Iterable[str] | None) -> frozenset[str]:
    """``--insecure-registries a,b --insecure-registries c`` -> {a, b, c}."""
    return frozenset(h.strip() for v in values or () for h in v.split(",") if h.strip())


@dataclass
class Registries:
    insecure: frozenset[str] = frozenset()
    ca_file: Path | None = None
    credentials: Callable[[str], Credentials | None] = load_credentials
    #: Tests route every registry to an in-process app through this.
    transport: httpx.AsyncBaseTransport | None = None
    _clients: dict[str, RegistryClient] = field(default_factory=dict)

    def is_insecure(self, host: str) -> bool:
        """``host:port`` listed as is, or its host name listed without a port."""
        return host in self.insecure or host.rsplit(":", 1)[0] in self.insecure

    def client(self, host: str) -> RegistryClient:
        if host not in self._clients:
            self._clients[host] = RegistryClient(
                host,
                credentials=self.credentials(host),
                insecure=self.is_insecure(host),
                ca_file=self.ca_file,
                transport=self.transport,
            )
        return self._clients[host]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def __aenter__(self) -> Registries:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
