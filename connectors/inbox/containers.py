"""xdomea containers (x-man zips, :mod:`xoev.container`) in the inbox: spooling a body to disk,
reading it with the hostile checks, keeping the primary files as blobs, rebuilding the container
for a mailbox fetch.

Accepting a container (``POST /v1/messages`` with ``Content-Type: application/zip``,
:meth:`InboxService.accept_container`, :meth:`InboxService.accept_file`):

1. the body is streamed into a private temporary directory below :func:`spool_root` (never held
   in memory), counted against ``InboxConfig.max_container_bytes`` (413) and hashed (SHA-512) on
   the way;
2. its x-man name ``{ProzessID}_{Nachrichtenname}.zip`` is taken from the one member
   ``{ProzessID}_{Nachrichtenname}.xml`` (HTTP bodies have no file name), and the file renamed to
   it;
3. :func:`xoev.container.read_container` with ``InboxConfig.container_limits``: zip bombs,
   ``../``/absolute names, duplicates, symlinks, missing or unreferenced primary files, ProzessID or
   type mismatch → 422 ``invalid_container`` naming container, member and rule;
4. the XML passes exactly the checks of an XML body (:mod:`.checks`);
5. before anything is stored: a message with the same key and another XML → 409 ``conflict``; one
   whose attached files differ (a name with other content, or files this container lacks) → 409
   ``conflict``;
6. the primary files are put into ``journal.blobs`` (streamed out of the zip, SHA-512 checked
   again), then the message is recorded (:meth:`Journal.record_inbound`, one transaction), then the
   files are attached to the message key (idempotent);
7. the temporary directory is removed in every case.

What a failure leaves: a refusal in steps 1–5 stores nothing. A failure in step 6 (journal or disk
down → 503) may leave blobs put before it **unattached** — content-addressed files no message
refers to, reused by the next put of the same document; they are not removed, because a parallel
request may just be attaching the same blob. A failure after the commit, before every file is
attached, leaves the message without (all) its files until the sender repeats the delivery (it got
503, so it does): the repeat records nothing new and attaches the rest.

The receipt's ``sha512`` of a container is the SHA-512 of the container body as received; the
journal's ``payload_sha512`` (mailbox list, status) stays the XML's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from xoev.container import ContainerRead, Member, parse_container_name, read_container
from xoev.exceptions import ContainerError, ContainerNameError

from ..journal import Journal
from ..journal.blobs import BlobConflictError, BlobStore, MessageFile
from .exceptions import ApiError

if TYPE_CHECKING:
    from xoev.container import ContainerLimits
    from xoev.parsing import ParserConfig
    from xoev.registry import SchemaRegistry

__all__ = [
    "CONTAINER_TYPE",
    "attach_files",
    "build_container",
    "check_attachments",
    "invalid_container",
    "layout_name",
    "put_files",
    "read_checked",
    "sha512_of",
    "spool_root",
    "temporary_dir",
]

log = logging.getLogger("connectors.inbox")

CONTAINER_TYPE = "application/zip"
_CHUNK = 1 << 20


def spool_root(configured: Path | None, journal: Journal) -> Path:
    """The directory for temporary container files: ``configured`` or
    ``<blob store root>/incoming``."""
    return configured if configured is not None else journal.blobs.root / "incoming"


@contextlib.contextmanager
def temporary_dir(root: Path) -> Iterator[Path]:
    """A private directory below ``root`` (made on demand), removed with everything in it."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = Path(tempfile.mkdtemp(dir=root, prefix="c-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sha512_of(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def invalid_container(exc: ContainerError, label: str) -> ApiError:
    """422 ``invalid_container``: what (the rule, the reason) and where (container, member)."""
    where = f"container {label}"
    if exc.member is not None:
        where += f", member {exc.member!r}"
    return ApiError(
        422,
        "invalid_container",
        f"{where}: {exc.reason} (rule {exc.rule})",
        rule=exc.rule,
        member=exc.member,
    )


def layout_name(path: Path) -> str:
    """The x-man file name of the container at ``path``, from its one message XML member
    ``{ProzessID}_{Nachrichtenname}.xml`` (422 when there is none or several)."""
    label = "in the message body"
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise ApiError(
            422,
            "invalid_container",
            f"container {label}: not a readable zip: {exc} (rule zip:format)",
            rule="zip:format",
            member=None,
        ) from None
    found = []
    for name in names:
        if not name.endswith(".xml") or "/" in name or "\\" in name:
            continue
        candidate = name[: -len(".xml")] + ".zip"
        with contextlib.suppress(ContainerNameError):
            parse_container_name(candidate)
            found.append(candidate)
    if len(found) != 1:
        problem = (
            "no member {ProzessID}_{Nachrichtenname}.xml of an xdomea message"
            if not found
            else f"{len(found)} message XMLs ({', '.join(sorted(found))})"
        )
        raise ApiError(
            422,
            "invalid_container",
            f"container {label}: {problem} (rule xml:missing)",
            rule="xml:missing",
            member=None,
        )
    return found[0]


def read_checked(
    path: Path,
    *,
    label: str,
    limits: ContainerLimits,
    registry: SchemaRegistry,
    parser: ParserConfig,
) -> ContainerRead:
    """:func:`read_container` with the inbox's limits; a refusal is 422 ``invalid_container``."""
    try:
        return read_container(path, limits=limits, registry=registry, config=parser)
    except ContainerError as exc:
        raise invalid_container(exc, label) from exc


def check_attachments(blobs: BlobStore, key: str, files: Mapping[str, Member]) -> None:
    """409 when message ``key`` holds files other than ``files`` already (a name with other
    content, or a name the container lacks). Files not attached yet are fine."""
    held = {f.name: f.digest for f in blobs.files_of(key)}
    other = sorted(n for n, d in held.items() if n not in files or files[n].sha512 != d)
    if other:
        raise ApiError(
            409,
            "conflict",
            f"message {key} was delivered before with other primary files ({', '.join(other)}); "
            "the first delivery stays",
            nachrichtenUUID=key,
        )


def put_files(blobs: BlobStore, files: Mapping[str, Member], label: str) -> None:
    """Stream every primary file into the blob store; its SHA-512 must be the one read."""
    for name, member in files.items():
        with member.open() as stream:
            ref = blobs.put_stream(stream)
        if ref.digest != member.sha512:
            raise ApiError(
                422,
                "invalid_container",
                f"container {label}, member {name!r}: changed while read (SHA-512 differs) "
                "(rule integrity)",
                rule="integrity",
                member=name,
            )


def attach_files(blobs: BlobStore, key: str, files: Mapping[str, Member]) -> None:
    try:
        for name, member in files.items():
            blobs.attach(key, name, member.sha512)
    except BlobConflictError as exc:  # a parallel delivery of other files won the race
        raise ApiError(409, "conflict", f"message {key}: {exc}", nachrichtenUUID=key) from exc


def build_container(
    blobs: BlobStore, xml: bytes, files: tuple[MessageFile, ...], directory: Path
) -> Path:
    """Write the container of ``xml`` and its attached ``files`` into ``directory`` (streaming
    from the blobs, :func:`xoev.container.write_container`); returns its path."""
    from xoev.container import write_container

    with contextlib.ExitStack() as stack:
        sources = {f.name: stack.enter_context(blobs.open(f.digest)) for f in files}
        write_container(directory, xml, sources)  # type: ignore[arg-type]
    (path,) = directory.glob("*.zip")  # BlobReader checked every SHA-512 while reading
    return path
