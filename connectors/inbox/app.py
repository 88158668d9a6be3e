"""The inbox service: receives XÖV messages for one agency and keeps mailboxes (FastAPI).

Endpoints (the integrator's description with examples is ``docs/inbox-api.md``; the OpenAPI
description is served at ``/openapi.json``, its viewer at ``/docs``)::

    GET  /healthz                          liveness + journal reachable
    POST /v1/messages                      deliver a message (bearer token of the SENDING agency)
    GET  /v1/mailbox                       list the calling agency's waiting messages
    GET  /v1/mailbox/{uuid}                fetch one message's XML
    POST /v1/mailbox/{uuid}/ack            confirm the fetch (delivery state → fetched)
    GET  /v1/messages/{uuid}/status        transport report (Laufzettel) for the message's sender

``POST /v1/messages``, in this order (the first failing step answers):

1. bearer token → sending agency (``Directory.authenticate``), else 401;
2. ``Content-Type`` an XML type (``application/xml``, ``text/xml``, ``application/*+xml``),
   else 415;
3. size: ``Content-Length`` and the streamed body against ``InboxConfig.max_body_bytes`` — never
   more than the limit (plus one network chunk) is read — else 413;
4. hardened parse (:func:`xoev.parsing.parse_xml`: DOCTYPEs/XXE/entity bombs refused before
   parsing), else 400 (413 for the parser's own size check);
5. Nachrichtenkopf (:func:`xoev.message.inspect_message`, on the same tree): the author must be the
   authenticated sender (403 ``author_mismatch``, :attr:`InboxConfig.require_author_match`); the
   recipient — ``X-Empfaenger`` and/or the reader (``leser``) — must be an agency of the directory
   (both agreeing) that this inbox serves: its own agency or a mailbox agency it hosts
   (``Directory.hosted_by``), else 422;
6. validation (:func:`xoev.validation.validate_tree`, on the same tree: XSD, codelists, rules):
   any error finding → 422 with ``findings`` (line, XPath, rule, message); unknown standard → 422;
7. ``X-Nachrichten-UUID``, when sent, must be the message's UUID, else 422;
8. :meth:`Journal.record_inbound` commits message, mailbox delivery (state ``delivered``) and
   events in ONE transaction **before** the answer; journal down → 503 with ``Retry-After``;
9. ``on_accepted(record, info, created)`` is called after the commit; its failure is logged
   (and recorded as journal event ``inbox.hook_failed``) and changes nothing in the answer;
10. 202 with the receipt ``{"nachrichtenUUID", "received_at", "sha512", "state", "recipient"}``.

Repeats: the same nachrichtenUUID with the same payload stores nothing new and answers **200**
with the identical receipt (``received_at`` of the first delivery); with a different payload
409 ``conflict`` (the first one stays). A message for the serving agency itself and one for a
hosted mailbox are stored alike: one inbound delivery to the recipient in state ``delivered``
(waiting in the mailbox until fetched); the receipt's ``state`` is always ``delivered``.

Threads: the body is read on the event loop; parsing, validation and the journal run in the
thread pool (one hop per message); the other endpoints are plain ``def`` endpoints, which FastAPI
runs in the thread pool.

Logs name agency ids, nachrichtenUUIDs, error codes and exception class names only — never
payload content or finding texts (they may quote personal data).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import uuid as uuid_module
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from lxml import etree
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from xoev.exceptions import (
    EntityDeclarationError,
    ExternalDTDError,
    ExternalEntityError,
    ForbiddenDoctypeError,
    InputEncodingError,
    InputTooLargeError,
    NestingTooDeepError,
    NotXMLError,
    SchemaError,
    UnknownDocumentError,
    UnusableInputError,
    XoevError,
)
from xoev.message import MessageInfo, inspect_message
from xoev.parsing import parse_xml
from xoev.registry import SchemaRegistry, default_registry
from xoev.validation import validate_tree

from ..directory import Agency, AmbiguousTokenError, Channel, Directory, UnknownAgencyError
from ..exceptions import (
    InvalidTransitionError,
    JournalError,
    JournalNotFoundError,
    JournalValueError,
    MessageConflictError,
)
from ..journal import DeliveryRecord, DeliveryState, Direction, Journal, MessageMeta, MessageRecord
from ..journal.records import normalize_uuid
from .config import InboxConfig
from .exceptions import ApiError, InboxConfigError

__all__ = [
    "ACCEPTED_STATE",
    "AcceptedHook",
    "InboxService",
    "create_app",
]

log = logging.getLogger("connectors.inbox")

#: Signature of ``on_accepted``: ``(record, info, created)``, called after the commit.
AcceptedHook = Callable[[MessageRecord, MessageInfo, bool], object]
#: The receipt's ``state``: the message waits for its recipient (inbox or hosted mailbox).
ACCEPTED_STATE = DeliveryState.DELIVERED.value
UUID_HEADER = "X-Nachrichten-UUID"
RECIPIENT_HEADER = "X-Empfaenger"
SHA512_HEADER = "X-Content-SHA512"
_BODY_SOURCE = "message body"
_MAX_HEADER_SHOWN = 80
_REALM = 'Bearer realm="amtsbote inbox"'


# ----------------------------------------------------------------------------- API models
# Used for the OpenAPI description; answers are built as plain dicts on the hot path.


class ReceiptModel(BaseModel):
    """Acknowledgement of a delivered message."""

    nachrichtenUUID: str = Field(description="The message's nachrichtenUUID (lower case).")
    received_at: str = Field(description="When this inbox first stored it (ISO 8601, UTC).")
    sha512: str = Field(description="SHA-512 of the stored payload, 128 lower-case hex digits.")
    state: str = Field(description="Always `delivered`: stored, waiting for its recipient.")
    recipient: str = Field(description="Agency id of the recipient (inbox or hosted mailbox).")


class FindingModel(BaseModel):
    severity: str
    message: str
    rule: str
    line: int | None = None
    xpath: str | None = None


class ErrorModel(BaseModel):
    """Every refusal: a stable ``error`` code and a ``detail`` naming what and where; some
    errors add fields (``findings``, ``line``, ``column``, ``nachrichtenUUID``, ``limit``)."""

    model_config = {"extra": "allow"}

    error: str = Field(description="Machine-readable error code.")
    detail: str = Field(description="What is wrong and where.")
    findings: list[FindingModel] | None = Field(
        default=None, description="invalid_message: the validation findings."
    )


class MailboxEntryModel(BaseModel):
    nachrichtenUUID: str
    standard: str
    version: str
    message_type: str
    author: str | None = Field(description="Behördenkennung of the author (praefix:kennung).")
    sender: str | None = Field(description="Agency id that delivered the message.")
    received_at: str
    size: int = Field(description="Bytes of the XML payload.")
    sha512: str


class MailboxModel(BaseModel):
    agency: str
    count: int
    messages: list[MailboxEntryModel]


class AckModel(BaseModel):
    nachrichtenUUID: str
    recipient: str
    state: str = Field(description="`fetched`.")
    fetched_at: str


class DeliveryModel(BaseModel):
    recipient: str
    state: str
    updated_at: str


class StatusChangeModel(BaseModel):
    at: str
    direction: str
    recipient: str
    from_state: str | None = Field(alias="from")
    to: str
    actor: str


class StatusModel(BaseModel):
    nachrichtenUUID: str
    sender: str | None
    message_type: str
    received_at: str
    sha512: str
    state: str | None = Field(description="Current state of the (first) inbound delivery.")
    deliveries: list[DeliveryModel]
    history: list[StatusChangeModel]


class HealthModel(BaseModel):
    status: str
    agency: str
    mailboxes: list[str]
    journal: str


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorModel} for status in statuses}


# ----------------------------------------------------------------------------- the service


def _shown(value: str) -> str:
    """A header value for an error text: repr, shortened."""
    text = repr(value)
    return text if len(text) <= _MAX_HEADER_SHOWN else text[: _MAX_HEADER_SHOWN - 1] + "…"


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""


def _is_xml_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/xml", "text/xml"):
        return True
    return media.startswith("application/") and media.endswith("+xml")


_UNUSABLE_CODES: tuple[tuple[type[UnusableInputError], str], ...] = (
    (ExternalEntityError, "external_entity"),
    (EntityDeclarationError, "entity_declaration"),
    (ExternalDTDError, "external_dtd"),
    (ForbiddenDoctypeError, "doctype"),
    (InputEncodingError, "encoding"),
    (NestingTooDeepError, "too_deep"),
    (NotXMLError, "not_xml"),
)


def _unusable(exc: UnusableInputError) -> ApiError:
    """The answer for input the hardened parser refused."""
    if isinstance(exc, InputTooLargeError):
        return ApiError(413, "too_large", str(exc), limit=exc.limit)
    if isinstance(exc, UnknownDocumentError):
        return ApiError(
            422,
            "unknown_document",
            str(exc),
            namespace=exc.namespace,
            supported=list(exc.supported),
        )
    code = next((c for cls, c in _UNUSABLE_CODES if isinstance(exc, cls)), "unusable_input")
    return ApiError(400, code, str(exc), line=exc.line, column=exc.column)


class InboxService:
    """What the endpoints do, without HTTP: one instance per app (``app.state.inbox``).

    Thread-safe: it holds no per-request state; the journal and the registry are thread-safe."""

    def __init__(
        self,
        agency_id: str,
        *,
        journal: Journal,
        directory: Directory,
        config: InboxConfig | None = None,
        on_accepted: AcceptedHook | None = None,
        registry: SchemaRegistry | None = None,
    ) -> None:
        try:
            agency = directory.get(agency_id)
        except UnknownAgencyError as exc:
            raise InboxConfigError("agency", str(exc)) from exc
        if agency.channel is not Channel.HTTP:
            raise InboxConfigError(
                "agency",
                f"{agency.id} has channel {agency.channel.value}; only agencies with channel "
                "http run an inbox service",
            )
        self.agency = agency
        self.journal = journal
        self.directory = directory
        self.config = config or InboxConfig()
        self.on_accepted = on_accepted
        if registry is None:
            registry = (
                SchemaRegistry(self.config.schema_path)
                if self.config.schema_path
                else default_registry()
            )
        self.registry = registry
        self.hosted: tuple[str, ...] = tuple(a.id for a in directory.hosted_by(agency.id))
        #: Agencies whose messages this inbox takes: its own and the hosted mailboxes.
        self.served: frozenset[str] = frozenset((agency.id, *self.hosted))
        self.actor = f"inbox:{agency.id}"
        self._parser_config = self.config.parser_config()

    # -- authentication

    def authenticate(self, token: str | None) -> Agency:
        if not token:
            raise ApiError(
                401,
                "unauthorized",
                "no bearer token: send 'Authorization: Bearer <token of your agency>'",
                headers={"WWW-Authenticate": _REALM},
            )
        try:
            agency = self.directory.authenticate(token)
        except AmbiguousTokenError as exc:
            log.error("inbox %s: directory problem: %s", self.agency.id, exc)
            agency = None
        if agency is None:
            raise ApiError(
                401,
                "invalid_token",
                "the bearer token belongs to no agency of the directory",
                headers={"WWW-Authenticate": _REALM + ', error="invalid_token"'},
            )
        return agency

    # -- POST /v1/messages

    def accept(
        self,
        body: bytes,
        sender: Agency,
        *,
        header_uuid: str | None = None,
        header_recipient: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Check and store one message; returns ``(status, receipt)`` or raises ApiError."""
        try:
            tree = parse_xml(body, config=self._parser_config, source=_BODY_SOURCE)
        except UnusableInputError as exc:
            raise _unusable(exc) from exc
        info = inspect_message(tree, registry=self.registry)
        # Cheap checks on the header first: a message that cannot be for us, or is sent in
        # another agency's name, is refused before the costly validation.
        self._check_author(info, sender)
        recipient = self._recipient(info, header_recipient)
        self._validate(tree)
        if recipient is None:
            raise ApiError(
                422,
                "no_recipient",
                f"no recipient: the message names no reader (leser) and the {RECIPIENT_HEADER} "
                "header is missing",
            )
        if info.author is None and self.config.require_author_match:
            raise ApiError(
                422,
                "no_author",
                "the Nachrichtenkopf names no author (autor), so the sender cannot be checked",
            )
        meta = self._meta(info)
        self._check_header_uuid(header_uuid, info, meta)
        try:
            record, created = self.journal.record_inbound(
                body,
                meta,
                sender_agency=sender.id,
                recipient=recipient.id,
                initial_state=DeliveryState.DELIVERED,
                actor=self.actor,
            )
        except MessageConflictError as exc:
            log.warning(
                "inbox %s: message %s from %s refused: same nachrichtenUUID, other payload",
                self.agency.id,
                meta.nachrichten_uuid,
                sender.id,
            )
            raise ApiError(
                409,
                "conflict",
                f"nachrichtenUUID {meta.nachrichten_uuid} was delivered before with a different "
                "payload; the first message stays. Use a new nachrichtenUUID for a new message.",
                nachrichtenUUID=meta.nachrichten_uuid,
            ) from exc
        except JournalValueError as exc:
            raise ApiError(
                422, "invalid_header", f"Nachrichtenkopf: {exc}", field=exc.field
            ) from exc
        except JournalError as exc:
            raise self._unavailable("record_inbound", exc) from exc
        if created:
            log.debug(
                "inbox %s: accepted %s (%s) from %s for %s",
                self.agency.id,
                record.nachrichten_uuid,
                record.message_type,
                sender.id,
                recipient.id,
            )
        self._call_hook(record, info, created)
        receipt = {
            "nachrichtenUUID": record.nachrichten_uuid,
            "received_at": record.recorded_at.isoformat(),
            "sha512": record.payload_sha512,
            "state": ACCEPTED_STATE,
            "recipient": recipient.id,
        }
        return (202 if created else 200), receipt

    def _check_author(self, info: MessageInfo, sender: Agency) -> None:
        if not self.config.require_author_match or info.author is None:
            return
        try:
            author = self.directory.by_behoerdenkennung(info.author)
        except UnknownAgencyError:
            author = None
        if author is None or author.id != sender.id:
            raise ApiError(
                403,
                "author_mismatch",
                f"the author (autor) of the Nachrichtenkopf, {info.author}, is not the "
                f"authenticated sender {sender.id} ({sender.behoerdenkennung}); an agency may "
                "only send in its own name",
                author=info.author,
                sender=sender.id,
            )

    def _recipient(self, info: MessageInfo, header: str | None) -> Agency | None:
        by_header: Agency | None = None
        if header is not None:
            name = header.strip()
            try:
                by_header = self.directory.get(name)
            except UnknownAgencyError:
                raise ApiError(
                    422,
                    "unknown_recipient",
                    f"header {RECIPIENT_HEADER}: {_shown(name)} is no agency id of the directory",
                ) from None
        by_reader: Agency | None = None
        if info.reader is not None:
            try:
                by_reader = self.directory.by_behoerdenkennung(info.reader)
            except UnknownAgencyError:
                raise ApiError(
                    422,
                    "unknown_recipient",
                    f"the reader (leser) of the Nachrichtenkopf, {_shown(info.reader)}, is no "
                    "agency of the directory",
                ) from None
        if by_header is not None and by_reader is not None and by_header.id != by_reader.id:
            raise ApiError(
                422,
                "recipient_mismatch",
                f"header {RECIPIENT_HEADER} names {by_header.id}, but the reader (leser) of the "
                f"Nachrichtenkopf is {by_reader.id} ({by_reader.behoerdenkennung})",
            )
        target = by_header or by_reader
        if target is not None and target.id not in self.served:
            try:
                where = self.directory.delivery_endpoint(target.id) or "its drop directory"
            except UnknownAgencyError:  # pragma: no cover - target came from the directory
                where = "?"
            raise ApiError(
                422,
                "recipient_not_served",
                f"the message is for {target.id}, which this inbox ({self.agency.id}) neither "
                f"is nor hosts a mailbox for; deliver it to {where}",
                recipient=target.id,
            )
        return target

    def _validate(self, tree: etree._ElementTree) -> None:
        try:
            report = validate_tree(tree, source=_BODY_SOURCE, registry=self.registry)
        except UnusableInputError as exc:
            raise _unusable(exc) from exc
        except SchemaError as exc:
            log.error("inbox %s: cannot validate: %s", self.agency.id, exc)
            raise ApiError(
                503,
                "schema_unavailable",
                f"this inbox cannot check the message now: {exc}",
                headers={"Retry-After": str(self.config.retry_after)},
            ) from exc
        if not report.ok:
            errors = sum(1 for f in report.findings if f.severity.value == "error")
            first = next(f for f in report.findings if f.severity.value == "error")
            raise ApiError(
                422,
                "invalid_message",
                f"{errors} error finding(s) in {report.standard} {report.version} message "
                f"{report.message_type}; first: {first}",
                nachrichtenUUID=report.nachrichten_uuid,
                standard=report.standard,
                version=report.version,
                message_type=report.message_type,
                findings=[f.to_dict() for f in report.findings],
            )

    @staticmethod
    def _meta(info: MessageInfo) -> MessageMeta:
        if info.nachrichten_uuid is None:
            raise ApiError(
                422,
                "no_uuid",
                "the Nachrichtenkopf has no nachrichtenUUID "
                "(nachrichtenkopf/identifikation.nachricht/nachrichtenUUID)",
            )
        try:
            return MessageMeta.from_info(info)
        except JournalValueError as exc:
            raise ApiError(
                422, "invalid_header", f"Nachrichtenkopf: {exc}", field=exc.field
            ) from exc

    @staticmethod
    def _check_header_uuid(header: str | None, info: MessageInfo, meta: MessageMeta) -> None:
        if header is None:
            return
        try:
            given = normalize_uuid(header, UUID_HEADER)
        except JournalValueError:
            raise ApiError(
                422, "invalid_header", f"header {UUID_HEADER}: {_shown(header)} is not a UUID"
            ) from None
        known = {meta.nachrichten_uuid, (info.nachrichten_uuid or "").strip().lower()}
        if given not in known:
            raise ApiError(
                422,
                "uuid_mismatch",
                f"header {UUID_HEADER} is {given}, but the message's nachrichtenUUID is "
                f"{meta.nachrichten_uuid}",
                nachrichtenUUID=meta.nachrichten_uuid,
            )

    def _call_hook(self, record: MessageRecord, info: MessageInfo, created: bool) -> None:
        if self.on_accepted is None:
            return
        try:
            self.on_accepted(record, info, created)
        except Exception as exc:
            # The message is committed; the answer stays 202/200. Only the class name is
            # logged: an exception text might quote the payload.
            log.error(
                "inbox %s: on_accepted failed for message %s: %s",
                self.agency.id,
                record.nachrichten_uuid,
                type(exc).__name__,
            )
            try:
                self.journal.log_event(
                    "inbox.hook_failed",
                    actor=self.actor,
                    nachrichten_uuid=record.nachrichten_uuid,
                    detail={"error_class": type(exc).__name__, "created": created},
                )
            except JournalError as journal_exc:
                log.error(
                    "inbox %s: could not record the hook failure of %s: %s",
                    self.agency.id,
                    record.nachrichten_uuid,
                    type(journal_exc).__name__,
                )

    def _unavailable(self, operation: str, exc: JournalError) -> ApiError:
        log.error("inbox %s: journal failed in %s: %s", self.agency.id, operation, exc)
        return ApiError(
            503,
            "journal_unavailable",
            "the inbox's journal is unavailable; nothing was stored — retry later",
            headers={"Retry-After": str(self.config.retry_after)},
        )

    # -- mailbox

    def _mailbox_owner(self, caller: Agency) -> None:
        if caller.id not in self.served:
            raise ApiError(
                403,
                "no_mailbox_here",
                f"agency {caller.id} has no mailbox on the inbox of {self.agency.id}",
            )

    def _delivery(self, caller: Agency, nachrichten_uuid: str) -> DeliveryRecord:
        """The inbound delivery of ``nachrichten_uuid`` to ``caller`` (404 unknown, 403
        another agency's)."""
        try:
            deliveries = self.journal.deliveries(
                nachrichten_uuid=nachrichten_uuid, direction=Direction.INBOUND
            )
        except JournalError as exc:
            raise self._unavailable("deliveries", exc) from exc
        if not deliveries:
            raise ApiError(
                404, "not_found", f"no message {nachrichten_uuid} in this inbox"
            )
        for delivery in deliveries:
            if delivery.recipient == caller.id:
                return delivery
        raise ApiError(
            403,
            "forbidden",
            f"message {nachrichten_uuid} is not in the mailbox of agency {caller.id}",
        )

    def mailbox(self, caller: Agency, limit: int | None = None) -> dict[str, Any]:
        self._mailbox_owner(caller)
        try:
            records = self.journal.mailbox(
                caller.id, limit=limit or self.config.mailbox_page_size
            )
        except JournalError as exc:
            raise self._unavailable("mailbox", exc) from exc
        return {
            "agency": caller.id,
            "count": len(records),
            "messages": [
                {
                    "nachrichtenUUID": r.nachrichten_uuid,
                    "standard": r.standard,
                    "version": r.version,
                    "message_type": r.message_type,
                    "author": r.author,
                    "sender": r.sender_agency,
                    "received_at": _iso(r.recorded_at),
                    "size": r.size,
                    "sha512": r.payload_sha512,
                }
                for r in records
            ],
        }

    def fetch(self, caller: Agency, nachrichten_uuid: str) -> tuple[bytes, DeliveryRecord]:
        delivery = self._delivery(caller, nachrichten_uuid)
        try:
            payload = self.journal.payload(nachrichten_uuid, direction=Direction.INBOUND)
        except JournalError as exc:
            raise self._unavailable("payload", exc) from exc
        log.debug("inbox %s: %s fetched %s", self.agency.id, caller.id, nachrichten_uuid)
        return payload, delivery

    def ack(self, caller: Agency, nachrichten_uuid: str) -> dict[str, Any]:
        self._delivery(caller, nachrichten_uuid)
        try:
            delivery = self.journal.mark_fetched(nachrichten_uuid, caller.id, actor=caller.id)
        except InvalidTransitionError as exc:
            raise ApiError(
                409,
                "invalid_state",
                f"message {nachrichten_uuid} cannot be acknowledged: {exc}",
            ) from exc
        except JournalNotFoundError as exc:  # pragma: no cover - checked just before
            raise ApiError(404, "not_found", str(exc)) from exc
        except JournalError as exc:
            raise self._unavailable("mark_fetched", exc) from exc
        return {
            "nachrichtenUUID": delivery.nachrichten_uuid,
            "recipient": delivery.recipient,
            "state": delivery.state.value,
            "fetched_at": _iso(delivery.updated_at),
        }

    # -- status

    def status(self, caller: Agency, nachrichten_uuid: str) -> dict[str, Any]:
        try:
            record = self.journal.get_message(nachrichten_uuid, direction=Direction.INBOUND)
        except JournalNotFoundError:
            raise ApiError(
                404, "not_found", f"no message {nachrichten_uuid} in this inbox"
            ) from None
        except JournalError as exc:
            raise self._unavailable("get_message", exc) from exc
        if record.sender_agency != caller.id:
            raise ApiError(
                403,
                "forbidden",
                f"only the sender of message {nachrichten_uuid} may read its status",
            )
        try:
            history = self.journal.transport_report(nachrichten_uuid)
            deliveries = self.journal.deliveries(
                nachrichten_uuid=nachrichten_uuid, direction=Direction.INBOUND
            )
        except JournalError as exc:
            raise self._unavailable("transport_report", exc) from exc
        return {
            "nachrichtenUUID": record.nachrichten_uuid,
            "sender": record.sender_agency,
            "message_type": record.message_type,
            "received_at": _iso(record.recorded_at),
            "sha512": record.payload_sha512,
            "state": deliveries[0].state.value if deliveries else None,
            "deliveries": [
                {"recipient": d.recipient, "state": d.state.value, "updated_at": _iso(d.updated_at)}
                for d in deliveries
            ],
            "history": [
                {
                    "at": _iso(change.at),
                    "direction": change.direction.value,
                    "recipient": change.recipient,
                    "from": change.from_state.value if change.from_state else None,
                    "to": change.to_state.value,
                    "actor": change.actor,
                }
                for change in history
            ],
        }

    # -- start-up

    def warm_up(self) -> None:
        """Compile the available schema bundles and load the codelists, so that the first
        message does not pay for it. Problems are logged, not raised (the inbox then answers
        503 ``schema_unavailable`` for messages of that standard)."""
        for status in self.registry.status():
            if not status.available:
                continue
            try:
                self.registry.schema(status.version)
            except SchemaError as exc:
                log.warning("inbox %s: %s", self.agency.id, exc)
        try:
            self.registry.codelists  # noqa: B018 - loads on first access
        except XoevError as exc:
            log.warning("inbox %s: codelists: %s", self.agency.id, exc)

    # -- health

    def health(self) -> tuple[int, dict[str, Any]]:
        body = {
            "status": "ok",
            "agency": self.agency.id,
            "mailboxes": list(self.hosted),
            "journal": self.journal.dialect,
        }
        try:
            self.journal.check_schema()
        except JournalError as exc:
            log.warning("inbox %s: health check: %s", self.agency.id, exc)
            body["status"] = "unavailable"
            return 503, body
        return 200, body


# ----------------------------------------------------------------------------- HTTP


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) a declared or streamed size above ``limit`` without
    reading on."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(
                400, "bad_request", f"header Content-Length: {_shown(declared)} is not a number"
            ) from None
        if size > limit:
            raise ApiError(
                413,
                "too_large",
                f"Content-Length {size} exceeds the limit of {limit} bytes",
                limit=limit,
                headers={"Connection": "close"},
            )
    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ApiError(
                    413,
                    "too_large",
                    f"body exceeds the limit of {limit} bytes (stopped reading at {received})",
                    limit=limit,
                    headers={"Connection": "close"},
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(
            400, "incomplete_body", f"the client went away after {received} bytes of the body"
        ) from None
    return b"".join(chunks)


def _validation_error(exc: RequestValidationError) -> ApiError:
    errors = []
    for item in exc.errors():
        loc = ".".join(str(part) for part in item.get("loc", ()))
        errors.append({"loc": loc, "msg": str(item.get("msg", ""))})
    text = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors) or "invalid request"
    return ApiError(422, "invalid_request", text, errors=errors)


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="agencyToken",
    description="The bearer token of the calling agency (directory `token_env`).",
)


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Agency:
    """The authenticated calling agency (401 otherwise)."""
    service: InboxService = request.app.state.inbox
    return service.authenticate(credentials.credentials if credentials else None)


Caller = Annotated[Agency, Depends(_caller)]
MessageId = Annotated[uuid_module.UUID, PathParam(description="The message's nachrichtenUUID.")]
HeaderUuid = Annotated[
    str | None,
    Header(
        alias=UUID_HEADER,
        description="The message's nachrichtenUUID; checked against the message.",
    ),
]
HeaderRecipient = Annotated[
    str | None,
    Header(
        alias=RECIPIENT_HEADER,
        description="Agency id of the recipient (this inbox's agency or a hosted mailbox); "
        "checked against the reader (leser) of the message.",
    ),
]


def create_app(
    agency_id: str,
    *,
    journal: Journal,
    directory: Directory,
    config: InboxConfig | None = None,
    on_accepted: AcceptedHook | None = None,
    registry: SchemaRegistry | None = None,
) -> FastAPI:
    """The inbox service of ``agency_id`` (an http agency of ``directory``), storing into
    ``journal`` (owned by the caller: not closed by the app).

    ``on_accepted(record, info, created)`` is called after the commit of every accepted message
    — ``created`` is False for a repeated delivery (a chance to catch up when an earlier call
    was lost, e.g. by a crash between commit and hook; it must be idempotent). It runs in the
    request's worker thread before the answer is sent; exceptions are logged and recorded as
    event ``inbox.hook_failed`` and do not change the answer. ``registry``: the XÖV schema
    registry (default: from ``config.schema_path`` or the process-wide one).
    Raises :class:`InboxConfigError` for an agency that cannot run an inbox."""
    service = InboxService(
        agency_id,
        journal=journal,
        directory=directory,
        config=config,
        on_accepted=on_accepted,
        registry=registry,
    )
    cfg = service.config

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.warm_up)
        yield

    app = FastAPI(
        lifespan=lifespan,
        title=f"amtsbote inbox of {service.agency.id}",
        version="1",
        summary="Receives XÖV messages for one agency and keeps the mailboxes it hosts.",
        docs_url="/docs" if cfg.docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if cfg.docs else None,
    )
    app.state.inbox = service
    accept_slots = anyio.CapacityLimiter(cfg.workers)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        if exc.status >= 500:
            log.warning("inbox %s: %s %s → %s", service.agency.id, request.method,
                        request.url.path, exc.code)
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return await api_error(request, _validation_error(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, f"http_{exc.status_code}"
        )
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            detail = f"no such resource: {request.method} {request.url.path}"
        return JSONResponse(
            {"error": code, "detail": detail},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error(
            "inbox %s: %s %s failed: %s",
            service.agency.id,
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return JSONResponse(
            {"error": "internal_error", "detail": "internal error; nothing was accepted"},
            status_code=500,
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)

    @app.get(
        "/healthz",
        tags=["service"],
        summary="Liveness and journal check",
        response_model=None,
        responses={200: {"model": HealthModel}, 503: {"model": HealthModel}},
    )
    def healthz() -> Response:
        status, body = service.health()
        return JSONResponse(body, status_code=status)

    @app.post(
        "/v1/messages",
        tags=["messages"],
        summary="Deliver an XÖV message",
        status_code=202,
        response_model=None,
        responses={
            202: {"model": ReceiptModel, "description": "Stored (first delivery)."},
            200: {"model": ReceiptModel, "description": "Repeat: stored before, same receipt."},
            **_errors(400, 401, 403, 409, 413, 415, 422, 503),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": f"The XÖV message (at most {cfg.max_body_bytes} bytes).",
                "content": {
                    "application/xml": {"schema": {"type": "string", "format": "binary"}},
                    "text/xml": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    async def post_message(
        request: Request,
        sender: Caller,
        x_nachrichten_uuid: HeaderUuid = None,
        x_empfaenger: HeaderRecipient = None,
    ) -> Response:
        if not _is_xml_type(request.headers.get("content-type")):
            shown = _shown(request.headers.get("content-type") or "")
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type {shown} is not XML; send application/xml",
            )
        body = await _read_body(request, cfg.max_body_bytes)
        status, receipt = await anyio.to_thread.run_sync(
            functools.partial(
                service.accept,
                body,
                sender,
                header_uuid=x_nachrichten_uuid,
                header_recipient=x_empfaenger,
            ),
            limiter=accept_slots,
        )
        return JSONResponse(receipt, status_code=status)

    @app.get(
        "/v1/messages/{nachrichten_uuid}/status",
        tags=["messages"],
        summary="Transport report of a delivered message (for its sender)",
        response_model=None,
        responses={200: {"model": StatusModel}, **_errors(401, 403, 404, 422, 503)},
    )
    def message_status(nachrichten_uuid: MessageId, agency: Caller) -> Response:
        return JSONResponse(service.status(agency, str(nachrichten_uuid)))

    @app.get(
        "/v1/mailbox",
        tags=["mailbox"],
        summary="List the messages waiting in the calling agency's mailbox",
        response_model=None,
        responses={200: {"model": MailboxModel}, **_errors(401, 403, 422, 503)},
    )
    def list_mailbox(
        agency: Caller,
        limit: int | None = Query(
            None, ge=1, le=cfg.mailbox_page_max, description="At most this many, oldest first."
        ),
    ) -> Response:
        return JSONResponse(service.mailbox(agency, limit))

    @app.get(
        "/v1/mailbox/{nachrichten_uuid}",
        tags=["mailbox"],
        summary="Fetch a message from the calling agency's mailbox",
        response_model=None,
        responses={
            200: {
                "description": "The XÖV message as delivered.",
                "content": {"application/xml": {"schema": {"type": "string"}}},
            },
            **_errors(401, 403, 404, 422, 503),
        },
    )
    def fetch_message(nachrichten_uuid: MessageId, agency: Caller) -> Response:
        payload, delivery = service.fetch(agency, str(nachrichten_uuid))
        return Response(
            payload,
            media_type="application/xml",
            headers={
                UUID_HEADER: delivery.nachrichten_uuid,
                SHA512_HEADER: hashlib.sha512(payload).hexdigest(),
                "X-Delivery-State": delivery.state.value,
            },
        )

    @app.post(
        "/v1/mailbox/{nachrichten_uuid}/ack",
        tags=["mailbox"],
        summary="Confirm a fetched message (delivery state → fetched)",
        response_model=None,
        responses={200: {"model": AckModel}, **_errors(401, 403, 404, 409, 422, 503)},
    )
    def ack_message(nachrichten_uuid: MessageId, agency: Caller) -> Response:
        return JSONResponse(service.ack(agency, str(nachrichten_uuid)))

    return app
