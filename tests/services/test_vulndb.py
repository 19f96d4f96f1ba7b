"""The vulnerability database service: imports (atomic, idempotent, newest wins), status, matching."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import SHARED, make_settings

from moorage.app import MoorageApp
from moorage.scanner.matching import Component
from moorage.services.container import Services, build_services
from moorage.services.errors import InvalidInput

OSV = SHARED / "testdata" / "osv"

RECORD: dict[str, Any] = {
    "id": "TEST-2024-1",
    "modified": "2024-02-01T10:00:00Z",
    "summary": "first summary",
    "affected": [
        {
            "package": {"ecosystem": "npm", "name": "left-pad"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.3.0"}]}],
        }
    ],
    "database_specific": {"severity": "HIGH"},
}
LEFT_PAD = Component("left-pad", "1.2.0", "npm")


def _write(directory: Path, *records: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for record in records:
        (directory / f"{record['id']}.json").write_text(json.dumps(record))
    return directory


def _variant(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(RECORD)
    record.update(changes)
    return record


# The whole shared data set, imported once on SQLite -----------------------------------------


@pytest.fixture(scope="module")
def full_import(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any, float]]:
    data_dir = tmp_path_factory.mktemp("vulndb") / "data"

    async def main() -> tuple[Any, float]:
        services = build_services(make_settings(data_dir))
        try:
            await services.prepare()
            started = time.monotonic()
            report = await services.vulndb.import_path(OSV)
            return report, time.monotonic() - started
        finally:
            await services.close()

    report, seconds = asyncio.run(main())
    return data_dir, report, seconds


@pytest.fixture
async def full(full_import: tuple[Path, Any, float]) -> AsyncIterator[Services]:
    services = build_services(make_settings(full_import[0]))
    try:
        yield services
    finally:
        await services.close()


def test_full_import_counts(full_import: tuple[Path, Any, float]) -> None:
    _, report, seconds = full_import
    print(f"\nfull import of the shared OSV data (SQLite): {seconds:.1f} s")
    assert report.records == 23412
    assert report.ecosystems == {
        "AlmaLinux": 5637, "Alpine": 2442, "Debian": 8376, "Go": 4291, "PyPI": 2654, "Ubuntu": 9, "npm": 3,
    }  # fmt: skip
    assert report.withdrawn == 30
    # DSA-3029-1 is both in Debian and in Debian-upstream-samples (with a newer modified).
    assert (report.added, report.updated) == (23411, 1)
    pypi = [i for i in report.invalid if i.source.startswith("PyPI/")]
    assert len(pypi) == 7
    assert any(
        i.source == "PyPI/all.zip/PYSEC-2019-155.json" and i.field == "affected[0].ranges[0].events[1].fixed"
        for i in pypi
    )


async def test_full_status_and_matches(full: Services, full_import: tuple[Path, Any, float]) -> None:
    status = await full.vulndb.status()
    assert status.version == full_import[1].version
    assert status.version.startswith("sha256:")
    assert status.records == 23412 - 30 - 1
    assert status.withdrawn == 30
    assert status.ecosystems["Debian:10"] > 900
    assert status.ecosystems["npm"] == 3
    findings = await full.vulndb.match(
        [
            Component("Django", "3.2.0", "PyPI"),
            Component("stdlib", "go1.20", "Go"),
            Component("libssl1.1", "1.1.1d-0+deb10u3", "Debian:10", source_name="openssl"),
            Component("libcrypto1.1", "1.1.1d-r2", "Alpine:v3.11", source_name="openssl"),
            Component("lodash", "4.17.15", "npm"),
        ]
    )
    by_package: dict[str, set[str]] = {}
    for f in findings:
        by_package.setdefault(f.package, set()).add(f.id)
    assert "PYSEC-2021-7" in by_package["Django"]
    assert "GO-2023-1568" in by_package["stdlib"]
    assert "DSA-4807-1" in by_package["libssl1.1"]
    assert "ALPINE-CVE-2019-1551" in by_package["libcrypto1.1"]
    assert by_package["lodash"] == {"GHSA-29mw-wpgm-hmr9", "GHSA-35jh-r3h4-6jhm", "GHSA-p6mc-m468-83gw"}


async def test_full_withdrawn_real_record_is_not_matched(full: Services) -> None:
    # UBUNTU-CVE-2020-36325 (jansson) is withdrawn in the shared data.
    component = Component("jansson", "2.5-2", "Ubuntu:Pro:14.04:LTS")
    assert not [f for f in await full.vulndb.match([component]) if f.id == "UBUNTU-CVE-2020-36325"]


async def test_full_reimport_is_idempotent(full: Services, full_import: tuple[Path, Any, float]) -> None:
    report = await full.vulndb.import_path(OSV / "npm" / "all.zip")
    assert (report.added, report.updated, report.unchanged) == (0, 0, 3)
    assert report.version == full_import[1].version


# Behaviour on both databases, with small data ---------------------------------------------


async def test_import_match_replace_and_withdraw(app: MoorageApp, tmp_path: Path) -> None:
    vulndb = app.services.vulndb
    assert (await vulndb.status()).version is None
    first = await vulndb.import_path(_write(tmp_path / "v1", RECORD))
    assert (first.added, first.ecosystems) == (1, {"npm": 1})
    (finding,) = await vulndb.match([LEFT_PAD])
    assert (finding.id, finding.severity, finding.fixed_versions) == ("TEST-2024-1", "high", ("1.3.0",))
    assert not await vulndb.match([Component("left-pad", "1.3.0", "npm")])

    again = await vulndb.import_path(_write(tmp_path / "v1", RECORD))
    assert (again.added, again.updated, again.unchanged, again.version) == (0, 0, 1, first.version)

    older = await vulndb.import_path(
        _write(tmp_path / "old", _variant(modified="2023-01-01T00:00:00Z", summary="old"))
    )
    assert older.unchanged == 1
    assert (await vulndb.match([LEFT_PAD]))[0].summary == "first summary"

    newer = await vulndb.import_path(
        _write(tmp_path / "v2", _variant(modified="2024-03-01T00:00:00Z", summary="second"))
    )
    assert newer.updated == 1
    assert newer.version != first.version
    assert (await vulndb.match([LEFT_PAD]))[0].summary == "second"

    withdrawn = _variant(modified="2024-04-01T00:00:00Z", withdrawn="2024-04-01T00:00:00Z")
    await vulndb.import_path(_write(tmp_path / "v3", withdrawn))
    assert await vulndb.match([LEFT_PAD]) == []
    status = await vulndb.status()
    assert (status.records, status.withdrawn) == (0, 1)


async def test_a_failed_import_leaves_the_previous_database(app: MoorageApp, tmp_path: Path) -> None:
    vulndb = app.services.vulndb
    before = await vulndb.import_path(OSV / "npm" / "all.zip")
    # A directory whose second file is a corrupt zip: the records read before it must not stay.
    bad = _write(tmp_path / "bad", _variant(id="AAA-1"))
    (bad / "zz.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InvalidInput, match=r"zz\.zip"):
        await vulndb.import_path(bad)
    status = await vulndb.status()
    assert status.version == before.version
    assert status.records == 3
    assert not await vulndb.match([LEFT_PAD])


async def test_invalid_records_are_reported_and_the_rest_imported(app: MoorageApp, tmp_path: Path) -> None:
    broken = _variant(id="BAD-1")
    broken["affected"][0]["ranges"] = [
        {
            "type": "GIT",
            "repo": "https://example.org/r",
            "events": [{"introduced": "0"}, {"fixed": "cb35df940a"}],
        }
    ]
    directory = _write(tmp_path / "mixed", RECORD, broken)
    (directory / "junk.json").write_text("{")
    with zipfile.ZipFile(tmp_path / "mixed.zip", "w") as archive:
        for item in sorted(directory.iterdir()):
            archive.write(item, item.name)
    for source in (directory, tmp_path / "mixed.zip"):
        report = await app.services.vulndb.import_path(source)
        assert report.records == 1
        assert sorted((Path(i.source).name, i.field) for i in report.invalid) == [
            ("BAD-1.json", "affected[0].ranges[0].events[1].fixed"),
            ("junk.json", ""),
        ]
    assert [f.id for f in await app.services.vulndb.match([LEFT_PAD])] == ["TEST-2024-1"]


async def test_a_real_subset_on_both_databases(app: MoorageApp) -> None:
    vulndb = app.services.vulndb
    started = time.monotonic()
    report = await vulndb.import_path(OSV / "Alpine" / "all.zip")
    print(f"\nAlpine ({report.records} records) imported in {time.monotonic() - started:.1f} s")
    assert report.ecosystems == {"Alpine": 2442}
    ids = {
        f.id
        for f in await vulndb.match(
            [Component("libcrypto1.1", "1.1.1d-r2", "Alpine:v3.11", source_name="openssl")]
        )
    }
    assert "ALPINE-CVE-2019-1551" in ids
    assert "ALPINE-CVE-2019-1547" not in ids
    again = await vulndb.import_path(OSV / "Alpine" / "all.zip")
    assert (again.added, again.unchanged, again.version) == (0, 2442, report.version)
