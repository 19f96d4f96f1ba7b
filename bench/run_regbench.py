#!/usr/bin/env python3
"""Moorage against the CNCF reference registry, interleaved, with regbench.

Starts both registries on loopback (each with its own temporary data directory),
then for every round runs ``../shared/bench/regbench.py --reps 1`` against the reference
(A) and Moorage (B) in turn -- A, B, A, B, ... -- so that both see the same machine
noise. The medians over the rounds and their ratios (Moorage / reference; for
latencies reference / Moorage, so above 1 always means Moorage is better) go to
``bench/results/<date>-<label>.json`` and ``.md``.

While regbench runs, the resident memory (RSS) of each server's whole process tree is
sampled; ``--memcheck`` adds a round that pushes and pulls one 1 GiB blob and reports
the servers' RSS before and at peak (memory must stay flat while streaming).

Everything is bounded: each regbench call has ``--max-seconds`` and a subprocess timeout,
servers are stopped (their process groups, which this script created) on exit.

    python3 bench/run_regbench.py --label baseline --reps 3
    python3 bench/run_regbench.py --label granian-w2 --server granian --workers 2 --only abcd
    python3 bench/run_regbench.py --label mem --memcheck --only "" --reps 0
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REGBENCH = (REPO / ".." / "shared" / "bench" / "regbench.py").resolve()
RESULTS = HERE / "results"
REFERENCE_BIN = "/usr/bin/docker-registry"
# The project's venv when there is one (``python3 bench/...`` then works without activating it):
# Moorage and regbench (httpx) need its packages.
_VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable

# metric key -> (short name, target ratio) for the rows the targets are about
TARGETS: dict[str, tuple[str, float]] = {
    "a.push.monolithic_1MiB.MBps": ("blob push 1 MiB", 2.0),
    "a.push.monolithic_64MiB.MBps": ("blob push 64 MiB", 2.0),
    "a.push.chunked_256MiB_8MiB_chunks.MBps": ("blob push chunked 256 MiB", 2.0),
    "b.pull.single_256MiB.MBps": ("blob pull 1 stream", 1.0),
    "b.pull.8x_256MiB.MBps": ("blob pull 8 streams", 1.2),
    "c.manifest_put.c1.per_s": ("manifest PUT c=1", 1.5),
    "c.manifest_put.c16.per_s": ("manifest PUT c=16", 1.5),
    "d.get_by_tag.c16.rps": ("manifest GET by tag c=16", 3.0),
}


def log(msg: str) -> None:
    print(f"[run_regbench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], ok: tuple[int, ...], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
                if r.status in ok:
                    return
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
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


def tree_rss_mib(root: int) -> float:
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return round(total / (1 << 20), 1)


class RssSampler:
    """Samples a process tree's RSS every 0.2 s in a thread; ``peak`` since the last reset."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, tree_rss_mib(self.pid))

    def reset(self) -> float:
        now = tree_rss_mib(self.pid)
        self.peak = now
        return now

    def stop(self) -> None:
        self._stop.set()


class Server:
    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        port: int,
        workdir: Path,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.name, self.port, self.workdir, self.credentials = name, port, workdir, credentials
        self.argv, self.env = argv, env
        self.url = f"http://127.0.0.1:{port}"
        self.start()

    def start(self) -> None:
        argv, env, name, workdir = self.argv, self.env, self.name, self.workdir
        self.logfile = (workdir / f"{name}.log").open("ab")
        # A new session: the server and its workers form one process group we can stop.
        self.proc = subprocess.Popen(
            argv, env=env, stdout=self.logfile, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir
        )
        try:
            wait_ready(self.url + "/v2/", self.proc, ok=(200, 401))
        except BaseException:
            self.stop()
            tail = (workdir / f"{name}.log").read_text(errors="replace")[-3000:]
            log(f"{name} did not start; the end of its log:\n{tail}")
            raise
        time.sleep(1.0)  # let every worker come up
        self.rss = RssSampler(self.proc.pid)
        log(f"{name} ready on {self.url} (pid {self.proc.pid}, RSS {tree_rss_mib(self.proc.pid)} MiB)")

    def serving_pid(self) -> int:
        """The process that does the work: a single worker when there is one, else the root."""
        pids = tree_pids(self.proc.pid)
        workers = [p for p in pids if p != self.proc.pid]
        return workers[0] if len(workers) == 1 else self.proc.pid

    def ensure_alive(self) -> None:
        """Something on a shared machine may have ended the server: start it again (same data)."""
        if self.proc.poll() is None:
            return
        log(f"{self.name} (pid {self.proc.pid}) is gone (exit {self.proc.returncode}): starting it again")
        self.stop()
        self.start()

    def stop(self) -> None:
        if hasattr(self, "rss"):
            self.rss.stop()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.logfile.close()


def start_reference(workdir: Path) -> Server:
    port = free_port()
    root = workdir / "reference-data"
    root.mkdir()
    config = workdir / "reference.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        "storage:\n"
        "  cache:\n    blobdescriptor: inmemory\n"
        f"  filesystem:\n    rootdirectory: {root}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    return Server("reference", [REFERENCE_BIN, "serve", str(config)], env, port, workdir)


def start_moorage(workdir: Path, a: argparse.Namespace) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["MOORAGE_LOG_LEVEL"] = "warning"
    password = os.urandom(12).hex()
    env["MOORAGE_ADMIN_PASSWORD"] = password
    env["MOORAGE_DURABLE_WRITES"] = "true" if a.durable else "false"
    env["MOORAGE_SQLITE_SYNCHRONOUS"] = a.sqlite_synchronous
    # The reference has no scanner. With scan on push, every manifest of phase c queues a scan
    # that runs in the background during the later phases (and PUT pays for queueing it).
    env["MOORAGE_SCAN_ON_PUSH_DEFAULT"] = "true" if a.scan_on_push else "false"
    env["PYTHONPATH"] = str(a.src.resolve()) + os.pathsep + env.get("PYTHONPATH", "")
    argv = [
        PYTHON,
        "-m",
        "moorage",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(workdir / "moorage-data"),
        "--workers",
        str(a.workers),
        "--server",
        a.server,
    ]
    return Server("moorage", argv, env, port, workdir, credentials=("admin", password))


def dirty_mib() -> dict[str, float]:
    """Page-cache bytes waiting for the disk (``Dirty``) and being written (``Writeback``), MiB."""
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Dirty", "Writeback"):
            out[key.lower()] = round(int(value.split()[0]) / 1024, 1)
    return out


def settle_disk() -> dict[str, float]:
    """``sync``: write out what the previous side left dirty, before the next side's timed windows.

    The reference never flushes: each of its rounds leaves a few hundred MiB dirty, which the
    kernel writes out about 30 s later (``vm.dirty_expire_centisecs``), in the middle of the
    next side's round, and ext4 then makes that side's ``fsync``s wait for it. Returns the dirty
    state found and how long the ``sync`` took."""
    found = dirty_mib()
    t0 = time.monotonic()
    os.sync()
    return {**found, "sync_s": round(time.monotonic() - t0, 3)}


def regbench(server: Server, out: Path, a: argparse.Namespace, extra: list[str]) -> dict:
    server.ensure_alive()
    disk = settle_disk() if a.sync_between else dirty_mib()
    env = dict(os.environ)
    auth = []
    if server.credentials:  # Moorage asks for Docker token auth; regbench fetches tokens outside the windows
        auth = ["--user", server.credentials[0]]
        env["REGBENCH_PASSWORD"] = server.credentials[1]
    argv = [
        PYTHON,
        str(REGBENCH),
        server.url,
        "--out",
        str(out),
        "--reps",
        "1",
        "--label",
        server.name,
        "--max-seconds",
        str(a.max_seconds),
        "--server-pid",
        str(server.serving_pid()),
        "--engines",
        a.engines,
        "--duration",
        str(a.duration),
        "--wrk",
        "off",
        "--ab",
        "off",
        "--curl",
        "off",
        "--quiet-max-wait",
        str(a.quiet_max_wait),
        "--quiet-threshold",
        str(a.quiet_threshold),
        *auth,
        *extra,
        *a.regbench_arg,
    ]
    before = server.rss.reset()
    t0 = time.monotonic()
    proc = subprocess.run(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        timeout=a.max_seconds + 120,
        check=False,
    )
    seconds = time.monotonic() - t0
    if not out.exists():
        raise RuntimeError(f"regbench against {server.name} wrote nothing: {proc.stderr[-2000:]}")
    doc = json.loads(out.read_text())
    doc["rss_mib"] = {"before": before, "peak": server.rss.peak, "after": tree_rss_mib(server.proc.pid)}
    doc["disk_before"] = disk
    log(
        f"  {server.name}: {seconds:.0f} s, rc {proc.returncode}, RSS {doc['rss_mib']}, "
        f"disk before {disk}, errors {doc['errors']}"
    )
    return doc


def lower_is_better(key: str) -> bool:
    return key.endswith("_ms") or key.endswith(".s")


def summarize(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """Per metric: the per-round values of each side, their medians and the ratio of medians."""
    keys: list[str] = []
    for r in rounds:
        for side in ("reference", "moorage"):
            for k in r[side]["summary"]:
                if k not in keys:
                    keys.append(k)
    table = {}
    for k in keys:
        row: dict = {}
        for side in ("reference", "moorage"):
            vals = [r[side]["summary"].get(k, {}).get("median") for r in rounds]
            vals = [v for v in vals if isinstance(v, int | float)]
            row[side] = vals
            row[f"{side}_median"] = round(statistics.median(vals), 2) if vals else None
            row[f"{side}_valid"] = all(r[side]["summary"].get(k, {}).get("valid", True) for r in rounds)
        ref, moo = row["reference_median"], row["moorage_median"]
        if ref and moo:
            row["ratio"] = round(ref / moo if lower_is_better(k) else moo / ref, 2)
        else:
            row["ratio"] = None
        unit = next(
            (
                r[s]["summary"][k].get("unit")
                for r in rounds
                for s in ("moorage", "reference")
                if k in r[s]["summary"]
            ),
            "",
        )
        row["unit"] = unit
        if k in TARGETS:
            row["target"] = TARGETS[k][1]
            row["meets_target"] = row["ratio"] is not None and row["ratio"] >= TARGETS[k][1]
        table[k] = row
    return table


def markdown(meta: dict, table: dict[str, dict], memcheck: dict | None) -> str:
    lines = [
        f"# regbench: Moorage vs reference ({meta['label']})",
        "",
        f"- date: {meta['date']}; host: {meta['cpus']} CPUs; rounds: {meta['reps']} (interleaved A=reference, B=Moorage)",
        f"- reference: {meta['reference']}",
        f"- Moorage: `--server {meta['server']} --workers {meta['workers']}`, durable writes "
        f"{'on' if meta['durable'] else 'OFF'}, scan on push {'on' if meta.get('scan_on_push') else 'off'}, "
        "SQLite; Moorage with Docker token auth (regbench fetches tokens "
        "outside the timed windows), the reference anonymous",
        f"- command: `{meta['command']}`",
        "- ratio = Moorage / reference of the medians over rounds (latencies: reference / Moorage), so > 1 is "
        "better for Moorage",
        "",
        "| metric | unit | reference | Moorage | ratio | target |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    ordered = [k for k in TARGETS if k in table] + [k for k in table if k not in TARGETS]
    for k in ordered:
        row = table[k]
        name = f"**{TARGETS[k][0]}** `{k}`" if k in TARGETS else f"`{k}`"
        target = ""
        if "target" in row:
            target = f">= {row['target']}x {'ok' if row['meets_target'] else 'MISSED'}"
        flags = "" if row["reference_valid"] and row["moorage_valid"] else " (invalid)"
        lines.append(
            f"| {name} | {row['unit']} | {row['reference_median']} | {row['moorage_median']} | "
            f"{row['ratio']}{flags} | {target} |"
        )
    if meta.get("rss"):
        lines += [
            "",
            "Server RSS (MiB, whole process tree) during the rounds: "
            + "; ".join(f"{s}: start {v['start']}, peak {v['peak']}" for s, v in meta["rss"].items()),
        ]
    if memcheck:
        lines += [
            "",
            "Memory while pushing then pulling one 1 GiB blob (RSS MiB of the server's process tree):",
            "",
            "| server | before | peak | after |",
            "| --- | ---: | ---: | ---: |",
        ]
        for side, v in memcheck.items():
            lines.append(f"| {side} | {v['before']} | {v['peak']} | {v['after']} |")
    lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--label", default="run", help="name of the result files")
    p.add_argument("--reps", type=int, default=3, help="interleaved rounds (regbench --reps 1 each)")
    p.add_argument("--only", default="abcd", help="regbench phases (subset of abcdef)")
    p.add_argument("--server", default="uvicorn", choices=("uvicorn", "granian"))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--no-durable", dest="durable", action="store_false", help="Moorage without fsync")
    p.add_argument(
        "--sqlite-synchronous",
        choices=["normal", "full"],
        default="normal",
        help="Moorage's SQLite synchronous level (full: a WAL fsync at every commit)",
    )
    p.add_argument(
        "--scan-on-push",
        action="store_true",
        help="keep Moorage's scan on push on (default off: the reference does not scan)",
    )
    p.add_argument("--engines", default="raw", help="regbench --engines (raw, or raw,httpx)")
    p.add_argument("--duration", type=float, default=4.0, help="regbench --duration (phases c, d)")
    p.add_argument("--max-seconds", type=int, default=900, help="bound of each regbench call")
    p.add_argument("--quiet-max-wait", type=float, default=10)
    p.add_argument(
        "--quiet-threshold",
        type=float,
        default=30,
        help="regbench --quiet-threshold; -1: no waiting for quiet, no re-runs (rely on interleaving)",
    )
    p.add_argument("--memcheck", action="store_true", help="also push + pull a 1 GiB blob and record RSS")
    p.add_argument("--no-reference", action="store_true", help="Moorage only (profiling runs)")
    p.add_argument(
        "--sync-between",
        action="store_true",
        help="sync before each side's round (untimed), so neither pays for the other's dirty pages",
    )
    p.add_argument(
        "--regbench-arg",
        action="append",
        default=[],
        help="extra argument passed to regbench (repeat; use --regbench-arg=--rps-conc=16)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument(
        "--src",
        type=Path,
        default=REPO / "src",
        help="Moorage sources to run (e.g. a patched copy, to measure a proposal)",
    )
    return p.parse_args(argv)


def write_results(
    a: argparse.Namespace,
    rounds: list[dict],
    memcheck: dict,
    rss_start: dict,
    ref_version: str,
    argv: list[str] | None,
    servers: list[str],
) -> str:
    date = dt.datetime.now().strftime("%Y-%m-%d")
    table = summarize(rounds) if rounds else {}
    meta = {
        "label": a.label,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "reps": len(rounds),
        "only": a.only,
        "server": a.server,
        "workers": a.workers,
        "durable": a.durable,
        "sqlite_synchronous": a.sqlite_synchronous,
        "scan_on_push": a.scan_on_push,
        "reference": ref_version,
        "command": " ".join(["python3 bench/run_regbench.py", *(argv or sys.argv[1:])]),
        "rss": {
            n: {
                "start": rss_start.get(n),
                "peak": max((r[n].get("rss_mib", {}).get("peak", 0) for r in rounds), default=None),
            }
            for n in servers
        }
        if rounds
        else {},
    }
    stem = RESULTS / f"{date}-{a.label}"
    stem.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "table": table, "memcheck": memcheck, "rounds": rounds}, indent=1)
    )
    md = markdown(meta, table, memcheck)
    stem.with_suffix(".md").write_text(md)
    return md


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    # A SIGTERM (e.g. from `timeout`) still stops the servers: it unwinds through ``finally``.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not REGBENCH.exists():
        sys.exit(f"regbench not found at {REGBENCH}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="moorage-bench-"))
    servers: dict[str, Server] = {}
    rounds: list[dict[str, dict]] = []
    memcheck: dict[str, dict] = {}
    rss_start: dict[str, float] = {}
    ref_version = subprocess.run(
        [REFERENCE_BIN, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    md = ""
    try:
        if not a.no_reference:
            servers["reference"] = start_reference(workdir)
        servers["moorage"] = start_moorage(workdir, a)
        rss_start = {n: tree_rss_mib(s.proc.pid) for n, s in servers.items()}
        for i in range(a.reps):
            log(f"round {i + 1}/{a.reps}, phases {a.only}")
            rnd: dict[str, dict] = {}
            for name, srv in servers.items():  # reference first: A, B, A, B
                rnd[name] = regbench(srv, workdir / f"r{i}-{name}.json", a, ["--only", a.only])
            if a.no_reference:
                rnd["reference"] = {"summary": {}}
            rounds.append(rnd)
            # results so far, so that a run cut short still leaves its rounds
            md = write_results(a, rounds, memcheck, rss_start, ref_version, argv, list(servers))
        if a.memcheck:
            log("memcheck: 1 GiB blob, push then pull (1 and 8 streams)")
            for name, srv in servers.items():
                doc = regbench(
                    srv,
                    workdir / f"mem-{name}.json",
                    a,
                    ["--only", "b", "--big-mib", "1024", "--range-count", "1"],
                )
                memcheck[name] = {
                    **doc["rss_mib"],
                    "pull_MBps": doc["summary"].get("b.pull.single_1024MiB.MBps", {}).get("median"),
                    "errors": doc["errors"],
                }
            md = write_results(a, rounds, memcheck, rss_start, ref_version, argv, list(servers))
    finally:
        for srv in servers.values():
            srv.stop()
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir}")
    print(md)
    log(f"wrote {RESULTS}/{dt.datetime.now().strftime('%Y-%m-%d')}-{a.label}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
