"""``sendMessage`` of XTA 2 through the inbox's own intake: the message (XML, or an xdomea
container as ``application/zip``) goes through :meth:`InboxService.accept` /
:meth:`InboxService.accept_container`, so dedup, validation, the journal and receipts are the
HTTP API's. Before that, the MessageMetaData header is read and checked: its Author must be the
caller, and it must not contradict the message's Nachrichtenkopf (:mod:`connectors.xta.metadata`).
A MessageID reserved by createMessageId for another agency is refused (9024).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

from lxml import etree

from xoev.exceptions import UnusableInputError
from xoev.message import inspect_message
from xoev.parsing import ParserConfig

from ..directory import Agency
from ..xta.exceptions import MetadataError, MtomError, XtaFault
from ..xta.metadata import check_consistent, read_metadata, uuid_of_message_id
from ..xta.mtom import Content, Part, resolve_content
from ..xta.namespaces import OSCIMETA, XTA, q
from ..xta.soap import Envelope
from .containers import CONTAINER_TYPE
from .exceptions import ApiError
from .xta_operations import Answer, XtaOperations, fault_of

__all__ = ["send_message"]


def _parameter(reason: str, code: str = "9022") -> XtaFault:
    return XtaFault("ParameterIsNotValidException", code, reason)


def _is_zip(message: etree._Element) -> bool:
    media = (message.get("contentType") or "").split(";", 1)[0].strip().lower()
    return media in (CONTAINER_TYPE, "application/x-zip-compressed") or (
        message.get("filename") or ""
    ).lower().endswith(".zip")


def _container_xml(path: Path, limit: int) -> bytes | None:
    """The x-man container's message XML (the single top-level ``.xml``), read at most ``limit``
    bytes; None when it cannot be told — :meth:`InboxService.accept_container` then refuses."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".xml") and "/" not in n]
            if len(names) != 1:
                return None
            with archive.open(names[0]) as member:
                data = member.read(limit + 1)
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError):
        return None
    return data if len(data) <= limit else None


def send_message(
    ops: XtaOperations,
    caller: Agency,
    envelope: Envelope,
    attachments: Mapping[str, Part],
    tmp: Path,
) -> Answer:
    """Accept one message sent by ``caller``; ``tmp``: a private directory for the container."""
    service = ops.service
    header = envelope.header(OSCIMETA, "MessageMetaData")
    if header is None:
        raise _parameter("sendMessage needs the MessageMetaData header", "9020")
    try:
        meta = read_metadata(header)
    except MetadataError as exc:
        raise _parameter(str(exc), "9020") from exc
    ops.require_own_kennung(caller, meta.author or "", "MessageMetaData Author")
    body = envelope.body
    if body is None or body.tag != q(XTA, "GenericContentContainer"):
        raise _parameter("the Body needs an xta:GenericContentContainer", "9020")
    container = body.find(q(XTA, "ContentContainer"))
    if container is None:
        raise _parameter("encrypted content (xenc:EncryptedData) is not supported here")
    message = container.find(q(XTA, "Message"))
    if message is None:
        raise _parameter("ContentContainer has no Message", "9020")
    if container.find(q(XTA, "Attachment")) is not None:
        raise _parameter(
            "Attachment elements are not supported: send an xdomea message with its files as "
            f"one x-man container ({CONTAINER_TYPE}) in Message"
        )
    try:
        content = resolve_content(message, attachments)
    except MtomError as exc:
        raise _parameter(str(exc)) from exc
    key = uuid_of_message_id(meta.message_id) if meta.message_id else None
    if key is not None:
        holder = ops.reservations.holder(key)
        if holder is not None and holder != caller.id:
            raise _parameter(f"MessageID {meta.message_id} was created for another agency", "9024")
    zipped = _is_zip(message)
    limit = service.config.max_container_bytes if zipped else service.config.max_body_bytes
    if content.size > limit:
        raise XtaFault(
            "ParameterIsNotValidException",
            "9023",
            f"the message has {content.size} bytes, more than the limit of {limit}",
            status=413,
        )
    try:
        if zipped:
            _, receipt = _send_container(ops, caller, meta, content, tmp)
        else:
            data = content.read_bytes()
            _check_metadata(ops, meta, data)
            _, receipt = service.accept(data, caller)
    except ApiError as exc:
        raise fault_of(exc) from exc
    if key is not None and key == receipt["nachrichtenUUID"]:
        ops.reservations.release(key)
    return Answer()


def _check_metadata(ops: XtaOperations, meta: object, data: bytes) -> None:
    """Refuse metadata contradicting the Nachrichtenkopf (unparsable XML is left to accept)."""
    service = ops.service
    config = ParserConfig(max_bytes=max(len(data), 1), max_depth=service.config.max_depth)
    try:
        info = inspect_message(data, registry=service.registry, config=config)
    except UnusableInputError:
        return
    try:
        check_consistent(meta, info)  # type: ignore[arg-type]
    except MetadataError as exc:
        raise _parameter(str(exc)) from exc


def _send_container(
    ops: XtaOperations, caller: Agency, meta: object, content: Content, tmp: Path
) -> tuple[int, dict[str, object]]:
    path = content.to_file(tmp / "message.zip")
    xml = _container_xml(path, ops.service.config.container_limits.max_xml_bytes)
    if xml is not None:
        _check_metadata(ops, meta, xml)
    return ops.service.accept_container(path, caller)
