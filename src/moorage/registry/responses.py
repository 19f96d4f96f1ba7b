"""Streaming blob responses: never a whole blob in memory, zero-copy where the server allows."""

from __future__ import annotations

import os
from pathlib import Path

import anyio.to_thread
from starlette.types import Receive, Scope, Send

_CHUNK = 1 << 20


class BytesResponse:
    """A small in-memory response whose headers are given ready to send (lower-case, encoded).

    For the hottest small responses (manifest GET/HEAD): Starlette's ``Response`` builds,
    encodes and checks its header list on every request."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class BlobResponse:
    """Send ``length`` bytes of a local file from ``offset``.

    Zero-copy where the server offers it: ``http.response.zerocopysend`` (Moorage's uvicorn
    protocol, cli/zerocopy.py: any range), ``http.response.pathsend`` (granian: whole files);
    else ``pread`` in 1 MiB chunks off the event loop.
    """

    def __init__(
        self, path: Path, status: int, headers: dict[str, str], offset: int, length: int, head: bool
    ) -> None:
        self.path = path
        self.status = status
        self.headers = headers
        self.offset = offset
        self.length = length
        self.head = head

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        raw_headers.append((b"content-length", str(self.length).encode()))
        if self.head or self.length == 0:
            await send({"type": "http.response.start", "status": self.status, "headers": raw_headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        extensions = scope.get("extensions") or {}
        with open(self.path, "rb", buffering=0) as fh:
            fd = fh.fileno()
            whole = self.offset == 0 and self.length == os.fstat(fd).st_size
            await send({"type": "http.response.start", "status": self.status, "headers": raw_headers})
            if "http.response.zerocopysend" in extensions:
                await send(
                    {
                        "type": "http.response.zerocopysend",
                        "file": fh,
                        "offset": self.offset,
                        "count": self.length,
                        "more_body": False,
                    }
                )
                return
            if whole and "http.response.pathsend" in extensions:
                await send({"type": "http.response.pathsend", "path": str(self.path)})
                return
            position, remaining = self.offset, self.length
            while remaining > 0:
                chunk = await anyio.to_thread.run_sync(os.pread, fd, min(_CHUNK, remaining), position)
                if not chunk:
                    raise RuntimeError(f"blob file {self.path} is shorter than recorded")
                position += len(chunk)
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
