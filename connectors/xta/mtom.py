"""MTOM/XOP (``multipart/related; type="application/xop+xml"``): reading a request whose parts
are streamed to memory or temporary files within byte limits, resolving ``xop:Include`` to the
part it names, and building an MTOM message (answer or request) with the payload as attachment:
:func:`mtom_body` gives its length beforehand and its body as a generator, reading a file
attachment in 1 MiB chunks while it is sent.

Reading is incremental and synchronous (:class:`MultipartParser`: ``feed`` chunks, then
``close``), so the HTTP layer decides where it runs. A part stays in memory up to
``memory_threshold`` bytes and moves to a file below ``directory`` beyond it; nothing is held
twice: the root part (the SOAP envelope) is kept as bytes, attachments as :class:`Part`.
Inline base64 content (no ``xop:Include``) is accepted too (:func:`resolve_content`).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import shutil
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO, BinaryIO

from lxml import etree

from .exceptions import MtomError
from .namespaces import XOP, q

__all__ = [
    "XOP_MEDIA_TYPE",
    "Content",
    "MtomBody",
    "MultipartParser",
    "OutgoingPart",
    "Part",
    "build_mtom",
    "content_type_params",
    "mtom_body",
    "resolve_content",
    "xop_include",
]

XOP_MEDIA_TYPE = "application/xop+xml"
_CHUNK = 1 << 20
_MAX_HEADER_BYTES = 16 * 1024
_MAX_PREAMBLE = 64 * 1024
_INCLUDE = q(XOP, "Include")
_BOUNDARY_OK = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")


def content_type_params(value: str) -> tuple[str, dict[str, str]]:
    """``(media type in lower case, parameters)`` of a Content-Type header value."""
    msg = Message()
    msg["content-type"] = value
    params = {k.lower(): str(v) for k, v in msg.get_params(failobj=[])[1:]}
    return msg.get_content_type(), params


class Part:
    """One MIME part: its headers and content, in memory or (beyond the threshold) in a file."""

    def __init__(self, headers: Mapping[str, str], directory: Path, threshold: int) -> None:
        self.headers = dict(headers)
        self.size = 0
        self._directory = directory
        self._threshold = threshold
        self._memory: io.BytesIO | None = io.BytesIO()
        self._file: IO[bytes] | None = None
        self.path: Path | None = None

    @property
    def content_id(self) -> str | None:
        value = self.headers.get("content-id")
        return value.strip().removeprefix("<").removesuffix(">") if value else None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/octet-stream")

    @property
    def on_disk(self) -> bool:
        return self.path is not None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._memory is not None and self.size > self._threshold:
            self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, name = tempfile.mkstemp(dir=self._directory, prefix="mtom-", suffix=".part")
            self.path = Path(name)
            self._file = os.fdopen(fd, "wb")
            self._file.write(self._memory.getbuffer())
            self._memory = None
        if self._file is not None:
            self._file.write(data)
        elif self._memory is not None:
            self._memory.write(data)

    def finish(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def read_bytes(self) -> bytes:
        if self.path is not None:
            return self.path.read_bytes()
        assert self._memory is not None
        return self._memory.getvalue()

    def open(self) -> BinaryIO:
        if self.path is not None:
            return self.path.open("rb")
        assert self._memory is not None
        return io.BytesIO(self._memory.getbuffer())

    def discard(self) -> None:
        self.finish()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self._memory = None


class MultipartParser:
    """Incremental multipart/related reader.

    ``limit``: most bytes of the whole body; ``root_limit``: most bytes of the root part;
    ``max_parts``: most parts. Raises :class:`MtomError` (``too_large`` for a limit)."""

    _PREAMBLE, _HEADERS, _BODY, _AFTER, _END = range(5)

    def __init__(
        self,
        content_type: str,
        *,
        directory: Path,
        limit: int,
        root_limit: int,
        memory_threshold: int = 1 << 20,
        max_parts: int = 16,
    ) -> None:
        media, params = content_type_params(content_type)
        if media != "multipart/related":
            raise MtomError(f"not multipart/related but {media}")
        boundary = params.get("boundary")
        if not boundary or not _BOUNDARY_OK.match(boundary):
            raise MtomError("multipart/related without a usable boundary parameter")
        if params.get("type", "").lower() not in (XOP_MEDIA_TYPE, "application/soap+xml"):
            raise MtomError(f'multipart/related needs type="{XOP_MEDIA_TYPE}" (MTOM/XOP)')
        start = params.get("start")
        self.start = start.strip().removeprefix("<").removesuffix(">") if start else None
        self._delimiter = b"\r\n--" + boundary.encode("ascii")
        self._directory = directory
        self._limit = limit
        self._root_limit = root_limit
        self._threshold = memory_threshold
        self._max_parts = max_parts
        self._buffer = bytearray(b"\r\n")  # the first delimiter may open the body
        self._state = self._PREAMBLE
        self._received = 0
        self._part: Part | None = None
        self._part_limit = limit
        self.parts: list[Part] = []

    def feed(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > self._limit:
            self.discard()
            raise MtomError(f"the body exceeds the limit of {self._limit} bytes", too_large=True)
        self._buffer += data
        try:
            self._run()
        except MtomError:
            self.discard()
            raise

    def _run(self) -> None:
        delim = self._delimiter
        buf = self._buffer
        while True:
            if self._state == self._PREAMBLE:
                i = buf.find(delim)
                if i < 0:
                    if len(buf) > _MAX_PREAMBLE:
                        raise MtomError("no multipart boundary in the first 64 KiB")
                    return
                del buf[: i + len(delim)]
                self._state = self._AFTER
            elif self._state == self._AFTER:
                if len(buf) < 2:
                    return
                if buf[:2] == b"--":
                    self._state = self._END
                    buf.clear()
                    return
                j = buf.find(b"\r\n")
                if j < 0:
                    if len(buf) > 256:
                        raise MtomError("garbage after a multipart boundary")
                    return
                if buf[:j].strip(b" \t"):
                    raise MtomError("garbage after a multipart boundary")
                del buf[: j + 2]
                self._state = self._HEADERS
            elif self._state == self._HEADERS:
                if buf.startswith(b"\r\n"):
                    j = -2  # a part without headers
                else:
                    j = buf.find(b"\r\n\r\n")
                    if j < 0:
                        if len(buf) > _MAX_HEADER_BYTES:
                            raise MtomError("MIME part headers longer than 16 KiB")
                        return
                self._open_part(bytes(buf[: max(j, 0)]))
                del buf[: j + 4]
                self._state = self._BODY
            elif self._state == self._BODY:
                part = self._part
                assert part is not None
                i = buf.find(delim)
                if i < 0:
                    keep = len(delim) - 1
                    if len(buf) > keep:
                        self._write(part, bytes(buf[: len(buf) - keep]))
                        del buf[: len(buf) - keep]
                    return
                self._write(part, bytes(buf[:i]))
                del buf[: i + len(delim)]
                part.finish()
                self._part = None
                self._state = self._AFTER
            else:  # epilogue: ignored
                buf.clear()
                return

    def _open_part(self, raw: bytes) -> None:
        if len(self.parts) >= self._max_parts:
            raise MtomError(f"more than {self._max_parts} MIME parts")
        headers: dict[str, str] = {}
        for line in raw.decode("latin-1").split("\r\n"):
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise MtomError("malformed MIME part header line")
            headers[name.strip().lower()] = value.strip()
        encoding = headers.get("content-transfer-encoding", "binary").lower()
        if encoding not in ("binary", "8bit", "7bit"):
            raise MtomError(f"Content-Transfer-Encoding {encoding} is not supported (MTOM: binary)")
        part = Part(headers, self._directory, self._threshold)
        is_root = (self.start is None and not self.parts) or (
            self.start is not None and part.content_id == self.start
        )
        self._part_limit = self._root_limit if is_root else self._limit
        self.parts.append(part)
        self._part = part

    def _write(self, part: Part, data: bytes) -> None:
        if part.size + len(data) > self._part_limit:
            raise MtomError(
                f"a MIME part exceeds the limit of {self._part_limit} bytes", too_large=True
            )
        if data:
            part.write(data)

    def close(self) -> tuple[Part, dict[str, Part]]:
        """``(root part, attachments by Content-ID)`` after the last chunk."""
        if self._state != self._END:
            self.discard()
            raise MtomError("the multipart body ends before its closing boundary")
        root: Part | None = None
        attachments: dict[str, Part] = {}
        for part in self.parts:
            cid = part.content_id
            if root is None and (self.start is None or cid == self.start):
                root = part
                continue
            if cid is None:
                self.discard()
                raise MtomError("an attachment part has no Content-ID")
            if cid in attachments:
                self.discard()
                raise MtomError(f"Content-ID {cid} appears twice")
            attachments[cid] = part
        if root is None:
            self.discard()
            raise MtomError("no root part (the start parameter names no part)")
        media, _ = content_type_params(root.content_type)
        if media not in (XOP_MEDIA_TYPE, "application/soap+xml"):
            self.discard()
            raise MtomError(f"the root part is {media}, not {XOP_MEDIA_TYPE}")
        return root, attachments

    def discard(self) -> None:
        for part in self.parts:
            part.discard()


@dataclass
class Content:
    """The content of a base64Binary element after XOP: inline bytes or an attachment part."""

    data: bytes | None = None
    part: Part | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else (self.part.size if self.part else 0)

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.part is not None
        return self.part.read_bytes()

    def to_file(self, target: Path) -> Path:
        """Write (or move) the content to ``target``."""
        if self.part is not None and self.part.path is not None:
            self.part.finish()
            shutil.move(self.part.path, target)
            self.part.path = target
            return target
        with target.open("wb") as out:
            out.write(self.read_bytes())
        return target


def resolve_content(element: etree._Element, attachments: Mapping[str, Part]) -> Content:
    """The content of ``element``: the part its ``xop:Include`` names, or its base64 text."""
    includes = [c for c in element if isinstance(c.tag, str)]
    if includes:
        if len(includes) != 1 or includes[0].tag != _INCLUDE or (element.text or "").strip():
            raise MtomError(f"{etree.QName(element).localname}: only one xop:Include is allowed")
        href = includes[0].get("href", "")
        if not href.startswith("cid:"):
            raise MtomError("xop:Include href is not a cid: URL")
        cid = urllib.parse.unquote(href[4:])
        part = attachments.get(cid)
        if part is None:
            raise MtomError(f"xop:Include names cid:{cid}, which no MIME part has")
        return Content(part=part)
    text = element.text or ""
    try:
        return Content(data=base64.b64decode("".join(text.split()), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise MtomError(f"{etree.QName(element).localname}: content is not base64") from exc


def xop_include(content_id: str) -> etree._Element:
    element = etree.Element(_INCLUDE, nsmap={"xop": XOP})
    element.set("href", "cid:" + urllib.parse.quote(content_id, safe="@.-_"))
    return element


@dataclass(frozen=True)
class OutgoingPart:
    """An attachment of an MTOM message: ``data`` or the file at ``path`` (read in 1 MiB chunks
    while sending, never whole)."""

    content_id: str
    content_type: str
    data: bytes | None = None
    path: Path | None = None

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        if self.path is None:
            raise MtomError(f"attachment {self.content_id} has neither data nor a path")
        return self.path.stat().st_size


@dataclass(frozen=True)
class MtomBody:
    """An MTOM message to send: its Content-Type, its exact length in bytes and its body as
    chunks (a generator: a file attachment is read while the chunks are consumed)."""

    content_type: str
    length: int
    chunks: Iterator[bytes]


def mtom_body(envelope: bytes, attachments: Sequence[OutgoingPart]) -> MtomBody:
    """The MTOM message of ``envelope`` (root part) and ``attachments``, with its length known
    before the first byte (``Content-Length``: no chunked transfer needed). The length holds
    while the attachment files do not change until they are sent."""
    boundary = f"uuid:{uuid.uuid4()}"
    root_id = f"root.{uuid.uuid4().hex}@amtsbote"
    content_type = (
        f'multipart/related; type="{XOP_MEDIA_TYPE}"; boundary="{boundary}"; '
        f'start="<{root_id}>"; start-info="application/soap+xml"'
    )
    head = (
        f"--{boundary}\r\n"
        f'Content-Type: {XOP_MEDIA_TYPE}; charset=UTF-8; type="application/soap+xml"\r\n'
        "Content-Transfer-Encoding: binary\r\n"
        f"Content-ID: <{root_id}>\r\n\r\n"
    ).encode()
    heads = [
        (
            f"\r\n--{boundary}\r\n"
            f"Content-Type: {part.content_type}\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{part.content_id}>\r\n\r\n"
        ).encode()
        for part in attachments
    ]
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + len(envelope) + len(tail)
    length += sum(len(h) + part.size for h, part in zip(heads, attachments, strict=True))

    def chunks() -> Iterator[bytes]:
        yield head
        yield envelope
        for part_head, part in zip(heads, attachments, strict=True):
            yield part_head
            if part.data is not None:
                yield part.data
            elif part.path is not None:
                with part.path.open("rb") as stream:
                    while block := stream.read(_CHUNK):
                        yield block
        yield tail

    return MtomBody(content_type, length, chunks())


def build_mtom(envelope: bytes, attachments: Sequence[OutgoingPart]) -> tuple[str, Iterator[bytes]]:
    """``(Content-Type header, body chunks)`` of an MTOM message: the envelope as root part,
    then each attachment (files are read in 1 MiB chunks while sending)."""
    body = mtom_body(envelope, attachments)
    return body.content_type, body.chunks
