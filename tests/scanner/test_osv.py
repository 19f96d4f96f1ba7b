"""OSV records: validation (file and field named) and the readers (directory, zip, tar.gz, json)."""

from __future__ import annotations

import copy
import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import SHARED

from moorage.scanner.osv import (
    ArchiveError,
    InvalidRecord,
    Vulnerability,
    count_files,
    parse_record,
    read_records,
)

OSV = SHARED / "testdata" / "osv"

RECORD: dict[str, Any] = {
    "schema_version": "1.6.0",
    "id": "TEST-2024-1",
    "modified": "2024-02-01T10:00:00Z",
    "published": "2024-01-01T00:00:00Z",
    "aliases": ["CVE-2024-0001"],
    "summary": "a test",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "demo", "purl": "pkg:pypi/demo"},
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2"}]},
                {
                    "type": "GIT",
                    "repo": "https://example.org/demo",
                    "events": [{"introduced": "0"}, {"fixed": "a" * 40}],
                },
            ],
            "versions": ["1.0", "1.1"],
            "ecosystem_specific": {"x": 1},
        }
    ],
    "references": [{"type": "WEB", "url": "https://example.org/a"}],
    "database_specific": {"severity": "HIGH"},
}


def test_a_valid_record() -> None:
    vuln = parse_record(RECORD, "t.json")
    assert vuln.id == "TEST-2024-1"
    assert vuln.modified.isoformat() == "2024-02-01T10:00:00+00:00"
    assert vuln.aliases == ("CVE-2024-0001",)
    entry = vuln.affected[0]
    assert entry.package is not None
    assert entry.package.purl == "pkg:pypi/demo"
    assert [(e.kind, e.value) for e in entry.ranges[0].events] == [("introduced", "0"), ("fixed", "1.2")]
    assert entry.versions == ("1.0", "1.1")
    assert vuln.packages == {("PyPI", "demo")}
    assert vuln.withdrawn is None


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(RECORD)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["id"], KeyError, "id"),
        (["modified"], "yesterday", "modified"),
        (["modified"], KeyError, "modified"),
        (["aliases"], "CVE-1", "aliases"),
        (["severity", 0, "type"], "CVSS_V9", "severity[0].type"),
        (["affected", 0, "package", "name"], KeyError, "affected[0].package.name"),
        (["affected", 0, "ranges", 0, "type"], "SOMETIMES", "affected[0].ranges[0].type"),
        (["affected", 0, "ranges", 0, "events"], [], "affected[0].ranges[0].events"),
        (
            ["affected", 0, "ranges", 0, "events", 1],
            {"fixed": "1", "introduced": "0"},
            "affected[0].ranges[0].events[1]",
        ),
        (
            ["affected", 0, "ranges", 0, "events", 1],
            {"broken": "1"},
            "affected[0].ranges[0].events[1].broken",
        ),
        (
            ["affected", 0, "ranges", 1, "events", 1],
            {"fixed": "cb35df940a"},
            "affected[0].ranges[1].events[1].fixed",
        ),
        (["affected", 0, "ranges", 1, "repo"], KeyError, "affected[0].ranges[1].repo"),
        (["affected", 0, "versions"], [1, 2], "affected[0].versions[0]"),
        (["references", 0, "url"], KeyError, "references[0].url"),
        (["withdrawn"], "not a date", "withdrawn"),
    ],
)
def test_invalid_records_name_the_field(path: list[Any], value: Any, field: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        parse_record(_broken(path, value), "bad.json")
    assert info.value.source == "bad.json"
    assert info.value.path == field
    assert str(info.value).startswith(f"bad.json: {field}: ")


def test_not_an_object() -> None:
    with pytest.raises(InvalidRecord, match="JSON object"):
        parse_record([1], "list.json")


def _records(path: Path) -> tuple[list[Vulnerability], list[InvalidRecord]]:
    good: list[Vulnerability] = []
    bad: list[InvalidRecord] = []
    for item in read_records(path):
        (bad if isinstance(item, InvalidRecord) else good).append(item)  # type: ignore[arg-type]
    return good, bad


def _write_sources(tmp_path: Path) -> dict[str, bytes]:
    files = {
        "TEST-2024-1.json": json.dumps(RECORD).encode(),
        "TEST-2024-2.json": json.dumps({**RECORD, "id": "TEST-2024-2"}).encode(),
        "broken.json": b"{not json",
        "no-id.json": json.dumps({k: v for k, v in RECORD.items() if k != "id"}).encode(),
    }
    return files


def test_readers_agree(tmp_path: Path) -> None:
    files = _write_sources(tmp_path)
    directory = tmp_path / "dir" / "nested"
    directory.mkdir(parents=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    (directory / "README.md").write_text("ignored")
    with zipfile.ZipFile(tmp_path / "all.zip", "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    with tarfile.open(tmp_path / "all.tar.gz", "w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(f"osv/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    for source in (tmp_path / "dir", tmp_path / "all.zip", tmp_path / "all.tar.gz"):
        good, bad = _records(source)
        assert sorted(v.id for v in good) == ["TEST-2024-1", "TEST-2024-2"], source
        assert sorted((Path(b.source).name, b.path) for b in bad) == [
            ("broken.json", ""),
            ("no-id.json", "id"),
        ]
    good, bad = _records(directory / "TEST-2024-1.json")
    assert [v.id for v in good] == ["TEST-2024-1"]
    assert not bad
    assert count_files(tmp_path / "dir") == 4
    assert count_files(tmp_path / "all.zip") == 4


def test_unreadable_archives_raise(tmp_path: Path) -> None:
    (tmp_path / "corrupt.zip").write_bytes(b"PK\x03\x04 this is no zip")
    (tmp_path / "corrupt.tar.gz").write_bytes(b"\x1f\x8b\x08 truncated")
    (tmp_path / "x.txt").write_text("x")
    for name in ("corrupt.zip", "corrupt.tar.gz", "x.txt", "missing.json"):
        with pytest.raises(ArchiveError):
            list(read_records(tmp_path / name))


def test_the_shared_data_reads_with_seven_invalid_pypi_records() -> None:
    good, bad = _records(OSV)
    assert len(good) == 23412
    pypi = [b for b in bad if b.source.startswith("PyPI/")]
    assert len(pypi) == 7
    assert {b.source for b in pypi} >= {
        "PyPI/all.zip/PYSEC-2019-155.json",
        "PyPI/all.zip/PYSEC-2021-436.json",
    }
    assert all(b.path.endswith(".fixed") and "GIT range" in b.message for b in pypi)
    # The only other file reported is the data set's own manifest, which is no OSV record.
    assert [b.source for b in bad if not b.source.startswith("PyPI/")] == ["MANIFEST.json"]
