"""Go build info: a real binary built here with `go build` (inline format) and a pre-1.18 pointer-format ELF."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest
from layerkit import file, inventory

from moorage.scanner.inventory.golang import BUILDINFO_MAGIC, parse_go_binary, read_buildinfo
from moorage.scanner.inventory.models import ParseError
from moorage.scanner.layers import Limits

GREET_GO = 'package greet\n\nfunc Hello() string { return "hello" }\n'
MAIN_GO = 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/greet"\n)\n\nfunc main() { fmt.Println(greet.Hello()) }\n'


def module_proxy(root: Path, module: str, version: str, files: dict[str, str]) -> None:
    """A GOPROXY=file:// tree serving one module version, so the build needs no network."""
    base = root / module / "@v"
    base.mkdir(parents=True)
    (base / "list").write_text(version + "\n")
    (base / f"{version}.info").write_text(f'{{"Version":"{version}","Time":"2023-01-02T03:04:05Z"}}')
    (base / f"{version}.mod").write_text(files["go.mod"])
    with zipfile.ZipFile(base / f"{version}.zip", "w") as archive:
        for name, text in files.items():
            archive.writestr(f"{module}@{version}/{name}", text)


@pytest.fixture(scope="module")
def go_binary(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    go = shutil.which("go")
    if go is None:
        pytest.skip("`go` is not on PATH: cannot build a real Go binary")
    root = tmp_path_factory.mktemp("go")
    module_proxy(
        root / "proxy",
        "example.com/greet",
        "v1.2.3",
        {"go.mod": "module example.com/greet\n\ngo 1.17\n", "greet.go": GREET_GO},
    )
    src = root / "src"
    src.mkdir()
    (src / "go.mod").write_text("module example.com/hello\n\ngo 1.19\n\nrequire example.com/greet v1.2.3\n")
    (src / "main.go").write_text(MAIN_GO)
    env = {
        **os.environ,
        "GOPROXY": f"file://{root / 'proxy'}",
        "GOSUMDB": "off",
        "GOFLAGS": "-mod=mod",
        "GOPATH": str(root / "gopath"),
        "GOCACHE": str(root / "cache"),
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
    }
    subprocess.run(
        [go, "build", "-o", str(root / "hello"), "."],
        cwd=src,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    version = subprocess.run(
        [go, "env", "GOVERSION"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    return (root / "hello").read_bytes(), version


def test_real_go_binary(go_binary: tuple[bytes, str]) -> None:
    data, go_version = go_binary
    inv = inventory([file("usr/local/bin/hello", data, mode=0o755)], digest="sha256:go", limits=Limits())
    assert [(c.name, c.version, c.ecosystem, c.purl, c.path, c.layer) for c in inv.components] == [
        ("example.com/greet", "v1.2.3", "Go", "pkg:golang/example.com/greet@v1.2.3", "usr/local/bin/hello", "sha256:go"),
        ("stdlib", go_version.removeprefix("go"), "Go", f"pkg:golang/stdlib@{go_version.removeprefix('go')}",
         "usr/local/bin/hello", "sha256:go"),
    ]  # fmt: skip
    assert inv.warnings == []
    info = read_buildinfo(io.BytesIO(data))
    assert info is not None
    assert (info.main_path, info.main_version) == ("example.com/hello", "(devel)")


def test_large_elf_files_are_skipped_with_a_warning(go_binary: tuple[bytes, str]) -> None:
    data, _ = go_binary
    inv = inventory([file("usr/bin/hello", data, mode=0o755)], limits=Limits(max_file_read=1000))
    assert inv.components == []
    assert inv.warnings == [
        f"usr/bin/hello: ELF file of {len(data)} bytes is over the 1000 byte read limit; not checked for Go build info"
    ]


SENTINEL_START = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6"
SENTINEL_END = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2"
MODINFO = (
    "path\tgithub.com/acme/tool\n"
    "mod\tgithub.com/acme/tool\tv0.4.0\th1:abc=\n"
    "dep\tgolang.org/x/text\tv0.3.5\th1:def=\n"
    "dep\tgithub.com/old/lib\tv1.0.0\n"
    "=>\tgithub.com/fork/lib\tv1.0.1\th1:ghi=\n"
)


def pointer_format_elf(go_version: str, modinfo: str) -> bytes:
    """A minimal 64-bit little-endian ELF with one PT_LOAD and a Go 1.17-style (pointer) build info."""
    base = 0x400000
    body = bytearray(b"\x00" * 0x200)  # ELF header + program header + padding
    body += b"\x00" * (-len(body) % 16)
    info_offset = len(body)
    body += b"\x00" * 32
    version_bytes = go_version.encode()
    mod_bytes = SENTINEL_START + modinfo.encode() + SENTINEL_END
    strings_offset = len(body)
    body += version_bytes + mod_bytes
    headers_offset = len(body) + (-len(body) % 8)
    body += b"\x00" * (headers_offset - len(body))
    body += struct.pack("<QQ", base + strings_offset, len(version_bytes))
    body += struct.pack("<QQ", base + strings_offset + len(version_bytes), len(mod_bytes))
    header = (
        BUILDINFO_MAGIC
        + bytes([8, 0])
        + struct.pack("<QQ", base + headers_offset, base + headers_offset + 16)
    )
    body[info_offset : info_offset + 32] = header
    elf = b"\x7fELF" + bytes([2, 1, 1]) + b"\x00" * 9
    elf += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, base, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    elf += struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, len(body), len(body), 0x1000)
    body[: len(elf)] = elf
    return bytes(body)


def test_pointer_format_build_info() -> None:
    inv = inventory([file("usr/bin/tool", pointer_format_elf("go1.16.15", MODINFO), mode=0o755)])
    assert [(c.name, c.version, c.purl) for c in inv.components] == [
        ("github.com/acme/tool", "v0.4.0", "pkg:golang/github.com/acme/tool@v0.4.0"),
        ("golang.org/x/text", "v0.3.5", "pkg:golang/golang.org/x/text@v0.3.5"),
        ("github.com/fork/lib", "v1.0.1", "pkg:golang/github.com/fork/lib@v1.0.1"),
        ("stdlib", "1.16.15", "pkg:golang/stdlib@1.16.15"),
    ]
    assert inv.warnings == []


def test_non_go_elf_and_non_elf_executables_yield_nothing() -> None:
    plain_elf = pointer_format_elf("go1.16", MODINFO).replace(BUILDINFO_MAGIC, b"\x00" * len(BUILDINFO_MAGIC))
    inv = inventory(
        [file("usr/bin/c-tool", plain_elf, mode=0o755), file("usr/bin/script", "#!/bin/sh\n", mode=0o755)]
    )
    assert inv.components == []
    assert inv.warnings == []
    assert inv.written_paths == ["usr/bin/c-tool", "usr/bin/script"]


def test_corrupt_build_info_is_a_warning() -> None:
    data = bytearray(pointer_format_elf("go1.16", MODINFO))
    offset = data.find(BUILDINFO_MAGIC)
    data[offset + 16 : offset + 24] = struct.pack("<Q", 0xDEAD0000)  # version pointer outside every segment
    with pytest.raises(ParseError, match="in no loaded segment"):
        parse_go_binary(io.BytesIO(bytes(data)), "x", "sha256:l")
    inv = inventory([file("usr/bin/tool", bytes(data), mode=0o755)])
    assert inv.warnings == [
        "usr/bin/tool: unparseable Go build info: build info address 0xdead0000 is in no loaded segment; skipped"
    ]
