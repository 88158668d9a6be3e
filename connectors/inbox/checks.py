"""The checks every incoming message passes before it is stored — the same for an XML body, an
xdomea container's XML and a file from another channel (:meth:`MessageChecks.check_message`):

hardened parse; the Nachrichtenkopf's author must be the authenticated sender and its recipient an
agency this inbox serves; validation (XSD, codelists, rules); nachrichtenUUID present and equal to
``X-Nachrichten-UUID`` when that is sent. Each refusal is an
:class:`~connectors.inbox.exceptions.ApiError` (the rules: :mod:`connectors.inbox.service`).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from lxml import etree

from xoev.exceptions import SchemaError, UnusableInputError
from xoev.message import MessageInfo, inspect_message
from xoev.parsing import ParserConfig, parse_xml
from xoev.registry import SchemaRegistry
from xoev.validation import validate_tree

from ..directory import Agency, Directory, UnknownAgencyError
from ..exceptions import JournalValueError
from ..journal import MessageMeta
from ..journal.records import normalize_uuid
from .config import InboxConfig
from .errors import unusable_input
from .exceptions import ApiError

__all__ = ["RECIPIENT_HEADER", "UUID_HEADER", "Checked", "MessageChecks", "shown"]

log = logging.getLogger("connectors.inbox")

UUID_HEADER = "X-Nachrichten-UUID"
RECIPIENT_HEADER = "X-Empfaenger"
_MAX_HEADER_SHOWN = 80


def shown(value: str) -> str:
    """A header value for an error text: repr, shortened."""
    text = repr(value)
    return text if len(text) <= _MAX_HEADER_SHOWN else text[: _MAX_HEADER_SHOWN - 1] + "…"


class Checked(NamedTuple):
    """A message that passed every check: its header, journal metadata and recipient."""

    info: MessageInfo
    meta: MessageMeta
    recipient: Agency


class MessageChecks:
    """The checks, as a base of :class:`~connectors.inbox.service.InboxService` (which sets the
    attributes below)."""

    agency: Agency
    directory: Directory
    config: InboxConfig
    registry: SchemaRegistry
    served: frozenset[str]

    def parse(self, body: bytes, *, config: ParserConfig, source: str) -> etree._ElementTree:
        """The hardened parse (400/413/422 for unusable input)."""
        try:
            return parse_xml(body, config=config, source=source)
        except UnusableInputError as exc:
            raise unusable_input(exc) from exc

    def check_message(
        self,
        tree: etree._ElementTree,
        sender: Agency,
        *,
        header_uuid: str | None,
        header_recipient: str | None,
        source: str,
    ) -> Checked:
        """Every check of an incoming message after parsing; raises ApiError."""
        info = inspect_message(tree, registry=self.registry)
        # Cheap checks on the header first: a message that cannot be for us, or is sent in
        # another agency's name, is refused before the costly validation.
        self._check_author(info, sender)
        recipient = self._recipient(info, header_recipient)
        self._validate(tree, source)
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
        return Checked(info, meta, recipient)

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

    def _validate(self, tree: etree._ElementTree, source: str) -> None:
        try:
            report = validate_tree(tree, source=source, registry=self.registry)
        except UnusableInputError as exc:
            raise unusable_input(exc) from exc
        except SchemaError as exc:
            # not a passing outage a retry would outlast: the operator must install the bundle
            # (a 503 with Retry-After made senders retry forever). 500: the fault is ours.
            log.error("inbox %s: cannot validate: %s", self.agency.id, exc)
            raise ApiError(
                500,
                "schema_missing",
                f"this inbox cannot check {_what(exc)} messages: the receiving agency has not "
                "installed its schema bundle (its log names what is missing). Retrying does not "
                "help until the agency's operator installs it; ask them",
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


def _what(exc: SchemaError) -> str:
    """``XGewerbeanzeige 2.2`` for a known version without bundle; no server paths to senders."""
    standard, version = getattr(exc, "standard", None), getattr(exc, "version", None)
    return f"{standard} {version}" if standard and version else "such"
