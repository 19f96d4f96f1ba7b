"""uvicorn's httptools protocol with zero-copy file responses.

uvicorn has no way to send a file but ``transport.write`` of bytes the application read: every
byte of a blob is copied from the page cache into Python and again into the socket. This
protocol offers the ASGI ``http.response.zerocopysend`` extension on plain-HTTP connections and
answers it with ``sendfile(2)``: the kernel moves the bytes from the page cache to the socket.

``sendfile`` runs in a thread of its own per response (the kernel call, and the wait for the
socket to drain, both release the GIL), so a slow client never blocks the event loop. Nothing
else writes to the connection meanwhile: uvicorn queues a pipelined request until the response
is complete, and the transport's own buffer is empty before the first ``sendfile``. Over TLS
the extension is not offered (the bytes must pass through the TLS layer), nor when
``_MAX_SENDERS`` responses are already being sent this way: the application then sends
``http.response.body`` messages as usual.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import select
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

ZEROCOPY_SEND = "http.response.zerocopysend"
#: Responses sent with ``sendfile`` at once per process; more fall back to ``http.response.body``.
_MAX_SENDERS = 64
#: A client that takes no bytes for this long loses its connection.
_STALL_SECONDS = 60.0
_READ_CHUNK = 1 << 20
#: The send buffer of a connection over loopback (a proxy in front, a client on this host).
#: The kernel's autotuning lets ~4 MiB wait in flight; the peer's kernel then copies out bytes
#: that have long left the CPU's caches. With 512 KiB (the kernel doubles it) they are still
#: there. Measured on a 2-core VM with a verifying client (bench/README.md): 1 stream 1,365 ->
#: 1,680 MB/s, 8 streams 2,000 -> 2,850 MB/s. A remote peer keeps autotuning: its round trip
#: needs the larger window.
_LOOPBACK_SNDBUF = 512 << 10
#: Bytes received from a connection at most per read (see ``BufferedHttpProtocol``).
_RECEIVE_BUFFER = 1 << 20
_PAGE = 4096


class _Senders:
    """The threads that run ``sendfile``, and how many are taken (per process)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="moorage-sendfile")

    def take(self) -> bool:
        with self.lock:
            if self.busy >= self.size:
                return False
            self.busy += 1
            return True

    def give_back(self) -> None:
        with self.lock:
            self.busy -= 1


_senders = _Senders(_MAX_SENDERS)


def sendfile_all(sock_fd: int, file_fd: int, offset: int, count: int, stall_seconds: float) -> None:
    """Send ``count`` bytes of ``file_fd`` from ``offset`` to the non-blocking socket ``sock_fd``.

    Blocks (in a sender thread) while the socket is full; raises ``TimeoutError`` when the peer
    takes nothing for ``stall_seconds``, ``EOFError`` when the file ends early, and ``OSError``
    (``BrokenPipeError``, ``ConnectionResetError``) when the peer is gone."""
    poller = select.poll()
    poller.register(sock_fd, select.POLLOUT)
    end = offset + count
    while offset < end:
        try:
            sent = os.sendfile(sock_fd, file_fd, offset, end - offset)
        except BlockingIOError:
            if not poller.poll(int(stall_seconds * 1000)):
                raise TimeoutError(f"the client took no data for {stall_seconds:.0f} s") from None
            continue
        if sent == 0:
            raise EOFError(f"the file ended {end - offset} bytes early")
        offset += sent


def _send_and_close(sock_fd: int, file_fd: int, offset: int, count: int) -> None:
    """``sendfile_all`` on descriptors of the sender's own; then close them, give the sender back."""
    try:
        sendfile_all(sock_fd, file_fd, offset, count, _STALL_SECONDS)
    finally:
        os.close(sock_fd)
        os.close(file_fd)
        _senders.give_back()


class ZeroCopyCycle(RequestResponseCycle):
    """A request/response cycle that also takes ``http.response.zerocopysend`` messages."""

    async def send(self, message: Any) -> None:
        if message["type"] != ZEROCOPY_SEND:
            await super().send(message)
            return
        if not self.response_started or self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message {ZEROCOPY_SEND!r} outside a response body.")
        file_fd = message["file"].fileno()
        offset = message.get("offset")
        if offset is None:
            offset = os.lseek(file_fd, 0, os.SEEK_CUR)
        count = message.get("count")
        if count is None:
            count = os.fstat(file_fd).st_size - offset
        more_body = bool(message.get("more_body", False))
        if self.scope["method"] == "HEAD" or count == 0:
            await super().send({"type": "http.response.body", "body": b"", "more_body": more_body})
            return
        if self.chunked_encoding or count > self.expected_content_length or not _senders.take():
            await self._send_read(file_fd, offset, count, more_body)  # sendfile cannot frame chunks
            return
        await self._send_zero_copy(file_fd, offset, count)
        if self.disconnected:
            return
        self.expected_content_length -= count
        await super().send({"type": "http.response.body", "body": b"", "more_body": more_body})

    async def _send_zero_copy(self, file_fd: int, offset: int, count: int) -> None:
        """Send with ``sendfile`` in a sender thread (taken by the caller, given back by it)."""
        try:
            sock = self.transport.get_extra_info("socket")
            while self.transport.get_write_buffer_size() and not self.disconnected:
                if self.flow.write_paused:
                    await self.flow.drain()
                else:
                    await asyncio.sleep(0.001)  # below the high-water mark: no drain event comes
        except BaseException:
            _senders.give_back()
            raise
        if self.disconnected:
            _senders.give_back()
            return
        # The sender works on duplicates of both descriptors, and closes them itself: should the
        # transport close the connection meanwhile (the client reset it), or this task be
        # cancelled and the file closed, the numbers may at once be reused by a new connection
        # or file, which must never receive or give this response's bytes.
        fds = (os.dup(sock.fileno()), os.dup(file_fd))
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(_senders.pool, _send_and_close, *fds, offset, count)
        except (OSError, TimeoutError, EOFError) as exc:
            # The client is gone or stalled; bytes may be half sent, so the connection must end.
            self.logger.debug("zero-copy send ended: %s", exc)
            self.disconnected = True
            self.transport.close()

    async def _send_read(self, file_fd: int, offset: int, count: int, more_body: bool) -> None:
        loop = asyncio.get_running_loop()
        end = offset + count
        while offset < end:
            chunk = await loop.run_in_executor(
                None, os.pread, file_fd, min(_READ_CHUNK, end - offset), offset
            )
            if not chunk:
                raise RuntimeError(f"the file ended {end - offset} bytes early")
            offset += len(chunk)
            await super().send(
                {"type": "http.response.body", "body": chunk, "more_body": offset < end or more_body}
            )


def is_loopback_peer(peername: Any) -> bool:
    """Whether a transport's ``peername`` is a loopback IP address (not: a Unix socket's path)."""
    if not isinstance(peername, (tuple, list)) or not peername:
        return False
    try:
        address = ipaddress.ip_address(str(peername[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack listener's view of 127.0.0.1
    return address.is_loopback


class ZeroCopyHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, offering ``http.response.zerocopysend`` over plain HTTP,
    with a small send buffer on loopback connections (``_LOOPBACK_SNDBUF``), and request body
    pieces handed to the application as the parser made them (``on_body``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        self._zero_copy = (
            self.scheme == "http" and sock is not None and transport.get_extra_info("sslcontext") is None
        )
        if sock is not None and is_loopback_peer(transport.get_extra_info("peername")):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _LOOPBACK_SNDBUF)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._zero_copy:
            self.scope["extensions"] = {ZEROCOPY_SEND: {}}

    def on_body(self, body: bytes) -> None:
        """Keep a body piece as it is until the application takes it.

        uvicorn (0.3x and later) appends each piece to a ``bytearray`` and hands the application
        ``bytes()`` of that: two copies of every byte of an upload, on the event loop, on top of
        the parser's own. Its ``receive`` passes an exact ``bytes`` on as it is, so a piece that
        waits alone is never copied; pieces that pile up (the application slower than the
        socket) are joined as before. Measured with ``bench/cpucost.py`` (push64, bench/README.md)."""
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        waiting: bytes | bytearray = cycle.body
        if not waiting:
            cycle.body = body  # type: ignore[assignment]  # declared bytearray; receive() takes bytes
        else:
            if isinstance(waiting, bytes):
                waiting = cycle.body = bytearray(waiting)
            waiting += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn builds its own cycle class; ours only adds behaviour (no state), so it can
        # take the cycle over before the request's task starts.
        if self._zero_copy and type(cycle) is RequestResponseCycle:
            cycle.__class__ = ZeroCopyCycle
        super()._start_asgi_task(cycle, app)


_receive = threading.local()


def _receive_buffer() -> memoryview:
    """This thread's receive buffer, shared by all its connections (see ``BufferedHttpProtocol``)."""
    view: memoryview | None = getattr(_receive, "view", None)
    if view is None:
        buffer = bytearray(_RECEIVE_BUFFER)
        # Touch every page now, on the first connection (a client's first, bodiless request),
        # rather than while the first large body is read into it: a first touch of a page costs
        # ~2 ms per MiB on the VMs measured (bench/README.md).
        buffer[::_PAGE] = b"\0" * len(range(0, _RECEIVE_BUFFER, _PAGE))
        view = _receive.view = memoryview(buffer)
    return view


class BufferedHttpProtocol(asyncio.BufferedProtocol):
    """The protocol ``moorage serve`` gives uvicorn: ``ZeroCopyHttpToolsProtocol`` behind
    buffered reads, so that a request body is copied once on its way in instead of twice.

    A plain protocol is handed a new ``bytes`` per read (uvloop copies at most 256,000 bytes out
    of its own buffer), and the parser copies each body piece out of that again. Here the event
    loop reads straight into a buffer that the parser reads in place, and a blob arrives in
    pieces of up to ``_RECEIVE_BUFFER`` (1 MiB), a quarter as many. Measured with
    ``bench/cpucost.py`` (push64): event-loop CPU per 64 MiB push 53-68 -> 37-42 ms.

    One buffer serves every connection of the thread: the loop calls ``get_buffer``, reads, and
    calls ``buffer_updated`` in one go, and the parser copies out all it keeps (URL, headers,
    body pieces) before returning, so nothing refers to the buffer between two reads. Idle
    connections hold no buffer. uvloop reads into a protocol's buffer only if the protocol is
    not an ``asyncio.Protocol``, hence a wrapper rather than a subclass; the HTTP protocol is
    ``self.http`` (what uvicorn lists in its server state)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.http = ZeroCopyHttpToolsProtocol(*args, **kwargs)
        self._buffer = _receive_buffer()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.http.connection_made(transport)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self.http.connection_lost(exc)

    def eof_received(self) -> None:
        self.http.eof_received()  # then the transport closes itself, as for the plain protocol

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.http.data_received(self._buffer[:nbytes])  # type: ignore[arg-type]
