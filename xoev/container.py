"""xdomea containers as the archives exchange them (x-man, Landesarchiv Thüringen).

Layout: a flat zip named ``{ProzessID}_{Nachrichtenname}.zip``, e.g.
``{ProzessID}_Aussonderung.Anbieteverzeichnis.0501.zip``, holding the message as
``{ProzessID}_Aussonderung.Anbieteverzeichnis.0501.xml`` and, for a 0503, the primary files under
the names the XML's ``Dateiname`` elements give — nothing else.

:func:`write_container` writes that layout, streaming each file in chunks (never a whole file in
memory), atomically (a temporary name in the target directory, then rename), and returns the
SHA-512 and size of each member. :func:`read_container` checks a container without extracting
anything and streams every member once to compute its SHA-512; it returns the message header
(:class:`~xoev.message.MessageInfo`), the XML bytes and a :class:`Member` per primary file, which
can later be opened or extracted (the digest is checked again while extracting).

Refused, each with its own :class:`~xoev.exceptions.ContainerError` naming container, member and
rule (see :mod:`xoev.exceptions`): a file name not of the layout; a zip that is damaged, encrypted,
compressed other than stored/deflated or whose sizes lie; zip bombs (:class:`ContainerLimits`:
total and per-member uncompressed size, compression ratio, member count, XML size — checked on the
declared sizes first and on the bytes actually inflated); ``../``, absolute or non-flat names,
symlinks and other special files; duplicate names (also case-insensitive: they collide when
extracted on Windows or macOS); a missing XML; primary files missing or not referenced by any
``Dateiname``; an XML whose ProzessID, root element or type is not the one the file name gives.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, NamedTuple

from lxml import etree

from .exceptions import (
    ContainerFormatError,
    ContainerMismatchError,
    ContainerNameError,
    DuplicateMemberError,
    MissingMemberError,
    UnreferencedMemberError,
    UnsafeMemberError,
    UnusableInputError,
    ZipBombError,
)
from .message import MessageInfo, inspect_message
from .namespaces import split_tag
from .parsing import ParserConfig, parse_xml
from .registry import SchemaRegistry, default_registry
from .xdomea.v3_0_0 import MESSAGE_TYPES

__all__ = [
    "CHUNK",
    "ContainerLimits",
    "ContainerRead",
    "Member",
    "container_name",
    "parse_container_name",
    "read_container",
    "referenced_files",
    "write_container",
    "xml_member_name",
]

CHUNK = 1 << 20
"""Bytes read or written per step while streaming."""

_ROOTS = frozenset(mt.root for mt in MESSAGE_TYPES)  # the same in 3.0.0 and 3.1.0
_NAME = re.compile(
    r"(?P<pid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"_(?P<root>[A-Za-z]+\.[A-Za-z]+\.(?P<type>\d{4}))\.zip"
)
_XDOMEA_NS = re.compile(r"urn:xoev-de:xdomea:schema:\d+\.\d+\.\d+")
_REGULAR = {0, stat.S_IFREG}


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerLimits:
    """What :func:`read_container` accepts. Sizes in bytes; the ratio is uncompressed /
    compressed size of one member and is checked only for members above ``ratio_min_bytes``
    (small files of repetitive text compress well without being bombs)."""

    max_total_bytes: int = 4 << 30
    max_member_bytes: int = 2 << 30
    max_ratio: float = 100.0
    ratio_min_bytes: int = 1 << 20
    max_members: int = 10_000
    max_xml_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        for name in (
            "max_total_bytes",
            "max_member_bytes",
            "ratio_min_bytes",
            "max_members",
            "max_xml_bytes",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"ContainerLimits.{name} must not be negative")
        if self.max_ratio < 1:
            raise ValueError("ContainerLimits.max_ratio must be at least 1")


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a container: its name, sizes and SHA-512 (hex, computed while streaming)."""

    container: Path
    name: str
    size: int
    compressed_size: int
    sha512: str
    offset: int
    """Offset of the member's local header in the zip file."""

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        """A stream of the member's bytes (inflated while read)."""
        with zipfile.ZipFile(self.container) as zf, zf.open(self.name) as stream:
            yield stream

    def extract_to(self, directory: str | os.PathLike[str]) -> Path:
        """Stream the member to ``directory/name`` (temporary name, then rename); the SHA-512 is
        checked on the way and a different file is removed and refused."""
        target = Path(directory) / self.name
        if target.exists():
            raise FileExistsError(target)
        with self.open() as stream:
            size, digest = _copy(stream, target)
        if digest != self.sha512 or size != self.size:
            target.unlink(missing_ok=True)
            raise ContainerFormatError(
                "member changed since the container was read (SHA-512 differs)",
                rule="integrity",
                source=str(self.container),
                member=self.name,
            )
        return target


class ContainerRead(NamedTuple):
    """What :func:`read_container` returns: header, XML bytes, primary files by name."""

    info: MessageInfo
    xml: bytes
    files: dict[str, Member]


def container_name(prozess_id: str, root: str) -> str:
    """``{ProzessID}_{root}.zip``, e.g. ``…_Aussonderung.Anbieteverzeichnis.0501.zip``."""
    return f"{prozess_id}_{root}.zip"


def xml_member_name(prozess_id: str, root: str) -> str:
    return f"{prozess_id}_{root}.xml"


def parse_container_name(name: str, *, source: str | None = None) -> tuple[str, str, str]:
    """``(ProzessID, root, type code)`` from a container file name, or
    :class:`ContainerNameError`."""
    match = _NAME.fullmatch(name)
    if match is None or match["root"] not in _ROOTS:
        raise ContainerNameError(
            f"file name {name!r} is not {{ProzessID}}_{{Nachrichtenname}}.zip of an xdomea "
            "message (e.g. <uuid>_Aussonderung.Anbieteverzeichnis.0501.zip)",
            rule="name",
            source=source or name,
        )
    return match["pid"], match["root"], match["type"]


# --------------------------------------------------------------------------- shared checks


def _check_member_name(name: str, source: str) -> None:
    if not name or name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise UnsafeMemberError(
            "absolute member name", rule="member:absolute", source=source, member=name
        )
    parts = re.split(r"[/\\]", name)
    if ".." in parts:
        raise UnsafeMemberError(
            "member name climbs out of the container (..)",
            rule="member:traversal",
            source=source,
            member=name,
        )
    if len(parts) > 1:
        raise UnsafeMemberError(
            "member name has a directory part; containers are flat",
            rule="member:not-flat",
            source=source,
            member=name,
        )
    if any(ord(c) < 32 for c in name) or name == ".":
        raise UnsafeMemberError(
            "member name has control characters", rule="member:name", source=source, member=name
        )


def _check_unique(names: list[str], source: str) -> None:
    seen: dict[str, str] = {}
    for name in names:
        key = name.casefold()
        if key in seen:
            raise DuplicateMemberError(
                "member name occurs twice"
                if seen[key] == name
                else f"member name differs from {seen[key]!r} in case only",
                rule="member:duplicate",
                source=source,
                member=name,
            )
        seen[key] = name


def _header(tree: etree._ElementTree, registry: SchemaRegistry) -> tuple[MessageInfo, list[str]]:
    info = inspect_message(tree, registry=registry)
    root = tree.getroot()
    namespace = split_tag(root.tag)[0] or ""
    dateinamen = [
        (el.text or "").strip()
        for parent in root.iter(f"{{{namespace}}}Primaerdokument")
        for el in parent.iterchildren(f"{{{namespace}}}Dateiname")
    ]
    return info, dateinamen


def referenced_files(xml: bytes) -> tuple[str, ...]:
    """The ``Dateiname`` of every primary document an xdomea message names, in document order
    (none for other messages)."""
    tree = parse_xml(xml, config=ParserConfig(max_bytes=max(len(xml), 1)))
    root = tree.getroot()
    namespace = split_tag(root.tag)[0] or ""
    if not _XDOMEA_NS.fullmatch(namespace):
        return ()
    return tuple(
        (el.text or "").strip()
        for parent in root.iter(f"{{{namespace}}}Primaerdokument")
        for el in parent.iterchildren(f"{{{namespace}}}Dateiname")
    )


def _compare_files(expected: list[str], present: set[str], source: str) -> None:
    for name in expected:
        if name not in present:
            raise MissingMemberError(
                "primary file named by a Dateiname is missing",
                rule="files:missing",
                source=source,
                member=name,
            )
    for name in sorted(present - set(expected)):
        raise UnreferencedMemberError(
            "file not referenced by any Dateiname of the message",
            rule="files:unreferenced",
            source=source,
            member=name,
        )


def _copy(stream: IO[bytes] | BinaryIO, target: Path) -> tuple[int, str]:
    """Stream into ``target`` via a temporary file beside it; returns size and SHA-512."""
    digest = hashlib.sha512()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


# --------------------------------------------------------------------------- write


FileSource = str | os.PathLike[str] | BinaryIO


def write_container(
    path: str | os.PathLike[str],
    xml: bytes,
    files: Mapping[str, FileSource] | None = None,
    *,
    registry: SchemaRegistry | None = None,
) -> dict[str, Member]:
    """Write ``xml`` and the primary ``files`` (name → path or binary stream) as a container.

    ``path`` is the container file (its name must be the layout's) or an existing directory to
    write it into. The files must be exactly those the XML's ``Dateiname`` elements name. Returns
    every member (the XML first) with size and SHA-512."""
    files = dict(files or {})
    tree = parse_xml(xml, config=ParserConfig(max_bytes=max(len(xml), 1)))  # our own XML
    info, dateinamen = _header(tree, registry or default_registry())
    if info.process_id is None or not _XDOMEA_NS.fullmatch(info.namespace or ""):
        raise ContainerMismatchError(
            "the XML is no xdomea message with a ProzessID",
            rule="xml:header",
            source=os.fspath(path),
        )
    name = container_name(info.process_id, info.root)
    target = Path(path)
    if target.is_dir():
        target = target / name
    source = str(target)
    if target.name != name:
        raise ContainerNameError(
            f"the message needs the container name {name!r}", rule="name", source=source
        )
    parse_container_name(name, source=source)
    xml_name = xml_member_name(info.process_id, info.root)
    for member in files:
        _check_member_name(member, source)
    _check_unique([xml_name, *files], source)
    _compare_files(dateinamen, set(files), source)

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    hashed: dict[str, tuple[int, str]] = {}
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            hashed[xml_name] = _add(zf, xml_name, _BytesSource(xml))
            for member, src in files.items():
                if isinstance(src, str | os.PathLike):
                    with open(src, "rb") as stream:
                        hashed[member] = _add(zf, member, stream)
                else:
                    hashed[member] = _add(zf, member, src)
            infos = {i.filename: i for i in zf.infolist()}
        with open(tmp, "rb+") as done:
            os.fsync(done.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {
        name: Member(target, name, size, infos[name].compress_size, sha, infos[name].header_offset)
        for name, (size, sha) in hashed.items()
    }


class _BytesSource:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, n: int) -> bytes:
        chunk = self._data[self._pos : self._pos + n]
        self._pos += len(chunk)
        return bytes(chunk)


def _add(zf: zipfile.ZipFile, name: str, stream: BinaryIO | _BytesSource) -> tuple[int, str]:
    """Stream one member into the zip; returns its size and SHA-512."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    digest = hashlib.sha512()
    size = 0
    with zf.open(info, "w", force_zip64=True) as out:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


# --------------------------------------------------------------------------- read


def _entries(zf: zipfile.ZipFile, limits: ContainerLimits, source: str) -> list[zipfile.ZipInfo]:
    entries = zf.infolist()
    if len(entries) > limits.max_members:
        raise ZipBombError(
            f"{len(entries)} members, more than the limit of {limits.max_members}",
            rule="zip-bomb:members",
            source=source,
        )
    total = 0
    for e in entries:
        _check_member_name(e.filename, source)
        mode = e.external_attr >> 16
        if stat.S_IFMT(mode) == stat.S_IFLNK:
            raise UnsafeMemberError(
                "member is a symbolic link", rule="member:symlink", source=source, member=e.filename
            )
        if stat.S_IFMT(mode) not in _REGULAR or e.is_dir():
            raise UnsafeMemberError(
                "member is not a regular file",
                rule="member:special",
                source=source,
                member=e.filename,
            )
        if e.flag_bits & 0x1:
            raise ContainerFormatError(
                "member is encrypted", rule="zip:encrypted", source=source, member=e.filename
            )
        if e.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ContainerFormatError(
                "member uses a compression other than stored/deflated",
                rule="zip:compression",
                source=source,
                member=e.filename,
            )
        _check_sizes(e.filename, e.file_size, e.compress_size, limits, source)
        total += e.file_size
        if total > limits.max_total_bytes:
            raise ZipBombError(
                f"uncompressed total exceeds the limit of {limits.max_total_bytes} bytes",
                rule="zip-bomb:total",
                source=source,
                member=e.filename,
            )
    _check_unique([e.filename for e in entries], source)
    return entries


def _check_sizes(
    name: str, size: int, compressed: int, limits: ContainerLimits, source: str
) -> None:
    if size > limits.max_member_bytes:
        raise ZipBombError(
            f"uncompressed size exceeds the limit of {limits.max_member_bytes} bytes per member",
            rule="zip-bomb:member",
            source=source,
            member=name,
        )
    if size > limits.ratio_min_bytes and size > limits.max_ratio * max(compressed, 1):
        raise ZipBombError(
            f"compression ratio above the limit of {limits.max_ratio:g}",
            rule="zip-bomb:ratio",
            source=source,
            member=name,
        )


def _stream(
    zf: zipfile.ZipFile, e: zipfile.ZipInfo, source: str, budget: list[int], *, keep: bool
) -> tuple[str, int, bytes]:
    """Inflate one member, counting what really comes out against the limits."""
    try:
        return _inflate(zf, e, source, budget, keep=keep)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ContainerFormatError(
            f"member is damaged: {exc}", rule="zip:format", source=source, member=e.filename
        ) from exc


def _inflate(
    zf: zipfile.ZipFile, e: zipfile.ZipInfo, source: str, budget: list[int], *, keep: bool
) -> tuple[str, int, bytes]:
    digest = hashlib.sha512()
    size = 0
    kept: list[bytes] = []
    with zf.open(e) as stream:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            budget[0] -= len(chunk)
            if size > e.file_size:
                raise ContainerFormatError(
                    "member inflates to more than its declared size",
                    rule="zip:size",
                    source=source,
                    member=e.filename,
                )
            if budget[0] < 0:
                raise ZipBombError(
                    "uncompressed total exceeds the limit",
                    rule="zip-bomb:total",
                    source=source,
                    member=e.filename,
                )
            digest.update(chunk)
            if keep:
                kept.append(chunk)
    if size != e.file_size:
        raise ContainerFormatError(
            "member is shorter than its declared size",
            rule="zip:size",
            source=source,
            member=e.filename,
        )
    return digest.hexdigest(), size, b"".join(kept)


def read_container(
    path: str | os.PathLike[str],
    *,
    limits: ContainerLimits | None = None,
    registry: SchemaRegistry | None = None,
    config: ParserConfig | None = None,
) -> ContainerRead:
    """Check a container (see the module docstring) and hash every member while streaming it;
    nothing is extracted. Returns the message header, the XML bytes and the primary files. The
    XML is not validated here (``xoev.validate(result.xml)`` does that)."""
    limits = limits or ContainerLimits()
    target = Path(path)
    source = str(target)
    prozess_id, root, type_code = parse_container_name(target.name, source=source)
    xml_name = xml_member_name(prozess_id, root)
    budget = [limits.max_total_bytes]
    try:
        with zipfile.ZipFile(target) as zf:
            entries = _entries(zf, limits, source)
            by_name = {e.filename: e for e in entries}
            xml_entry = by_name.get(xml_name)
            if xml_entry is None:
                raise MissingMemberError(
                    "the message XML is missing", rule="xml:missing", source=source, member=xml_name
                )
            if xml_entry.file_size > limits.max_xml_bytes:
                raise ZipBombError(
                    f"message XML larger than {limits.max_xml_bytes} bytes",
                    rule="zip-bomb:xml",
                    source=source,
                    member=xml_name,
                )
            _, _, xml = _stream(zf, xml_entry, source, budget, keep=True)
            info = _check_xml(
                xml,
                prozess_id,
                root,
                type_code,
                source,
                by_name,
                registry,
                config or ParserConfig(max_bytes=max(limits.max_xml_bytes, 1)),
            )
            files: dict[str, Member] = {}
            for e in entries:
                if e is xml_entry:
                    continue
                sha, size, _ = _stream(zf, e, source, budget, keep=False)
                files[e.filename] = Member(
                    target, e.filename, size, e.compress_size, sha, e.header_offset
                )
    except OSError as exc:
        raise ContainerFormatError(
            f"cannot read the container: {exc.strerror or exc}", rule="io", source=source
        ) from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
        raise ContainerFormatError(
            f"not a readable zip: {exc}", rule="zip:format", source=source
        ) from exc
    return ContainerRead(info, xml, files)


def _check_xml(
    xml: bytes,
    prozess_id: str,
    root: str,
    type_code: str,
    source: str,
    by_name: Mapping[str, zipfile.ZipInfo],
    registry: SchemaRegistry | None,
    config: ParserConfig,
) -> MessageInfo:
    xml_name = xml_member_name(prozess_id, root)
    try:
        tree = parse_xml(xml, config=config, source=f"{source}!{xml_name}")
    except UnusableInputError as exc:
        raise ContainerFormatError(
            f"the message XML is unusable: {exc.reason}",
            rule="xml:unusable",
            source=source,
            member=xml_name,
        ) from exc
    info, dateinamen = _header(tree, registry or default_registry())
    if not _XDOMEA_NS.fullmatch(info.namespace or ""):
        raise ContainerMismatchError(
            f"the XML is no xdomea message (namespace {info.namespace})",
            rule="xml:namespace",
            source=source,
            member=xml_name,
        )
    if info.root != root:
        raise ContainerMismatchError(
            f"the XML is a {info.root}, the file name says {root}",
            rule="xml:root",
            source=source,
            member=xml_name,
        )
    if info.message_type != type_code:
        raise ContainerMismatchError(
            f"the XML's Nachrichtentyp is {info.message_type}, the file name says {type_code}",
            rule="xml:type",
            source=source,
            member=xml_name,
        )
    if (info.process_id or "").lower() != prozess_id.lower():
        raise ContainerMismatchError(
            "the XML's ProzessID is not the one of the file name",
            rule="xml:prozessid",
            source=source,
            member=xml_name,
        )
    _compare_files(dateinamen, set(by_name) - {xml_name}, source)
    return info
