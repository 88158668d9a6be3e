"""The inbox service without HTTP: accepting one message (checks, journal, hook), the sender's
transport report, health. The HTTP layer is :mod:`.routes` (one router per group, answers
described by :mod:`.schemas`), the mailboxes :mod:`.mailbox`, the refusals :mod:`.errors`, the
wiring :func:`connectors.inbox.app.create_app`.

Endpoints (the integrator's description with examples is ``docs/inbox-api.md``; the OpenAPI
description is served at ``/openapi.json``, its viewer at ``/docs``)::

    GET  /healthz                          liveness + journal reachable
    POST /v1/messages                      deliver a message (bearer token of the SENDING agency)
    GET  /v1/mailbox                       list the calling agency's waiting messages
    GET  /v1/mailbox/{uuid}                fetch one message's XML (its container if it has files)
    POST /v1/mailbox/{uuid}/ack            confirm the fetch (delivery state → fetched)
    GET  /v1/messages/{uuid}/status        transport report (Laufzettel) for the message's sender

``POST /v1/messages``, in this order (the first failing step answers):

1. client certificate and/or bearer token → sending agency (:mod:`.identity`), else 401;
2. ``Content-Type`` an XML type (``application/xml``, ``text/xml``, ``application/*+xml``),
   else 415 — or ``application/zip``: an xdomea container, spooled to disk within
   ``InboxConfig.max_container_bytes`` and checked by :mod:`.containers` before its XML goes
   through the steps 4–10 below (:meth:`InboxService.accept_container`; other channels:
   :meth:`InboxService.accept_file`);
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

Repeats: a nachrichtenUUID is unique per sender (authenticated agency). The same sender's same
UUID with the same payload stores nothing new and answers **200** with the identical receipt
(``received_at`` of the first delivery); with a different payload 409 ``conflict`` (the first one
stays). Another sender's use of the same UUID neither blocks nor shows: its message is kept
under that sender's own journal key (:meth:`Journal.inbound_key`, keyed, unguessable), and the
status route answers the same 404 for a foreign UUID as for an unknown one.

A message for the serving agency itself and one for a hosted mailbox are stored alike: one
inbound delivery to the recipient in state ``delivered`` (waiting in the mailbox until fetched);
the receipt's ``state`` is always ``delivered``.

Threads: the body is read on the event loop; parsing, validation and the journal run in the
thread pool (one hop per message); the other endpoints are plain ``def`` endpoints, which FastAPI
runs in the thread pool.

Logs name agency ids, nachrichtenUUIDs, error codes and exception class names only — never
payload content or finding texts (they may quote personal data).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from xoev.container import Member, parse_container_name
from xoev.exceptions import ContainerError, SchemaError, XoevError
from xoev.message import MessageInfo
from xoev.parsing import ParserConfig
from xoev.registry import SchemaRegistry, default_registry

from ..directory import Agency, Channel, Directory, UnknownAgencyError
from ..exceptions import (
    JournalError,
    JournalNotFoundError,
    JournalValueError,
    MessageConflictError,
)
from ..journal import DeliveryState, Direction, Journal, MessageRecord
from . import containers
from .checks import RECIPIENT_HEADER, UUID_HEADER, Checked, MessageChecks, shown
from .config import InboxConfig
from .errors import journal_unavailable
from .exceptions import ApiError, InboxConfigError
from .guards import check_reference, client_address, record_refusal, throttled
from .identity import identify
from .mailbox import Mailboxes, iso
from .throttle import AuthThrottle

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
SHA512_HEADER = "X-Content-SHA512"
_BODY_SOURCE = "message body"


def _conflict(key: str) -> ApiError:
    return ApiError(
        409,
        "conflict",
        f"nachrichtenUUID {key} was delivered before with a different payload; the first "
        "message stays. Use a new nachrichtenUUID for a new message.",
        nachrichtenUUID=key,
    )


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413, "too_large", f"{size} bytes exceed the limit of {limit} bytes", limit=limit
    )


class InboxService(MessageChecks):
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
        #: refused logins per client address (429 beyond the limit)
        self.auth_throttle = AuthThrottle(
            limit=self.config.auth_failure_limit, window=self.config.auth_failure_window
        )
        self._container_parser = ParserConfig(
            max_bytes=max(self.config.container_limits.max_xml_bytes, 1),
            max_depth=self.config.max_depth,
            strict=True,
        )

    # -- authentication

    def identify(self, source: Mapping[str, Any] | str | None, token: str | None) -> Agency:
        """The calling agency by client certificate and/or bearer token — the one rule of
        :mod:`.identity` for every route group; :class:`ApiError` 401 otherwise. ``source``: the
        request's ASGI scope (or a certificate fingerprint, or None).

        A refusal is logged (address, code, the agency the token or certificate claimed if
        any — never the token) and recorded as a journal event; an address refused
        ``auth_failure_limit`` times in ``auth_failure_window`` seconds gets 429
        ``too_many_failures`` with ``Retry-After``, unchecked, until then (:mod:`.throttle`)."""
        address = client_address(source)
        if address is not None and (refusal := throttled(self.auth_throttle, address)):
            raise refusal
        try:
            return identify(self.directory, source, token, inbox=self.agency.id).agency
        except ApiError as exc:
            if exc.status in (401, 403):
                record_refusal(self.journal, self.auth_throttle, self.actor, address, exc)
            raise

    def authenticate(self, token: str | None) -> Agency:
        """The calling agency by bearer token alone (:meth:`identify` without a certificate)."""
        return self.identify(None, token)

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
        tree = self.parse(body, config=self._parser_config, source=_BODY_SOURCE)
        checked = self.check_message(
            tree,
            sender,
            header_uuid=header_uuid,
            header_recipient=header_recipient,
            source=_BODY_SOURCE,
        )
        return self._store(body, checked, sender)

    def accept_container(
        self,
        path: Path,
        sender: Agency,
        *,
        header_uuid: str | None = None,
        header_recipient: str | None = None,
        body_sha512: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Check and store an xdomea container (x-man zip at ``path``, any file name): hostile
        checks, the XML's checks as for :meth:`accept`, primary files as blobs attached to the
        message key (:mod:`.containers`). The receipt's ``sha512`` is the container file's
        (``body_sha512`` when the caller hashed it already). ``path`` is left as it is."""
        path = Path(path)
        with containers.temporary_dir(self.spool_dir) as tmp:
            try:
                parse_container_name(path.name)
                target = path
            except ContainerError:  # a body or a file without its x-man name
                target = tmp / containers.layout_name(path)
                target.symlink_to(path.resolve())
            read = containers.read_checked(
                target,
                label=target.name,
                limits=self.config.container_limits,
                registry=self.registry,
                parser=self._container_parser,
            )
            source = f"container {target.name}"
            tree = self.parse(read.xml, config=self._container_parser, source=source)
            checked = self.check_message(
                tree,
                sender,
                header_uuid=header_uuid,
                header_recipient=header_recipient,
                source=source,
            )
            return self._store(
                read.xml,
                checked,
                sender,
                files=read.files,
                label=target.name,
                receipt_sha512=body_sha512 or containers.sha512_of(path),
            )

    def accept_file(self, path: Path, sender: Agency, *, source: str) -> tuple[int, dict[str, Any]]:
        """Accept a message file from another channel (transfer directory, WebDAV): a ``.xml``
        message or a ``.zip`` xdomea container, by the same checks as ``POST /v1/messages``.
        ``sender``: the agency the channel authenticated; ``source``: names the channel and file
        for the log. Returns ``(status, receipt)``; a refusal raises :class:`ApiError` (its
        ``status``, ``code`` and ``detail`` say why). The file is not changed or removed."""
        path = Path(path)
        suffix = path.suffix.lower()
        log.info("inbox %s: file from %s (%s) via %s", self.agency.id, sender.id, suffix, source)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ApiError(400, "unreadable_file", f"{path.name}: {exc.strerror or exc}") from exc
        if suffix == ".zip":
            if size > self.config.max_container_bytes:
                raise _too_large(size, self.config.max_container_bytes)
            return self.accept_container(path, sender)
        if suffix == ".xml":
            if size > self.config.max_body_bytes:
                raise _too_large(size, self.config.max_body_bytes)
            return self.accept(path.read_bytes(), sender)
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{path.name}: neither a .xml message nor a .zip container",
        )

    def _store(
        self,
        payload: bytes,
        checked: Checked,
        sender: Agency,
        *,
        files: Mapping[str, Member] | None = None,
        label: str = "",
        receipt_sha512: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Record a checked message (and put/attach a container's files); hook; receipt."""
        info, meta, recipient = checked
        key = meta.nachrichten_uuid
        self._check_reference(checked, sender)
        blobs = self.journal.blobs
        try:
            if files:
                stored = self._check_repeat(key, payload, sender)
                containers.check_attachments(blobs, stored, files)
                containers.put_files(blobs, files, label)
            record, created = self.journal.record_inbound(
                payload,
                meta,
                sender_agency=sender.id,
                recipient=recipient.id,
                initial_state=DeliveryState.DELIVERED,
                actor=self.actor,
            )
            if files:
                containers.attach_files(blobs, record.nachrichten_uuid, files)
        except MessageConflictError as exc:
            log.warning(
                "inbox %s: message %s from %s refused: same nachrichtenUUID, other payload",
                self.agency.id,
                key,
                sender.id,
            )
            raise _conflict(key) from exc
        except JournalValueError as exc:
            raise ApiError(
                422, "invalid_header", f"Nachrichtenkopf: {exc}", field=exc.field
            ) from exc
        except JournalError as exc:
            raise self._unavailable("record_inbound", exc) from exc
        if created:
            log.debug(
                "inbox %s: accepted %s (%s, %d files) from %s for %s",
                self.agency.id,
                record.nachrichten_uuid,
                record.message_type,
                len(files or ()),
                sender.id,
                recipient.id,
            )
        self._call_hook(record, info, created)
        receipt = {
            "nachrichtenUUID": key,  # as sent (the journal may keep it under the sender's key)
            "received_at": record.recorded_at.isoformat(),
            "sha512": receipt_sha512 or record.payload_sha512,
            "state": ACCEPTED_STATE,
            "recipient": recipient.id,
        }
        return (202 if created else 200), receipt

    def _check_repeat(self, key: str, payload: bytes, sender: Agency) -> str:
        """409 before any blob is stored when ``sender``'s ``key`` is held by another payload;
        the journal key its files go under (the UUID, or the sender's own key when another
        sender's message holds the UUID)."""
        try:
            record = self.journal.get_message(
                key, direction=Direction.INBOUND, sender_agency=sender.id
            )
        except JournalNotFoundError:
            try:
                other = self.journal.get_message(key, direction=Direction.INBOUND)
            except JournalNotFoundError:
                return key
            return (
                key
                if other.sender_agency == sender.id
                else self.journal.inbound_key(key, sender.id)
            )
        if record.payload_sha512 != hashlib.sha512(payload).hexdigest():
            raise _conflict(key)
        return record.nachrichten_uuid

    @property
    def spool_dir(self) -> Path:
        """Where container bodies are spooled (:func:`.containers.spool_root`)."""
        return containers.spool_root(self.config.spool_dir, self.journal)

    def container_of(self, nachrichten_uuid: str, payload: bytes) -> Path | None:
        """The message rebuilt as container when it has attached files (None otherwise), in a
        temporary directory of its own below :attr:`spool_dir`: the caller removes
        ``path.parent``."""
        blobs = self.journal.blobs
        try:
            files = blobs.files_of(nachrichten_uuid)
            if not files:
                return None
            spool = self.spool_dir
            spool.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = Path(tempfile.mkdtemp(dir=spool, prefix="fetch-"))
            try:
                return containers.build_container(blobs, payload, files, tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        except JournalError as exc:
            raise self._unavailable("blobs", exc) from exc

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

    def _check_reference(self, checked: Checked, sender: Agency) -> None:
        try:
            check_reference(self.journal, self.agency.id, checked, sender)
        except JournalError as exc:
            raise self._unavailable("check_reference", exc) from exc

    def _unavailable(self, operation: str, exc: JournalError) -> ApiError:
        return journal_unavailable(
            self.agency.id, operation, exc, retry_after=self.config.retry_after
        )

    # -- status

    def status(self, caller: Agency, nachrichten_uuid: str) -> dict[str, Any]:
        """The caller's own message only: another sender's message with this UUID answers the
        same 404 as an unknown one (nothing tells that the UUID is in use)."""
        try:
            record = self.journal.get_message(
                nachrichten_uuid, direction=Direction.INBOUND, sender_agency=caller.id
            )
        except JournalNotFoundError:
            raise ApiError(
                404, "not_found", f"no message {nachrichten_uuid} from you in this inbox"
            ) from None
        except JournalError as exc:
            raise self._unavailable("get_message", exc) from exc
        key = record.nachrichten_uuid
        try:
            history = self.journal.transport_report(key)
            deliveries = self.journal.deliveries(nachrichten_uuid=key, direction=Direction.INBOUND)
        except JournalError as exc:
            raise self._unavailable("transport_report", exc) from exc
        return {
            "nachrichtenUUID": nachrichten_uuid,
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
        500 ``schema_missing`` for messages of that standard)."""
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
