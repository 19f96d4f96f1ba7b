"""``moorage serve``'s HTTP protocol over real sockets: zero-copy blob responses, and request
bodies read through one shared buffer (``BufferedHttpProtocol``)."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from moorage.cli import zerocopy
from moorage.cli.zerocopy import (
    ZEROCOPY_SEND,
    BufferedHttpProtocol,
    ZeroCopyHttpToolsProtocol,
    is_loopback_peer,
    sendfile_all,
)
from moorage.registry.responses import BlobResponse

SIZE = 8 << 20


class FileApp:
    """``/blob?offset=&length=``: a BlobResponse of the file; ``/chunked``: a zero-copy body
    without a Content-Length; ``/upload``: the sha256 of the request body, whose piece sizes
    are kept in ``pieces`` (and the pieces themselves in ``kept``, when it is a list)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offered: list[bool] = []
        self.pieces: list[int] = []
        self.kept: list[bytes] | None = None
        self.server: uvicorn.Server | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.offered.append(ZEROCOPY_SEND in (scope.get("extensions") or {}))
        query = dict(p.split("=") for p in scope["query_string"].decode().split("&") if p)
        if scope["path"] == "/upload":
            digest = hashlib.sha256()
            while True:
                message = await receive()
                digest.update(message.get("body", b""))
                self.pieces.append(len(message.get("body", b"")))
                if self.kept is not None:
                    self.kept.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": digest.hexdigest().encode()})
            return
        if scope["path"] == "/chunked":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            with open(self.path, "rb") as fh:
                await send(
                    {"type": ZEROCOPY_SEND, "file": fh, "offset": 10, "count": 1000, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b"end", "more_body": False})
            return
        offset = int(query.get("offset", 0))
        length = int(query.get("length", SIZE - offset))
        response = BlobResponse(self.path, 200, {"x-test": "1"}, offset, length, scope["method"] == "HEAD")
        await response(scope, receive, send)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path_factory.mktemp("zc") / "blob"
    path.write_bytes(data)
    return path, data


@contextmanager
def _serving(path: Path, loop: str) -> Iterator[tuple[int, FileApp]]:
    app = FileApp(path)
    port = _free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop=loop,
        http=cast("type[asyncio.Protocol]", BufferedHttpProtocol),
        log_level="warning",
    )
    srv = uvicorn.Server(config)
    app.server = srv
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port, app
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(blob: tuple[Path, bytes]) -> Iterator[tuple[int, FileApp]]:
    """What ``moorage serve`` runs: uvloop and ``BufferedHttpProtocol``."""
    with _serving(blob[0], "uvloop") as served:
        yield served


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def any_loop_server(
    request: pytest.FixtureRequest, blob: tuple[Path, bytes]
) -> Iterator[tuple[int, FileApp]]:
    with _serving(blob[0], request.param) as served:
        yield served


def _get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _wait_senders_idle() -> None:
    deadline = time.monotonic() + 10
    while zerocopy._senders.busy:
        assert time.monotonic() < deadline, "a sender thread was never given back"
        time.sleep(0.02)


def test_whole_file_is_sent_and_the_extension_offered(
    server: tuple[int, FileApp], blob: tuple[Path, bytes]
) -> None:
    port, app = server
    status, headers, body = _get(port, "/blob")
    assert status == 200
    assert headers["content-length"] == str(SIZE)
    assert headers["x-test"] == "1"
    assert hashlib.sha256(body).digest() == hashlib.sha256(blob[1]).digest()
    assert app.offered[-1] is True
    _wait_senders_idle()


@pytest.mark.parametrize(("offset", "length"), [(0, 1), (1, 4096), (12345, 3 << 20), (SIZE - 7, 7)])
def test_ranges(server: tuple[int, FileApp], blob: tuple[Path, bytes], offset: int, length: int) -> None:
    status, headers, body = _get(server[0], f"/blob?offset={offset}&length={length}")
    assert status == 200
    assert headers["content-length"] == str(length)
    assert body == blob[1][offset : offset + length]


def test_head_sends_no_body(server: tuple[int, FileApp]) -> None:
    status, headers, body = _get(server[0], "/blob", "HEAD")
    assert status == 200
    assert headers["content-length"] == str(SIZE)
    assert body == b""


def test_keep_alive_and_pipelined_requests(server: tuple[int, FileApp], blob: tuple[Path, bytes]) -> None:
    """Two requests written at once on one connection: the second answer follows the first
    whole, so nothing interleaves with a zero-copy body."""
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        request = "GET /blob?offset={o}&length={n} HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall((request.format(o=0, n=SIZE) + request.format(o=5, n=100)).encode())
        received = b""
        first_len = SIZE
        while True:
            chunk = sock.recv(1 << 20)
            assert chunk, "connection closed early"
            received += chunk
            head_end = received.find(b"\r\n\r\n")
            if head_end < 0:
                continue
            second = received.find(b"HTTP/1.1 200", head_end + 4 + first_len)
            if second >= 0 and received.endswith(blob[1][5:105]):
                break
        first_body = received[head_end + 4 : head_end + 4 + first_len]
        assert first_body == blob[1]
        assert received[second:].endswith(b"\r\n\r\n" + blob[1][5:105])


def test_without_content_length_the_body_is_read_and_chunked(
    server: tuple[int, FileApp], blob: tuple[Path, bytes]
) -> None:
    status, headers, body = _get(server[0], "/chunked")
    assert status == 200
    assert headers.get("transfer-encoding") == "chunked"
    assert body == blob[1][10:1010] + b"end"


def test_when_every_sender_is_busy_the_body_is_read_instead(
    server: tuple[int, FileApp], blob: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zerocopy._senders, "busy", zerocopy._senders.size)
    status, _, body = _get(server[0], "/blob?offset=3&length=2000000")
    assert status == 200
    assert body == blob[1][3:2000003]


def test_a_client_that_goes_away_mid_body_harms_nothing(
    server: tuple[int, FileApp], blob: tuple[Path, bytes]
) -> None:
    port, _ = server
    # Many at once-reused descriptor numbers: a new connection must start with its own answer.
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /blob HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # with linger 0: a reset while the server is sending
    _wait_senders_idle()
    status, _, body = _get(port, "/blob?offset=0&length=1000")
    assert status == 200
    assert body == blob[1][:1000]


def test_a_loopback_connection_gets_a_small_send_buffer(server: tuple[int, FileApp]) -> None:
    """Over loopback the peer copies from socket buffers still in the CPU's caches."""
    port, app = server
    assert app.server is not None
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /blob?offset=0&length=10 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        client_port = sock.getsockname()[1]
        (protocol,) = [
            c
            for c in app.server.server_state.connections
            if c.transport.get_extra_info("peername")[1] == client_port
        ]
        server_sock = protocol.transport.get_extra_info("socket")
        # Linux doubles the value asked for (bookkeeping overhead), and reports the double.
        assert server_sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * zerocopy._LOOPBACK_SNDBUF


@pytest.mark.parametrize(
    ("peername", "loopback"),
    [
        (("127.0.0.1", 5000), True),
        (("127.8.9.10", 5000), True),
        (("::1", 5000, 0, 0), True),
        (("::ffff:127.0.0.1", 5000, 0, 0), True),
        (("fe80::1%eth0", 5000, 0, 2), False),
        (("10.0.0.7", 5000), False),
        (("::ffff:10.0.0.7", 5000, 0, 0), False),
        ("", False),  # a Unix socket
        ("/run/moorage.sock", False),
        (None, False),
        (("not-an-address", 1), False),
    ],
)
def test_is_loopback_peer(peername: object, loopback: bool) -> None:
    assert is_loopback_peer(peername) is loopback


# -- sendfile_all ----------------------------------------------------------------------------
def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


def test_sendfile_all_waits_for_a_slow_reader(blob: tuple[Path, bytes]) -> None:
    sender, reader = _pair()
    got = bytearray()

    def read() -> None:
        while len(got) < 3 << 20:
            time.sleep(0.001)
            got.extend(reader.recv(256 << 10))

    thread = threading.Thread(target=read)
    thread.start()
    with open(blob[0], "rb") as fh:
        sendfile_all(sender.fileno(), fh.fileno(), 100, 3 << 20, stall_seconds=10)
    thread.join(30)
    assert bytes(got) == blob[1][100 : 100 + (3 << 20)]
    sender.close()
    reader.close()


def test_sendfile_all_gives_up_on_a_reader_that_never_reads(blob: tuple[Path, bytes]) -> None:
    sender, reader = _pair()
    with open(blob[0], "rb") as fh, pytest.raises(TimeoutError):
        sendfile_all(sender.fileno(), fh.fileno(), 0, SIZE, stall_seconds=0.2)
    sender.close()
    reader.close()


def test_sendfile_all_refuses_a_file_shorter_than_promised(tmp_path: Path) -> None:
    sender, reader = _pair()
    path = tmp_path / "short"
    path.write_bytes(b"x" * 10)
    with open(path, "rb") as fh, pytest.raises(EOFError):
        sendfile_all(sender.fileno(), fh.fileno(), 0, 20, stall_seconds=1)
    assert reader.recv(100) == b"x" * 10
    sender.close()
    reader.close()


def test_sendfile_all_reports_a_peer_that_is_gone(blob: tuple[Path, bytes]) -> None:
    sender, reader = _pair()
    reader.close()
    with open(blob[0], "rb") as fh, pytest.raises((BrokenPipeError, ConnectionResetError)):
        sendfile_all(sender.fileno(), fh.fileno(), 0, SIZE, stall_seconds=1)
    sender.close()


def _upload(port: int, body: bytes, headers: dict[str, str] | None = None) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("PUT", "/upload", body=body, headers=headers or {})
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def test_a_large_body_arrives_whole_in_pieces_larger_than_the_loops_own(
    any_loop_server: tuple[int, FileApp], blob: tuple[Path, bytes]
) -> None:
    """Read into the protocol's buffer: pieces of up to 1 MiB reach the application, where
    uvloop's own reads stop at 256,000 bytes (asyncio's at 256 KiB)."""
    port, app = any_loop_server
    app.pieces.clear()
    assert _upload(port, blob[1]) == hashlib.sha256(blob[1]).hexdigest()
    assert sum(app.pieces) == SIZE
    assert max(app.pieces) > 256 << 10
    assert max(app.pieces) <= zerocopy._RECEIVE_BUFFER


def test_body_pieces_reach_the_application_as_the_parser_made_them(
    server: tuple[int, FileApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No copy between the parser and the application: uvicorn's own ``on_body`` copies every
    byte twice (into a ``bytearray``, then out of it). Only pieces that arrive while the
    application has not taken the last one are joined."""
    port, app = server
    made: list[bytes] = []  # keeps every piece alive, so that no id is reused
    on_body = ZeroCopyHttpToolsProtocol.on_body

    def recording(self: ZeroCopyHttpToolsProtocol, body: bytes) -> None:
        made.append(body)
        on_body(self, body)

    monkeypatch.setattr(ZeroCopyHttpToolsProtocol, "on_body", recording)  # new connections' parsers
    app.kept = []
    body = os.urandom(4 << 20)
    try:
        assert _upload(port, body) == hashlib.sha256(body).hexdigest()
        received = app.kept
    finally:
        app.kept = None
    assert b"".join(received) == body
    made_ids = {id(piece) for piece in made}
    uncopied = sum(len(piece) for piece in received if id(piece) in made_ids)
    assert uncopied >= len(body) * 3 // 4, (uncopied, [len(piece) for piece in received])


def test_connections_sharing_the_receive_buffer_keep_their_bodies_apart(
    any_loop_server: tuple[int, FileApp],
) -> None:
    """Eight uploads at once, through one buffer per event loop: every body arrives intact."""
    port, _ = any_loop_server
    bodies = [os.urandom((3 << 20) + i * 4099) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        digests = list(pool.map(lambda body: _upload(port, body), bodies))
    assert digests == [hashlib.sha256(body).hexdigest() for body in bodies]


def test_a_chunked_body_and_small_requests_after_it(any_loop_server: tuple[int, FileApp]) -> None:
    """A body in chunked transfer coding, then a small request on the same connection."""
    port, _ = any_loop_server
    pieces = [os.urandom(n) for n in (1, 70_000, 1 << 20, 3)]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("PUT", "/upload", body=iter(pieces), encode_chunked=True)
        response = conn.getresponse()
        assert response.read().decode() == hashlib.sha256(b"".join(pieces)).hexdigest()
        conn.request("PUT", "/upload", body=b"small")
        assert conn.getresponse().read().decode() == hashlib.sha256(b"small").hexdigest()
    finally:
        conn.close()


def test_pipelined_uploads_in_one_write(any_loop_server: tuple[int, FileApp]) -> None:
    """Two requests in one write: the second starts inside the buffer the first was read from."""
    port, _ = any_loop_server
    first, second = os.urandom(100_000), os.urandom(10)
    request = "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            request.format(n=len(first)).encode() + first + request.format(n=len(second)).encode() + second
        )
        received = b""
        while received.count(b"\r\n0\r\n\r\n") < 2:  # two whole chunked responses
            chunk = sock.recv(65536)
            assert chunk, f"connection closed early: {received!r}"
            received += chunk
    answers = [part.split(b"\r\n")[1] for part in received.split(b"\r\n\r\n40")[1:]]
    assert answers == [hashlib.sha256(body).hexdigest().encode() for body in (first, second)]
