"""Hardened XML intake.

Every message from outside goes through :func:`parse_xml` (or :func:`parse_file`). The order of the
checks is what keeps hostile input cheap:

1. size: the body is refused before any parsing when larger than ``ParserConfig.max_bytes``;
   markup: the count of ``<`` (an upper bound of tags) and of ``=`` (of attributes) must stay
   within ``max_tags`` / ``max_attributes`` — a 10 MB element bomb would otherwise cost a tree of
   a gigabyte; two byte counts, no parser;
2. prolog scan (pure byte scan, no parser): a ``<!DOCTYPE`` before the root element is refused
   before anything could be expanded or loaded; the exception says which attack it looked like
   (XXE, entity bomb, external DTD). The encoding declaration is checked against the byte-order
   mark / detected encoding family and, when ``strict``, against the accepted encodings;
3. lxml/libxml2 with entity resolution, DTD loading and network access off and ``huge_tree`` off
   (libxml2 then limits depth to 256, text nodes to 10 MB, names to 50 kB); its errors are
   translated to the exception classes of :mod:`xoev.exceptions` with line and column;
4. depth: for ``max_depth`` below libxml2's own 256 a single compiled XPath checks the limit.

Parsers are cached per thread and configuration (lxml parsers must not be shared across threads).
"""

from __future__ import annotations

import codecs
import functools
import os
import re
import stat
import threading
from dataclasses import dataclass

from lxml import etree

from .exceptions import (
    EntityDeclarationError,
    ExternalDTDError,
    ExternalEntityError,
    ForbiddenDoctypeError,
    InputEncodingError,
    InputTooLargeError,
    NestingTooDeepError,
    NotXMLError,
    TooMuchMarkupError,
    UnusableInputError,
)

__all__ = [
    "LIBXML2_MAX_DEPTH",
    "ParserConfig",
    "parse_file",
    "parse_xml",
    "read_input",
]

LIBXML2_MAX_DEPTH = 256
"""libxml2's nesting limit without ``huge_tree`` (which stays off): deeper documents fail."""

_MiB = 1024 * 1024

#: Encodings accepted under ``strict`` (normalised: upper case, without ``-`` and ``_``). XÖV
#: messages are UTF-8; the others are accepted because they are unambiguous for the prolog scan.
#: Anything else (UTF-7, EBCDIC, Shift-JIS …) could hide markup from the scan and is refused.
_STRICT_ENCODINGS = frozenset(
    {"UTF8", "USASCII", "ASCII", "UTF16", "UTF16LE", "UTF16BE", "UTF32", "UTF32LE", "UTF32BE"}
    | {f"ISO8859{i}" for i in range(1, 17)}
    | {"LATIN1", "WINDOWS1252", "CP1252"}
)


@dataclass(frozen=True, slots=True)
class ParserConfig:
    """Limits and strictness of the XML intake.

    ``max_bytes``: largest accepted body (default 10 MiB), checked before parsing.
    ``max_depth``: deepest accepted element nesting (default and maximum 256, libxml2's own limit
    without ``huge_tree``).
    ``strict``: refuse *every* DOCTYPE, even one without entities or external subset, encoding
    declarations that contradict the byte-order mark, and encodings other than UTF-8/16/32,
    US-ASCII, ISO-8859-x and windows-1252. Without ``strict`` a bare ``<!DOCTYPE root>`` and other
    encodings libxml2 knows are tolerated; entity declarations and external DTDs are always refused.
    """

    max_bytes: int = 10 * _MiB
    max_depth: int = LIBXML2_MAX_DEPTH
    strict: bool = True
    max_tags: int = 1_000_000
    """Most ``<`` in the body (start, end and empty tags, comments …): at most a million elements,
    far beyond any XÖV message — a tree of about 125 MiB for a million empty ones (measured;
    a 10 MB body of 2.6 million would cost more than twice that)."""
    max_attributes: int = 1_000_000
    """Most ``=`` in the body (every attribute has one; text may have more)."""

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError(f"ParserConfig.max_bytes must be positive, not {self.max_bytes}")
        if self.max_tags < 1 or self.max_attributes < 1:
            raise ValueError(
                "ParserConfig.max_tags and max_attributes must be positive, not "
                f"{self.max_tags} / {self.max_attributes}"
            )
        if not 1 <= self.max_depth <= LIBXML2_MAX_DEPTH:
            raise ValueError(
                f"ParserConfig.max_depth must be between 1 and {LIBXML2_MAX_DEPTH} "
                f"(libxml2's limit without huge_tree), not {self.max_depth}"
            )


DEFAULT_CONFIG = ParserConfig()

# --------------------------------------------------------------------------------------------
# parsers, one per thread

_local = threading.local()


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=False,
            recover=False,
        )
        _local.parser = parser
    return parser


@functools.lru_cache(maxsize=16)
def _too_deep_xpath(max_depth: int) -> etree.XPath:
    # elements at depth max_depth + 1 (root = depth 1)
    return etree.XPath("/*" + "/*" * max_depth)


# --------------------------------------------------------------------------------------------
# prolog scan

_UTF8_BOM = codecs.BOM_UTF8
_FAMILIES: tuple[tuple[bytes, str, int], ...] = (
    # (leading bytes, codec, BOM length) — XML 1.0 appendix F; UTF-32 before UTF-16
    (codecs.BOM_UTF32_BE, "utf-32-be", 4),
    (codecs.BOM_UTF32_LE, "utf-32-le", 4),
    (b"\x00\x00\x00<", "utf-32-be", 0),
    (b"<\x00\x00\x00", "utf-32-le", 0),
    (codecs.BOM_UTF16_BE, "utf-16-be", 2),
    (codecs.BOM_UTF16_LE, "utf-16-le", 2),
    (b"\x00<\x00?", "utf-16-be", 0),
    (b"<\x00?\x00", "utf-16-le", 0),
)
_EBCDIC_XML_DECL = b"\x4c\x6f\xa7\x94"  # "<?xm" in EBCDIC
_ENCODING_DECL = re.compile(rb"""\bencoding\s*=\s*(["'])([^"']*)\1""")
_DOCTYPE_EXTERNAL_ID = re.compile(rb"\s(SYSTEM|PUBLIC)[\s\"']")
_ENTITY_DECL = re.compile(rb"<!ENTITY\s")
_EXTERNAL_ENTITY = re.compile(rb"<!ENTITY\s+(?:%\s+)?[^\s]+\s+(?:SYSTEM|PUBLIC)[\s\"']")


def _norm_encoding(name: str) -> str:
    return name.upper().replace("-", "").replace("_", "")


def _where(buf: bytes, index: int) -> tuple[int, int]:
    line = buf.count(b"\n", 0, index) + 1
    column = index - (buf.rfind(b"\n", 0, index) + 1) + 1
    return line, column


def _scan_prolog(data: bytes, config: ParserConfig, source: str | None) -> None:
    """Refuse DOCTYPEs and contradictory encodings without parsing. Leaves everything else
    (garbage, truncation) to the parser, which reports it with line and column."""
    family: str | None = None
    bom = 0
    if data[:1] in (b"\x00", b"\xfe", b"\xff") or data[1:2] == b"\x00":
        for lead, codec, bom_len in _FAMILIES:
            if data.startswith(lead):
                family, bom = codec, bom_len
                break
    if family is None and data.startswith(_EBCDIC_XML_DECL):
        if config.strict:
            raise InputEncodingError(
                "EBCDIC-encoded document is not accepted (strict intake)", source=source, line=1
            )
        return  # not scannable as bytes; parse_xml checks the DOCTYPE after parsing
    if family is None:
        buf = data
        pos = 3 if data.startswith(_UTF8_BOM) else 0
    else:
        try:
            buf = data[bom:].decode(family).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputEncodingError(
                f"bytes are not valid {family.upper()} (detected from the first bytes): "
                f"{exc.reason}",
                source=source,
            ) from exc
        pos = 0

    declared: str | None = None
    if buf.startswith(b"<?xml", pos):
        end = buf.find(b"?>", pos)
        if end < 0:
            return
        match = _ENCODING_DECL.search(buf, pos, end)
        if match:
            declared = match.group(2).decode("ascii", "replace")
        pos = end + 2
    _check_declared_encoding(declared, family, data.startswith(_UTF8_BOM), config, source)

    while True:
        i = buf.find(b"<", pos)
        if i < 0:
            return
        if buf.startswith(b"<?", i):
            j = buf.find(b"?>", i + 2)
            if j < 0:
                return
            pos = j + 2
        elif buf.startswith(b"<!--", i):
            j = buf.find(b"-->", i + 4)
            if j < 0:
                return
            pos = j + 3
        elif buf.startswith(b"<!", i) and buf[i + 2 : i + 9].upper() == b"DOCTYPE":
            _refuse_doctype(buf, i, config, source)
            return
        else:
            return  # the root element (or garbage the parser will report)


def _check_declared_encoding(
    declared: str | None,
    family: str | None,
    utf8_bom: bool,
    config: ParserConfig,
    source: str | None,
) -> None:
    if declared is None or not config.strict:
        return
    norm = _norm_encoding(declared)
    if norm not in _STRICT_ENCODINGS:
        raise InputEncodingError(
            f"declared encoding {declared!r} is not accepted (strict intake accepts UTF-8, UTF-16, "
            f"UTF-32, US-ASCII, ISO-8859-x, windows-1252)",
            source=source,
            line=1,
            declared=declared,
        )
    wide = norm.startswith(("UTF16", "UTF32"))
    if family is not None and not wide:
        raise InputEncodingError(
            f"declares encoding {declared} but the bytes are {family.upper()}",
            source=source,
            line=1,
            declared=declared,
        )
    if family is None and wide:
        raise InputEncodingError(
            f"declares encoding {declared} but the bytes are single-byte/UTF-8 "
            f"(no byte-order mark)",
            source=source,
            line=1,
            declared=declared,
        )
    if utf8_bom and norm != "UTF8":
        raise InputEncodingError(
            f"declares encoding {declared} but starts with a UTF-8 byte-order mark",
            source=source,
            line=1,
            declared=declared,
        )


def _refuse_doctype(buf: bytes, start: int, config: ParserConfig, source: str | None) -> None:
    line, column = _where(buf, start)
    bracket = buf.find(b"[", start)
    close = buf.find(b">", start)
    header_end = min(x for x in (bracket, close, len(buf)) if x >= 0)
    header = buf[start:header_end]
    # The internal subset runs from "[" to "]>"; quoted values may contain "]>", so the whole rest
    # is searched: the document is refused either way, the search only picks the exception.
    subset = buf[bracket:] if 0 <= bracket == header_end else b""
    n_entities = len(_ENTITY_DECL.findall(subset))
    if _EXTERNAL_ENTITY.search(subset):
        raise ExternalEntityError(
            "DOCTYPE declares an external entity (SYSTEM/PUBLIC): XXE, refused before parsing",
            source=source,
            line=line,
            column=column,
        )
    if _DOCTYPE_EXTERNAL_ID.search(header):
        raise ExternalDTDError(
            "DOCTYPE refers to an external DTD (SYSTEM/PUBLIC), refused before parsing; "
            "XÖV messages are validated by XML Schema only",
            source=source,
            line=line,
            column=column,
        )
    if n_entities:
        raise EntityDeclarationError(
            f"DOCTYPE declares {n_entities} internal entit{'y' if n_entities == 1 else 'ies'} "
            f"(entity-expansion bomb such as billion laughs), refused before parsing",
            source=source,
            line=line,
            column=column,
        )
    if config.strict:
        raise ForbiddenDoctypeError(
            "DOCTYPE is not allowed in XÖV messages (strict intake)",
            source=source,
            line=line,
            column=column,
        )


# --------------------------------------------------------------------------------------------
# public API


def parse_xml(
    data: bytes, *, config: ParserConfig | None = None, source: str | None = None
) -> etree._ElementTree:
    """Parse untrusted bytes into a tree, or raise a subclass of
    :class:`~xoev.exceptions.UnusableInputError` naming the problem and where it is."""
    cfg = config or DEFAULT_CONFIG
    if type(data) is not bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"parse_xml() needs bytes, not {type(data).__name__}")
        data = bytes(data)
    size = len(data)
    if size > cfg.max_bytes:
        raise InputTooLargeError(size, cfg.max_bytes, source=source)
    _check_markup(data, cfg, source)
    _scan_prolog(data, cfg, source)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        if not data.strip():
            raise NotXMLError("empty input: no XML document", source=source) from exc
        raise _translate(exc, cfg, source) from exc
    tree = root.getroottree()
    docinfo = tree.docinfo
    dtd = docinfo.internalDTD
    if dtd is not None:
        # defence in depth (an encoding the prolog scan could not read); never expanded: entity
        # resolution and DTD loading are off in the parser
        if any(True for _ in dtd.iterentities()):
            raise EntityDeclarationError("DOCTYPE declares entities", source=source, line=1)
        if docinfo.system_url or docinfo.public_id:
            raise ExternalDTDError("DOCTYPE refers to an external DTD", source=source, line=1)
        if cfg.strict:
            raise ForbiddenDoctypeError(
                "DOCTYPE is not allowed in XÖV messages (strict intake)", source=source, line=1
            )
    if cfg.max_depth < LIBXML2_MAX_DEPTH:
        deeper = _too_deep_xpath(cfg.max_depth)(tree)
        if deeper:
            raise NestingTooDeepError(
                cfg.max_depth, source=source, line=getattr(deeper[0], "sourceline", None)
            )
    return tree


def _check_markup(data: bytes, cfg: ParserConfig, source: str | None) -> None:
    """The element-bomb budget on the bytes (ASCII ``<``/``=``; UTF-16/32 bodies count the same
    code units). Cheap: two C-level byte counts."""
    if len(data) <= cfg.max_tags and len(data) <= cfg.max_attributes:
        return  # fewer bytes than either budget: cannot exceed it (every normal message)
    tags = data.count(b"<")
    if tags > cfg.max_tags:
        raise TooMuchMarkupError("tags", tags, cfg.max_tags, source=source)
    attributes = data.count(b"=")
    if attributes > cfg.max_attributes:
        raise TooMuchMarkupError("attributes", attributes, cfg.max_attributes, source=source)


def _translate(exc: etree.XMLSyntaxError, cfg: ParserConfig, source: str | None) -> Exception:
    line, column = exc.position if exc.position else (None, None)
    message = (exc.msg or str(exc)).strip()
    # lxml appends ", line N, column M" — line and column are carried separately
    message = re.sub(r",\s*line \d+, column \d+$", "", message)
    types = etree.ErrorTypes
    code = exc.code
    if code in (
        types.ERR_INVALID_ENCODING,
        types.ERR_UNSUPPORTED_ENCODING,
        types.ERR_UNKNOWN_ENCODING,
        types.ERR_ENCODING_NAME,
    ):
        return InputEncodingError(
            f"encoding problem: {message}", source=source, line=line, column=column
        )
    if code == types.ERR_RESOURCE_LIMIT and "depth" in message.lower():
        return NestingTooDeepError(
            min(cfg.max_depth, LIBXML2_MAX_DEPTH), source=source, line=line, column=column
        )
    if code == types.ERR_RESOURCE_LIMIT:
        return NotXMLError(
            f"exceeds a parser limit: {message}", source=source, line=line, column=column
        )
    if code == types.ERR_UNDECLARED_ENTITY:
        return NotXMLError(
            f"not well-formed XML: {message} (entities are not supported)",
            source=source,
            line=line,
            column=column,
        )
    return NotXMLError(f"not well-formed XML: {message}", source=source, line=line, column=column)


def read_input(path: str | os.PathLike[str], *, config: ParserConfig | None = None) -> bytes:
    """Read a file's bytes, refusing it by its size before reading it whole."""
    cfg = config or DEFAULT_CONFIG
    name = os.fspath(path)
    try:
        st = os.stat(name)
        if not stat.S_ISREG(st.st_mode):  # before opening: a FIFO would block the open
            raise UnusableInputError("not a regular file", source=name)
        if st.st_size > cfg.max_bytes:
            raise InputTooLargeError(st.st_size, cfg.max_bytes, source=name)
        with open(name, "rb", buffering=0) as fh:
            # what stat saw plus one byte (a read sized by the limit would allocate the limit
            # every time); a file that grew since is read on, up to the limit plus one
            want = st.st_size + 1
            data = fh.read(want)
            if len(data) == want:
                data += fh.read(cfg.max_bytes + 1 - len(data))
    except FileNotFoundError as exc:
        raise UnusableInputError("file not found", source=name) from exc
    except PermissionError as exc:
        raise UnusableInputError("permission denied", source=name) from exc
    except IsADirectoryError as exc:
        raise UnusableInputError("is a directory", source=name) from exc
    except OSError as exc:
        raise UnusableInputError(f"cannot read: {exc.strerror or exc}", source=name) from exc
    if len(data) > cfg.max_bytes:  # grew between stat and read
        raise InputTooLargeError(len(data), cfg.max_bytes, source=name)
    return data


def parse_file(
    path: str | os.PathLike[str], *, config: ParserConfig | None = None
) -> etree._ElementTree:
    """:func:`parse_xml` for a file; the size is checked before the file is read."""
    data = read_input(path, config=config)
    return parse_xml(data, config=config, source=os.fspath(path))
