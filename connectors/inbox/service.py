"""The inbox service without HTTP: accepting one message (checks, journal, hook), the sender's
transport report, health. The HTTP layer is :mod:`.routes` (one router per group, answers
described by :mod:`.schemas`), the mailboxes :mod:`.mailbox`, the refusals :mod:`.errors`, the
wiring :func:`connectors.inbox.app.create_app`.

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

import logging
from collections.abc import Callable
from typing import Any

from lxml import etree

from xoev.exceptions import SchemaError, UnusableInputError, XoevError
from xoev.message import MessageInfo, inspect_message
from xoev.parsing import parse_xml
from xoev.registry import SchemaRegistry, default_registry
from xoev.validation import validate_tree

from ..directory import Agency, AmbiguousTokenError, Channel, Directory, UnknownAgencyError
from ..exceptions import (
    JournalError,
    JournalNotFoundError,
    JournalValueError,
    MessageConflictError,
)
from ..journal import DeliveryState, Direction, Journal, MessageMeta, MessageRecord
from ..journal.records import normalize_uuid
from .config import InboxConfig
from .errors import journal_unavailable, unusable_input
from .exceptions import ApiError, InboxConfigError
from .mailbox import Mailboxes, iso

__all__ = [
    "ACCEPTED_STATE",
    "RECIPIENT_HEADER",
    "SHA512_HEADER",
    "UUID_HEADER",
    "AcceptedHook",
    "InboxService",
    "shown",
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


def shown(value: str) -> str:
    """A header value for an error text: repr, shortened."""
    text = repr(value)
    return text if len(text) <= _MAX_HEADER_SHOWN else text[: _MAX_HEADER_SHOWN - 1] + "…"


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
        #: The pull mailboxes of :attr:`served` (list, fetch, ack).
        self.mailboxes = Mailboxes(
            agency.id, journal=journal, served=self.served, config=self.config
        )
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
            raise unusable_input(exc) from exc
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
                    f"header {RECIPIENT_HEADER}: {shown(name)} is no agency id of the directory",
                ) from None
        by_reader: Agency | None = None
        if info.reader is not None:
            try:
                by_reader = self.directory.by_behoerdenkennung(info.reader)
            except UnknownAgencyError:
                raise ApiError(
                    422,
                    "unknown_recipient",
                    f"the reader (leser) of the Nachrichtenkopf, {shown(info.reader)}, is no "
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
            raise unusable_input(exc) from exc
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
                422, "invalid_header", f"header {UUID_HEADER}: {shown(header)} is not a UUID"
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
        return journal_unavailable(
            self.agency.id, operation, exc, retry_after=self.config.retry_after
        )

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
            "received_at": iso(record.recorded_at),
            "sha512": record.payload_sha512,
            "state": deliveries[0].state.value if deliveries else None,
            "deliveries": [
                {"recipient": d.recipient, "state": d.state.value, "updated_at": iso(d.updated_at)}
                for d in deliveries
            ],
            "history": [
                {
                    "at": iso(change.at),
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
