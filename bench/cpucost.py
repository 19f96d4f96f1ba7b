#!/usr/bin/env python3
"""Server CPU per request: a measure that stays comparable on a busy, shared machine.

Wall-clock throughput on a 2-core machine shared with other test suites moves by 2x from
one run to the next; the CPU time the server itself spends per request hardly moves. This
starts Moorage (``python -m moorage serve``, ``--server`` (uvicorn) with one worker, SQLite, token auth, durable
writes unless ``--no-durable``, scan on push off unless ``--scan``), drives fixed workloads over loopback with a light client,
and reads the server process tree's user+system CPU (``/proc/<pid>/stat``) before and after
each workload.

    python3 bench/cpucost.py                                # every workload, the working tree
    python3 bench/cpucost.py --src /tmp/base/src --label base --only get16,put16
    python3 bench/cpucost.py --rounds 3 --only push64       # median of 3

Workloads (``--only``, comma separated):

- ``push1``   monolithic POST-then-PUT of 1 MiB blobs            -> CPU ms per blob
- ``push64``  monolithic POST-then-PUT of 64 MiB blobs           -> CPU ms per 64 MiB (and per GB)
- ``chunked`` a 256 MiB blob in 8 MiB PATCHes, then PUT          -> CPU ms per 256 MiB
- ``put16``   manifest PUT by tag, 16 connections, each manifest distinct  -> CPU us per PUT
- ``get16``   manifest GET by tag, 16 connections                -> CPU us per GET
- ``head16``  manifest HEAD by digest, 16 connections            -> CPU us per HEAD

Every pushed digest is checked against the one the server returns, and every GET body
is hashed and compared. Results are printed as a table and, with ``--out``, written as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TICK = os.sysconf("SC_CLK_TCK")
REPOSITORY = "bench/cpucost"
# The project's venv when there is one (``python3 bench/...`` then works without activating it):
# Moorage and regbench (httpx) need its packages.
_VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _stat_cpu(path: str) -> float:
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def tree_cpu(root: int) -> tuple[float, float]:
    """User + system CPU seconds of ``root`` and its descendants: all their threads, and
    their main threads only (the event loops: what a request waits for)."""
    total = loops = 0.0
    for pid in tree_pids(root):
        total += _stat_cpu(f"/proc/{pid}/stat")
        loops += _stat_cpu(f"/proc/{pid}/task/{pid}/stat")
    return total, loops


class Server:
    def __init__(self, src: Path, workdir: Path, durable: bool, scan: bool, server: str = "uvicorn") -> None:
        self.port = free_port()
        self.password = os.urandom(12).hex()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        env |= {
            "MOORAGE_LOG_LEVEL": "warning",
            "MOORAGE_ADMIN_PASSWORD": self.password,
            "MOORAGE_DURABLE_WRITES": "true" if durable else "false",
            # Scans of what put16 pushes would run on during the later workloads.
            "MOORAGE_SCAN_ON_PUSH_DEFAULT": "true" if scan else "false",
            "PYTHONPATH": str(src.resolve()) + os.pathsep + env.get("PYTHONPATH", ""),
        }
        argv = [
            PYTHON, "-m", "moorage", "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", str(workdir / "data"), "--workers", "1", "--server", server,
        ]  # fmt: skip
        self.log = (workdir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir
        )
        end = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(workdir / 'server.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.2)
        self.token = self._token()

    def _token(self) -> str:
        basic = base64.b64encode(f"admin:{self.password}".encode()).decode()
        query = urllib.parse.urlencode({"service": "moorage", "scope": f"repository:{REPOSITORY}:pull,push"})
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=5)
        except urllib.error.HTTPError as e:
            challenge = e.headers.get("WWW-Authenticate", "")
            for part in challenge.split(","):
                key, _, value = part.strip().partition("=")
                if key.endswith("service"):
                    query = urllib.parse.urlencode(
                        {"service": value.strip('"'), "scope": f"repository:{REPOSITORY}:pull,push"}
                    )
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/auth/token?{query}", headers={"Authorization": f"Basic {basic}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback only
            doc = json.loads(r.read())
        return str(doc.get("token") or doc["access_token"])

    def cpu(self) -> float:
        return tree_cpu(self.proc.pid)[0]

    def cpu_split(self) -> tuple[float, float]:
        return tree_cpu(self.proc.pid)

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until the server is idle (background work of the last workload done)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            c0 = self.cpu()
            time.sleep(0.5)
            if self.cpu() - c0 <= 0.02:
                return

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


# -- a minimal HTTP/1.1 client -----------------------------------------------------------------
class Conn:
    """One keep-alive connection (blocking socket, for the pushes)."""

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.auth = f"Authorization: Bearer {token}\r\n"
        self.buf = b""

    def request(
        self, method: str, path: str, body: bytes | memoryview = b"", headers: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.auth}{headers}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.sock.sendall(head)
        if body:
            self.sock.sendall(body)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        raw, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        n = 0 if method == "HEAD" else int(hdrs.get("content-length", "0"))
        while len(self.buf) < n:
            self.buf += self._recv()
        payload, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, payload

    def _recv(self) -> bytes:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("server closed the connection")
        return data

    def close(self) -> None:
        self.sock.close()


def expect(ok: bool, status: int, body: bytes) -> None:
    if not ok:
        raise RuntimeError(f"unexpected answer {status}: {body[:300]!r}")


def push_blob(conn: Conn, data: bytes, chunk: int | None = None, digest: str | None = None) -> str:
    digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
    status, h, _ = conn.request("POST", f"/v2/{REPOSITORY}/blobs/uploads/")
    expect(status == 202, status, b"")
    location = h["location"]
    view = memoryview(data)
    if chunk:
        for start in range(0, len(data), chunk):
            part = view[start : start + chunk]
            status, h, body = conn.request(
                "PATCH",
                location,
                part,
                f"Content-Range: {start}-{start + len(part) - 1}\r\nContent-Type: application/octet-stream\r\n",
            )
            expect(status == 202, status, body)
            location = h["location"]
        view = memoryview(b"")
    sep = "&" if "?" in location else "?"
    status, h, body = conn.request(
        "PUT", f"{location}{sep}digest={digest}", view, "Content-Type: application/octet-stream\r\n"
    )
    expect(status == 201 and h["docker-content-digest"] == digest, status, body)
    return digest


async def hammer(
    port: int, token: str, requests: list[bytes], conc: int, check: Callable[[int, bytes, bytes], None]
) -> None:
    """Send ``requests`` (prebuilt) over ``conc`` keep-alive connections, in order per connection."""
    queue = list(reversed(requests))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                req = queue.pop()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                length = 0
                if not req.startswith(b"HEAD"):
                    for line in lines[1:]:
                        if line[:15].lower() == "content-length:":
                            length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                check(status, head, body)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(conc)))


def build(method: str, path: str, token: str, body: bytes = b"", ctype: str = "") -> bytes:
    extra = f"Content-Type: {ctype}\r\n" if ctype else ""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# -- workloads ---------------------------------------------------------------------------------
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


class Bench:
    def __init__(self, server: Server, scale: float) -> None:
        self.server, self.scale = server, scale
        self.conn = Conn(server.port, server.token)
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
        layer = os.urandom(4096)
        self.config = (push_blob(self.conn, config), len(config))
        self.layer = (push_blob(self.conn, layer), len(layer))
        self.put_serial = 0
        self.untimed = 0.0

    def n(self, base: int) -> int:
        return max(1, int(base * self.scale))

    def manifest(self, i: int) -> bytes:
        doc = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": self.config[0],
                "size": self.config[1],
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": self.layer[0],
                    "size": self.layer[1],
                }
            ],
            "annotations": {"serial": str(i)},
        }
        return json.dumps(doc).encode()

    def push(self, size: int, count: int, chunk: int | None = None) -> int:
        t0 = time.perf_counter()
        blobs = [
            (data, "sha256:" + hashlib.sha256(data).hexdigest()) for data in map(os.urandom, [size] * count)
        ]
        self.untimed += time.perf_counter() - t0  # making the data is no part of the wall time
        for data, digest in blobs:
            push_blob(self.conn, data, chunk, digest)
        return count

    def put16(self, count: int) -> int:
        token = self.server.token
        reqs = []
        for _ in range(count):
            self.put_serial += 1
            i = self.put_serial
            reqs.append(
                build("PUT", f"/v2/{REPOSITORY}/manifests/t{i}", token, self.manifest(i), MANIFEST_TYPE)
            )

        def check(status: int, head: bytes, body: bytes) -> None:
            expect(status == 201, status, body)

        asyncio.run(hammer(self.server.port, token, reqs, 16, check))
        return count

    def _ensure_tag(self) -> tuple[str, str]:
        content = self.manifest(0)
        status, _, body = self.conn.request(
            "PUT", f"/v2/{REPOSITORY}/manifests/latest", content, f"Content-Type: {MANIFEST_TYPE}\r\n"
        )
        expect(status == 201, status, body)
        return "sha256:" + hashlib.sha256(content).hexdigest(), hashlib.sha256(content).hexdigest()

    def get16(self, count: int) -> int:
        _, hexd = self._ensure_tag()
        req = build("GET", f"/v2/{REPOSITORY}/manifests/latest", self.server.token)

        def check(status: int, head: bytes, body: bytes) -> None:
            expect(status == 200 and hashlib.sha256(body).hexdigest() == hexd, status, body)

        asyncio.run(hammer(self.server.port, self.server.token, [req] * count, 16, check))
        return count

    def head16(self, count: int) -> int:
        digest, _ = self._ensure_tag()
        req = build("HEAD", f"/v2/{REPOSITORY}/manifests/{digest}", self.server.token)

        def check(status: int, head: bytes, body: bytes) -> None:
            expect(status == 200 and digest.encode() in head, status, head)

        asyncio.run(hammer(self.server.port, self.server.token, [req] * count, 16, check))
        return count


WORKLOADS: dict[str, tuple[str, float, Callable[[Bench], int]]] = {
    # name: (unit, per-op divisor to get the unit, run)
    "push1": ("CPU ms / 1 MiB blob", 1e3, lambda b: b.push(1 << 20, b.n(40))),
    "push64": ("CPU ms / 64 MiB blob", 1e3, lambda b: b.push(64 << 20, b.n(6))),
    "chunked": ("CPU ms / 256 MiB chunked", 1e3, lambda b: b.push(256 << 20, b.n(2), 8 << 20)),
    "put16": ("CPU us / manifest PUT c16", 1e6, lambda b: b.put16(b.n(3000))),
    "get16": ("CPU us / manifest GET c16", 1e6, lambda b: b.get16(b.n(10000))),
    "head16": ("CPU us / manifest HEAD c16", 1e6, lambda b: b.head16(b.n(10000))),
}


def start_profile(directory: Path, name: str, pid: int) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [os.environ.get("PY_SPY", "py-spy"), "record", "-p", str(pid), "-r", "200", "-f", "raw", "-s",
         "-o", str(directory / f"{name}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # let it attach
    return spy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, default=REPO / "src", help="the moorage source tree to run")
    p.add_argument("--label", default="tree")
    p.add_argument("--only", default=",".join(WORKLOADS))
    p.add_argument("--rounds", type=int, default=1, help="repeat each workload; report the median")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the operation counts")
    p.add_argument("--no-durable", dest="durable", action="store_false")
    p.add_argument("--out", type=Path)
    p.add_argument("--scan", action="store_true", help="keep scan on push on (the default is off)")
    p.add_argument("--server", default="uvicorn", choices=("uvicorn", "granian"))
    p.add_argument(
        "--profile",
        type=Path,
        help="record each workload with py-spy (on PATH, or $PY_SPY) into DIR/<workload>.txt "
        "(collapsed stacks; profiling inflates the CPU figures)",
    )
    a = p.parse_args()
    names = [n for n in a.only.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="moorage-cpucost-") as tmp:
        server = Server(a.src, Path(tmp), a.durable, a.scan, a.server)
        results: dict[str, dict[str, object]] = {}
        try:
            bench = Bench(server, a.scale)
            bench.get16(200)  # warm up: imports, caches, connection pools
            bench.put16(50)
            for name in names:
                unit, factor, run = WORKLOADS[name]
                per_op, loop_per_op, walls = [], [], []
                for _ in range(a.rounds):
                    server.settle()
                    spy = start_profile(a.profile, name, server.proc.pid) if a.profile else None
                    bench.untimed = 0.0
                    (c0, l0), t0 = server.cpu_split(), time.perf_counter()
                    ops = run(bench)
                    (c1, l1), wall = server.cpu_split(), time.perf_counter() - t0 - bench.untimed
                    cpu, loop = c1 - c0, l1 - l0
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(30)
                    per_op.append(cpu / ops * factor)
                    loop_per_op.append(loop / ops * factor)
                    walls.append(ops / wall)
                results[name] = {
                    "unit": unit,
                    "cpu_per_op": round(statistics.median(per_op), 1),
                    "rounds": [round(v, 1) for v in per_op],
                    "loop_cpu_per_op": round(statistics.median(loop_per_op), 1),
                    "ops_per_s_wall": round(statistics.median(walls), 1),
                }
                print(
                    f"{a.label:12} {name:8} {results[name]['cpu_per_op']:>9} {unit}"
                    f" (event loop {results[name]['loop_cpu_per_op']})"
                    f"   rounds {results[name]['rounds']}   ({results[name]['ops_per_s_wall']} ops/s wall, noisy)",
                    flush=True,
                )
        finally:
            server.stop()
    if a.out:
        a.out.write_text(json.dumps({"label": a.label, "src": str(a.src), "results": results}, indent=2))


if __name__ == "__main__":
    main()
