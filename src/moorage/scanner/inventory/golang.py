"""Go binaries: the module build info embedded in ELF executables (``go version -m``).

Both formats are read: the inline one of Go 1.18+ (flags bit 2: two varint-prefixed strings right
after the 32-byte header) and the older pointer one (two pointers to Go string headers, resolved
through the ELF program headers). The file is given as a seekable stream so large binaries are never
held in memory whole.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from .models import Component, ParseError, ParseResult, make_purl

__all__ = ["BUILDINFO_MAGIC", "ELF_MAGIC", "GoBuildInfo", "parse_go_binary", "read_buildinfo"]

ELF_MAGIC = b"\x7fELF"
BUILDINFO_MAGIC = b"\xff Go buildinf:"
_HEADER_SIZE = 32
_ALIGN = 16
_CHUNK = 1 << 20
_MAX_STRING = 16 << 20
_MOD_SENTINEL = 16


@dataclass(frozen=True)
class GoBuildInfo:
    go_version: str
    main_path: str
    main_version: str
    deps: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Elf:
    little: bool
    is64: bool
    loads: tuple[tuple[int, int, int], ...]  # (vaddr, offset, filesz)
    buildinfo_offset: int | None  # file offset of the .go.buildinfo section, when there is one


def _parse_elf(f: BinaryIO) -> _Elf:
    f.seek(0)
    ident = f.read(64)
    if len(ident) < 52 or not ident.startswith(ELF_MAGIC):
        raise ParseError("not an ELF file")
    is64 = ident[4] == 2
    little = ident[5] == 1
    e = "<" if little else ">"
    if is64:
        phoff, shoff = struct.unpack(e + "QQ", ident[32:48])
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack(e + "HHHHH", ident[54:64])
    else:
        phoff, shoff = struct.unpack(e + "II", ident[28:36])
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack(e + "HHHHH", ident[42:52])
    loads: list[tuple[int, int, int]] = []
    if phoff and 0 < phnum < 4096 and phentsize >= (56 if is64 else 32):
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        for i in range(len(table) // phentsize):
            entry = table[i * phentsize : (i + 1) * phentsize]
            if is64:
                p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack(e + "IIQQQQ", entry[:40])
            else:
                p_type, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack(e + "IIIII", entry[:20])
            if p_type == 1:  # PT_LOAD
                loads.append((p_vaddr, p_offset, p_filesz))
    buildinfo_offset = None
    if shoff and 0 < shnum < 65536 and shstrndx < shnum and shentsize >= (64 if is64 else 40):
        f.seek(shoff)
        table = f.read(shentsize * shnum)
        sections = []
        for i in range(len(table) // shentsize):
            entry = table[i * shentsize : (i + 1) * shentsize]
            if is64:
                sh_name, _t, _fl, _addr, sh_offset, sh_size = struct.unpack(e + "IIQQQQ", entry[:40])
            else:
                sh_name, _t, _fl, _addr, sh_offset, sh_size = struct.unpack(e + "IIIIII", entry[:24])
            sections.append((sh_name, sh_offset, sh_size))
        if shstrndx < len(sections):
            _n, str_off, str_size = sections[shstrndx]
            f.seek(str_off)
            names = f.read(min(str_size, 1 << 20))
            for name_off, sec_off, _size in sections:
                end = names.find(b"\x00", name_off)
                if end > 0 and names[name_off:end] == b".go.buildinfo":
                    buildinfo_offset = sec_off
    return _Elf(little=little, is64=is64, loads=tuple(loads), buildinfo_offset=buildinfo_offset)


def _find_magic(f: BinaryIO) -> int | None:
    """File offset of the first 16-byte-aligned build info magic, scanning in bounded chunks."""
    position = 0
    overlap = len(BUILDINFO_MAGIC) - 1
    carry = b""
    f.seek(0)
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            return None
        data = carry + chunk
        base = position - len(carry)
        start = 0
        while True:
            i = data.find(BUILDINFO_MAGIC, start)
            if i < 0:
                break
            if (base + i) % _ALIGN == 0:
                return base + i
            start = i + 1
        carry = data[-overlap:]
        position += len(chunk)


def _varint(f: BinaryIO) -> int:
    value, shift = 0, 0
    for _ in range(10):
        byte = f.read(1)
        if not byte:
            raise ParseError("build info ends inside a length")
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
    raise ParseError("build info length too long")


def _read_exact(f: BinaryIO, offset: int, size: int) -> bytes:
    if size < 0 or size > _MAX_STRING:
        raise ParseError(f"build info string of {size} bytes out of range")
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ParseError("build info points past the end of the file")
    return data


def _vaddr_to_offset(elf: _Elf, address: int) -> int:
    for vaddr, offset, filesz in elf.loads:
        if vaddr <= address < vaddr + filesz:
            return offset + (address - vaddr)
    raise ParseError(f"build info address {address:#x} is in no loaded segment")


def _pointer_string(f: BinaryIO, elf: _Elf, address: int, ptr_size: int, little: bool) -> str:
    e = "<" if little else ">"
    word = "Q" if ptr_size == 8 else "I"
    header = _read_exact(f, _vaddr_to_offset(elf, address), 2 * ptr_size)
    data_address, length = struct.unpack(e + word + word, header)
    if length == 0:
        return ""
    return _read_exact(f, _vaddr_to_offset(elf, data_address), length).decode("utf-8", "replace")


def read_buildinfo(f: BinaryIO) -> GoBuildInfo | None:
    """The build info of an ELF Go binary, ``None`` for an ELF file that is not one."""
    elf = _parse_elf(f)
    offset = elf.buildinfo_offset
    if offset is not None:
        f.seek(offset)
        if f.read(len(BUILDINFO_MAGIC)) != BUILDINFO_MAGIC:
            offset = None
    if offset is None:
        offset = _find_magic(f)
    if offset is None:
        return None
    header = _read_exact(f, offset, _HEADER_SIZE)
    ptr_size, flags = header[14], header[15]
    if flags & 0x2:
        f.seek(offset + _HEADER_SIZE)
        version = f.read(_varint(f))
        size = _varint(f)
        modinfo = _read_exact(f, f.tell(), size)
        go_version = version.decode("utf-8", "replace")
        mod_text = modinfo.decode("utf-8", "replace")
    else:
        if ptr_size not in (4, 8):
            raise ParseError(f"build info pointer size {ptr_size} is not 4 or 8")
        big = bool(flags & 0x1)
        e = ">" if big else "<"
        word = "Q" if ptr_size == 8 else "I"
        version_ptr, mod_ptr = struct.unpack(e + word + word, header[16 : 16 + 2 * ptr_size])
        go_version = _pointer_string(f, elf, version_ptr, ptr_size, not big)
        mod_text = _pointer_string(f, elf, mod_ptr, ptr_size, not big)
    if len(mod_text) >= 2 * _MOD_SENTINEL + 1 and mod_text[-_MOD_SENTINEL - 1] == "\n":
        mod_text = mod_text[_MOD_SENTINEL:-_MOD_SENTINEL]
    return _parse_modinfo(go_version, mod_text)


def _parse_modinfo(go_version: str, text: str) -> GoBuildInfo:
    main_path, main_version = "", ""
    deps: list[tuple[str, str]] = []
    for line in text.splitlines():
        fields = line.split("\t")
        if fields[0] == "mod" and len(fields) >= 3:
            main_path, main_version = fields[1], fields[2]
        elif fields[0] == "dep" and len(fields) >= 3:
            deps.append((fields[1], fields[2]))
        elif fields[0] == "=>" and len(fields) >= 3 and deps and fields[2]:
            # a replacement with a version is what was compiled in; a local directory keeps the original
            deps[-1] = (fields[1], fields[2])
    return GoBuildInfo(
        go_version=go_version, main_path=main_path, main_version=main_version, deps=tuple(deps)
    )


def _component(name: str, version: str, layer: str, path: str) -> Component:
    namespace, _, short = name.rpartition("/")
    return Component(
        name=name,
        version=version,
        ecosystem="Go",
        purl=make_purl("golang", short, version, namespace or None),
        source_name=None,
        layer=layer,
        path=path,
    )


def parse_go_binary(f: BinaryIO, path: str, layer: str) -> ParseResult:
    """Components of a Go binary: the main module (when versioned), its dependencies, and ``stdlib``.

    The toolchain version is reported without its ``go`` prefix (``go1.19.8`` → ``1.19.8``), as OSV's
    ``stdlib`` records use it.
    """
    info = read_buildinfo(f)
    if info is None:
        return ParseResult()
    result = ParseResult()
    if info.main_path and info.main_version and info.main_version != "(devel)":
        result.components.append(_component(info.main_path, info.main_version, layer, path))
    for name, version in info.deps:
        result.components.append(_component(name, version, layer, path))
    if info.go_version:
        version = info.go_version.split()[0]
        version = version.removeprefix("go")
        result.components.append(_component("stdlib", version, layer, path))
    return result
