"""What the XTA 2 operations do, on the inbox's own journal and mailboxes (without HTTP): the
SOAP layer is :mod:`.xta`. Every operation gets the authenticated caller and the parsed request
and returns an :class:`Answer` (body elements, extra header blocks, attachments) or raises
:class:`~connectors.xta.exceptions.XtaFault`.

The refusals of :class:`~.service.InboxService` (``ApiError``) become the WSDL's faults by
:func:`fault_of`: invalid XÖV → MessageSchemaViolation (9050, with the findings), author not the
caller → PermissionDenied (9014), same MessageID other payload → ParameterIsNotValid (9024),
journal down → XTAWSTechnicalProblem (9030); a message not in the caller's mailbox or not sent by
the caller → InvalidMessageID (9070), whether it exists or not.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from xoev.message import MessageInfo, type_from_root

from ..directory import Agency, UnknownAgencyError
from ..exceptions import JournalError, JournalNotFoundError
from ..journal import DeliveryState, Direction, MessageRecord
from ..xta.exceptions import XtaFault
from ..xta.metadata import build_metadata, message_id_for, uuid_of_message_id
from ..xta.mtom import OutgoingPart, xop_include
from ..xta.namespaces import OSCI, OSCIMETA, WSA, XTA, q
from .exceptions import ApiError
from .service import InboxService
from .xta_state import ListCursors, Reservations

__all__ = ["Answer", "XtaOperations", "fault_of"]

_REPORT_CODES = "urn:amtsbote:xta:zustellstatus"
#: Delivery state → XTA MessageStatus/Status (0 offen, 1 grün, 2 gelb, 3 rot).
_STATUS = {
    DeliveryState.CREATED: 0,
    DeliveryState.SENT: 0,
    DeliveryState.DELIVERED: 0,
    DeliveryState.FAILED: 0,
    DeliveryState.FETCHED: 1,
    DeliveryState.DEAD: 3,
}
_SCHEMA_CODES = {"invalid_message", "unknown_document", "unknown_standard", "no_uuid", "no_author"}


@dataclass
class Answer:
    body: list[etree._Element] = field(default_factory=list)
    headers: list[etree._Element] = field(default_factory=list)
    attachments: list[OutgoingPart] = field(default_factory=list)
    cleanup: list[Any] = field(default_factory=list)
    """Callables run after the answer was sent (temporary container files)."""


def fault_of(exc: ApiError) -> XtaFault:
    """The XTA fault for a refusal of the inbox service."""
    status, code = exc.status, exc.code
    if status == 503:
        return XtaFault(
            "XTAWSTechnicalProblemException",
            "9030",
            exc.detail,
            sender_fault=False,
            status=503,
            headers=exc.headers,
        )
    if code in _SCHEMA_CODES:
        return XtaFault(
            "MessageSchemaViolationException",
            "9050",
            exc.detail,
            findings=exc.extra.get("findings", ()),
        )
    if code == "encoding":
        return XtaFault("MessageSchemaViolationException", "9051", exc.detail)
    if code == "author_mismatch":
        return XtaFault("PermissionDeniedException", "9014", exc.detail, status=403)
    if code in ("no_mailbox_here",):
        return XtaFault("PermissionDeniedException", "9013", exc.detail, status=403)
    if code == "conflict":
        return XtaFault("ParameterIsNotValidException", "9024", exc.detail)
    if status == 413:
        return XtaFault("ParameterIsNotValidException", "9023", exc.detail, status=413)
    if status in (404,) or code == "forbidden":
        return XtaFault("InvalidMessageIDException", "9070", exc.detail)
    if code in ("recipient_not_served", "unknown_recipient", "recipient_mismatch", "no_recipient"):
        return XtaFault("ParameterIsNotValidException", "9022", exc.detail)
    if status == 400:  # unusable XML (DOCTYPE, not well-formed …)
        return XtaFault("MessageSchemaViolationException", "9050", exc.detail)
    return XtaFault("ParameterIsNotValidException", "9000", exc.detail)


def _invalid_id(message_id: str) -> XtaFault:
    return XtaFault(
        "InvalidMessageIDException", "9070", f"MessageID {message_id} is not known for this account"
    )


def _technical(exc: JournalError) -> XtaFault:
    return XtaFault(
        "XTAWSTechnicalProblemException",
        "9030",
        f"the journal is unavailable ({type(exc).__name__})",
        sender_fault=False,
        status=503,
    )


def _parameter(reason: str, code: str = "9022") -> XtaFault:
    return XtaFault("ParameterIsNotValidException", code, reason)


def _iso(value: datetime) -> str:
    return value.isoformat()


class XtaOperations:
    """The operations of the three XTA ports for the inbox ``service``."""

    def __init__(self, service: InboxService) -> None:
        self.service = service
        self.reservations = Reservations()
        self.cursors = ListCursors()
        self.identity = f"amtsbote-inbox:{service.agency.id}"

    # -- shared

    def check_author_header(self, caller: Agency, author: etree._Element | None) -> None:
        """An ``oscimeta:Author`` header, when sent, must name the caller's Behördenkennung."""
        if author is None:
            return
        text = " ".join((author.findtext(q(OSCIMETA, "Identifier")) or "").split())
        self.require_own_kennung(caller, text, "Author")

    def require_own_kennung(self, caller: Agency, kennung: str, what: str) -> None:
        try:
            agency = self.service.directory.by_behoerdenkennung(kennung) if kennung else None
        except UnknownAgencyError:
            agency = None
        if agency is None or agency.id != caller.id:
            raise XtaFault(
                "PermissionDeniedException",
                "9014",
                f"the {what} identifier {kennung or '(none)'} is not the Behördenkennung of the "
                f"authenticated caller {caller.id} ({caller.behoerdenkennung})",
                status=403,
            )

    def _namespace(self, record: MessageRecord) -> str | None:
        for sv in self.service.registry.versions():
            if sv.standard == record.standard and sv.version == record.version:
                return sv.namespace
        return None

    def info_of(self, record: MessageRecord) -> MessageInfo:
        return MessageInfo(
            namespace=self._namespace(record),
            standard=record.standard,
            version=record.version,
            root=record.message_type,
            message_type=type_from_root(record.message_type) or record.message_type,
            nachrichten_uuid=record.nachrichten_uuid,
            erstellungszeitpunkt=None,
            author=record.author,
            reader=record.reader,
        )

    def metadata_of(
        self, record: MessageRecord, *, fetched: datetime | None = None
    ) -> etree._Element:
        return build_metadata(
            self.info_of(record),
            nachrichten_uuid=record.nachrichten_uuid,
            author=record.author or "unknown:unknown",
            reader=record.reader or "unknown:unknown",
            created=record.created_at,
            delivered=record.recorded_at,
            fetched=fetched,
            size=record.size,
        )

    def _record(self, nachrichten_uuid: str) -> MessageRecord:
        try:
            return self.service.journal.get_message(nachrichten_uuid, direction=Direction.INBOUND)
        except JournalNotFoundError as exc:
            raise _invalid_id(message_id_for(nachrichten_uuid)) from exc
        except JournalError as exc:
            raise _technical(exc) from exc

    @staticmethod
    def message_uuid(message_id: str | None) -> str:
        if not message_id:
            raise _parameter("no wsa:MessageID given", "9020")
        value = uuid_of_message_id(message_id)
        if value is None:
            raise _invalid_id(message_id)
        return value

    # -- ManagementPort

    def create_message_id(self, caller: Agency) -> Answer:
        value = self.reservations.reserve(caller.id)
        element = etree.Element(q(WSA, "MessageID"), nsmap={"wsa": WSA})
        element.text = message_id_for(value)
        return Answer(body=[element])

    def lookup_service(self, caller: Agency, request: etree._Element | None) -> Answer:
        if request is None or request.tag != q(XTA, "LookupServiceRequest"):
            raise _parameter("the Body needs an xta:LookupServiceRequest", "9020")
        namespaces = {sv.namespace for sv in self.service.registry.versions()}
        response = etree.Element(q(XTA, "LookupServiceResponse"), nsmap={"xta": XTA})
        results = etree.SubElement(response, q(XTA, "LookupServiceResultList"))
        for lookup in request.iter(q(XTA, "LookupService")):
            reader = lookup.find(q(OSCIMETA, "Reader"))
            service_type = (lookup.findtext(q(XTA, "ServiceType")) or "").strip()
            if reader is None or not service_type:
                raise _parameter("LookupService needs Reader and ServiceType", "9020")
            kennung = " ".join((reader.findtext(q(OSCIMETA, "Identifier")) or "").split())
            try:
                agency = self.service.directory.by_behoerdenkennung(kennung)
            except UnknownAgencyError:
                agency = None
            available = (
                agency is not None
                and agency.id in self.service.served
                and service_type in namespaces
            )
            result = etree.SubElement(results, q(XTA, "LookupServiceResult"))
            result.append(_copy(reader))
            etree.SubElement(result, q(XTA, "ServiceType")).text = service_type
            value = etree.SubElement(result, q(XTA, "IsServiceAvailableValue"))
            etree.SubElement(value, q(XTA, "ServiceIsAvailable")).text = (
                "true" if available else "false"
            )
        return Answer(body=[response])

    def transport_report(self, caller: Agency, message_id: str | None) -> Answer:
        key = self.message_uuid(message_id)
        try:
            status = self.service.status(caller, key)
        except ApiError as exc:
            raise fault_of(exc) from exc
        record = self._record(key)
        fetched = next(
            (datetime.fromisoformat(h["at"]) for h in status["history"] if h["to"] == "fetched"),
            None,
        )
        report = etree.Element(q(XTA, "TransportReport"), nsmap={"xta": XTA})
        report.append(self.metadata_of(record, fetched=fetched))
        etree.SubElement(report, q(XTA, "ReportTime")).text = _iso(datetime.now(UTC))
        etree.SubElement(report, q(XTA, "XTAServerIdentity")).text = self.identity
        message_status = etree.SubElement(report, q(XTA, "MessageStatus"))
        states = [DeliveryState(d["state"]) for d in status["deliveries"]]
        level = max((_STATUS[s] for s in states), default=0)
        if any(_STATUS[s] == 0 for s in states):
            level = 0  # still open for one recipient
        etree.SubElement(message_status, q(XTA, "Status")).text = str(level)
        if status["history"]:
            infos = etree.SubElement(message_status, q(XTA, "InfoList"))
            for change in status["history"]:
                info = etree.SubElement(infos, q(XTA, "Info"))
                etree.SubElement(info, q(XTA, "Timestamp")).text = change["at"]
                code = etree.SubElement(
                    info, q(XTA, "Code"), listURI=_REPORT_CODES, listVersionID="1"
                )
                etree.SubElement(code, "code").text = change["to"]
                etree.SubElement(info, q(XTA, "Reason")).text = (
                    f"{change['from'] or 'new'} → {change['to']} for {change['recipient']} "
                    f"({change['actor']})"
                )
        return Answer(body=[report])

    def cancel_message(self, caller: Agency, message_id: str | None) -> Answer:
        key = self.message_uuid(message_id)
        try:
            self.service.status(caller, key)
        except ApiError as exc:
            if exc.status in (403, 404):
                reason = f"MessageID {message_id} is no message sent by {caller.id}"
                raise _parameter(reason) from exc
            raise fault_of(exc) from exc
        raise XtaFault(
            "CancelDeniedException",
            "9101",
            "this inbox delivers at once (no NotBefore): the message is delivered already",
        )

    # -- MsgBoxPort

    def _waiting(self, caller: Agency) -> list[dict[str, Any]]:
        try:
            listing = self.service.mailboxes.list_messages(
                caller, self.service.config.mailbox_page_max
            )
        except ApiError as exc:
            raise fault_of(exc) from exc
        messages: list[dict[str, Any]] = listing["messages"]
        return messages

    def _status_entry(self, caller: Agency, key: str, form: str) -> etree._Element:
        record = self._record(key)
        if form == "MsgAtrributes":
            attributes = etree.Element(q(OSCI, "MsgAttributes"))
            etree.SubElement(attributes, q(WSA, "MessageID")).text = message_id_for(key)
            etree.SubElement(attributes, q(OSCI, "TypeOfBusinessScenario")).text = (
                self._namespace(record) or "urn:amtsbote:unknown"
            )
            etree.SubElement(attributes, q(OSCI, "MsgSize")).text = str(record.size)
            etree.SubElement(attributes, q(OSCI, "DeliveryTime")).text = _iso(record.recorded_at)
            return attributes
        return self.metadata_of(record)

    @staticmethod
    def _msgbox_response(request_id: str, pending: int | None) -> etree._Element:
        response = etree.Element(
            q(OSCI, "MsgBoxResponse"), nsmap={"osci": OSCI}, MsgBoxRequestID=request_id
        )
        if pending is None:
            etree.SubElement(
                response,
                q(OSCI, "NoMessageAvailable"),
                reason=OSCI + "/MsgBox/reasons/NoMatch",
            )
        else:
            etree.SubElement(response, q(OSCI, "ItemsPending")).text = str(pending)
        return response

    def _status_list(
        self, caller: Agency, keys: list[str], pending: int | None, request_id: str, form: str
    ) -> Answer:
        listing = etree.Element(q(OSCI, "MsgStatusList"), nsmap={"osci": OSCI, "wsa": WSA})
        entries = [self._status_entry(caller, k, form) for k in keys]
        # the schema orders all MsgAttributes before all MessageMetaData
        for entry in entries:
            listing.append(entry)
        return Answer(
            body=[listing],
            headers=[self._msgbox_response(request_id, pending if keys else None)],
        )

    def status_list(self, caller: Agency, request: etree._Element | None) -> Answer:
        if request is None or request.tag != q(OSCI, "MsgBoxStatusListRequest"):
            raise _parameter("the Body needs an osci:MsgBoxStatusListRequest", "9020")
        form = request.get("ListForm", "MessageMetaData")
        try:
            limit = int(request.get("maxListItems", "0")) or self.service.config.mailbox_page_size
        except ValueError:
            raise _parameter("maxListItems is not a number") from None
        keys = [m["nachrichtenUUID"] for m in self._waiting(caller)]
        wanted = self._selected_ids(request)
        if wanted is not None:
            keys = [k for k in keys if k in wanted]
        page, rest = keys[:limit], keys[limit:]
        request_id = self.cursors.open(caller.id, rest, form)
        return self._status_list(caller, page, len(rest), request_id, form)

    def next_status_list(self, caller: Agency, request: etree._Element | None) -> Answer:
        if request is None or request.tag != q(OSCI, "MsgBoxGetNextRequest"):
            raise _parameter("the Body needs an osci:MsgBoxGetNextRequest", "9020")
        request_id = request.get("MsgBoxRequestID", "")
        taken = self.cursors.take(request_id, caller.id, self.service.config.mailbox_page_size)
        if taken is None:
            answer = self._status_list(caller, [], None, request_id or "urn:unknown", "")
            answer.headers[0][0].set("reason", OSCI + "/MsgBox/reasons/RequestIdInvalid")
            return answer
        page, pending, form = taken
        return self._status_list(caller, page, pending, request_id, form)

    @staticmethod
    def _selected_ids(request: etree._Element) -> set[str] | None:
        selector = request.find(q(OSCI, "MsgSelector"))
        if selector is None:
            return None
        ids = [(e.text or "").strip() for e in selector.findall(q(WSA, "MessageID"))]
        if not ids:
            return None
        return {uuid_of_message_id(i) or i for i in ids}

    def get_message(self, caller: Agency, request: etree._Element | None) -> Answer:
        if request is None or request.tag != q(OSCI, "MsgBoxFetchRequest"):
            raise _parameter("the Body needs an osci:MsgBoxFetchRequest", "9020")
        wanted = self._selected_ids(request)
        if wanted:
            if len(wanted) != 1:
                raise _parameter("getMessage fetches one message: name one MessageID")
            key = next(iter(wanted))
        else:
            waiting = self._waiting(caller)
            if not waiting:
                raise XtaFault(
                    "InvalidMessageIDException", "9070", f"no message waits for {caller.id}"
                )
            key = waiting[0]["nachrichtenUUID"]
        return self._message_answer(caller, key, skip=())

    def next_message(self, caller: Agency, request: etree._Element | None) -> Answer:
        if request is None or request.tag != q(OSCI, "MsgBoxGetNextRequest"):
            raise _parameter("the Body needs an osci:MsgBoxGetNextRequest", "9020")
        seen = {
            uuid_of_message_id((e.text or "").strip()) or ""
            for e in request.findall(q(OSCI, "LastMsgReceived"))
        }
        waiting = [m["nachrichtenUUID"] for m in self._waiting(caller)]
        rest = [k for k in waiting if k not in seen]
        if not rest:
            raise XtaFault(
                "InvalidMessageIDException", "9070", f"no further message waits for {caller.id}"
            )
        return self._message_answer(caller, rest[0], skip=seen)

    def _message_answer(self, caller: Agency, key: str, *, skip: set[str] | tuple[()]) -> Answer:
        try:
            payload, delivery = self.service.mailboxes.fetch(caller, key)
        except ApiError as exc:
            raise fault_of(exc) from exc
        record = self._record(key)
        container = self.service.container_of(key, payload)
        cid = f"{key}@amtsbote"
        answer = Answer()
        if container is not None:
            part = OutgoingPart(cid, "application/zip", path=container)
            content_type, filename, size = (
                "application/zip",
                container.name,
                container.stat().st_size,
            )
            answer.cleanup.append(lambda: shutil.rmtree(container.parent, ignore_errors=True))
        else:
            part = OutgoingPart(cid, "application/xml", data=payload)
            content_type, filename, size = "application/xml", f"{key}.xml", len(payload)
        container_el = etree.Element(q(XTA, "GenericContentContainer"), nsmap={"xta": XTA})
        content = etree.SubElement(container_el, q(XTA, "ContentContainer"))
        message = etree.SubElement(
            content,
            q(XTA, "Message"),
            contentType=content_type,
            filename=filename,
            size=str(max(size, 1)),
        )
        message.append(xop_include(cid))
        waiting = [m["nachrichtenUUID"] for m in self._waiting(caller)]
        pending = len([k for k in waiting if k != key and k not in skip])
        fetched = delivery.updated_at if delivery.state is DeliveryState.FETCHED else None
        answer.body.append(container_el)
        answer.headers.extend(
            [
                self.metadata_of(record, fetched=fetched),
                self._msgbox_response(f"urn:uuid:{uuid.uuid4()}", pending),
            ]
        )
        answer.attachments.append(part)
        return answer

    def close(self, caller: Agency, request: etree._Element | None) -> Answer:
        if request is None or request.tag != q(OSCI, "MsgBoxCloseRequest"):
            raise _parameter("the Body needs an osci:MsgBoxCloseRequest", "9020")
        ids = [(e.text or "").strip() for e in request.findall(q(OSCI, "LastMsgReceived"))]
        keys = [self.message_uuid(i) for i in ids]
        mailboxes = self.service.mailboxes
        try:
            for key in keys:  # all checked before any is acknowledged
                mailboxes.fetch(caller, key)
            for key in keys:
                mailboxes.ack(caller, key)
        except ApiError as exc:
            raise fault_of(exc) from exc
        self.cursors.close(request.get("MsgBoxRequestID", ""))
        return Answer()


def _copy(element: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(element))
