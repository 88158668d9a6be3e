"""The Gewerbe family declared: standards, procedures, who may start them, facts, build, reply."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.journal import Direction, MessageMeta, keyed_uuid
from xoev.nachrichtenkopf import Behoerde, Behoerdenkennung, Nachrichtenkopf
from xoev.parsing import parse_xml
from xoev.rueckmeldung import v1_0 as rueckmeldung
from xoev.xgewerbeanzeige import v2_2
from xoev.xgewerbeanzeige.message_types import NAMESPACE, nachrichtentyp

from ..base import BuiltMessage, Family, Procedure, ReplyOutcome, StartRule
from .facts import CaseFacts

if TYPE_CHECKING:
    from ...routing import Route
    from ...runtime import Runtime

__all__ = [
    "FAMILY",
    "MESSAGE_UUID_SECRET",
    "PROCEDURE_KIND",
    "GewerbeFamily",
    "meldungsart_of",
    "message_uuid_for",
]

#: Procedure name → the Meldungsart its notifications carry.
PROCEDURE_KIND = {
    "gewerbeanmeldung": "anmeldung",
    "gewerbeummeldung": "ummeldung",
    "gewerbeabmeldung": "abmeldung",
}
#: The installation secret outgoing nachrichtenUUIDs are keyed with.
MESSAGE_UUID_SECRET = "message-uuid"
_NOTIFICATION = "gwa.gewerbemeldung.0010"
_PROCEDURES = "flows.families.gewerbe.procedures"


def message_uuid_for(notification_uuid: str, rule: str, *, key: bytes) -> str:
    """The nachrichtenUUID of the message of ``rule`` for the case opened by the notification
    ``notification_uuid``: the same on every retry, resume and re-run and on every node (keyed by
    the installation's secret ``key`` — :meth:`Journal.secret` ``("message-uuid")``), and as
    unique as the notification's own UUID — case ids restart in every journal, notification
    UUIDs do not. Without the key nobody can tell it in advance from public data (the
    notification's UUID and the route), so nobody can take it first at a recipient. It is fixed
    in the outbox when the message is first recorded."""
    return keyed_uuid(key, "gewerbe", notification_uuid.lower(), rule)


def meldungsart_of(payload: bytes) -> str | None:
    """The Meldungsart (anmeldung, ummeldung, abmeldung) of a Gewerbeanzeige's first Satz."""
    from lxml import etree

    root = parse_xml(payload).getroot()
    if etree.QName(root).namespace != NAMESPACE:
        return None
    for satz in root.iterfind(f"{{{NAMESPACE}}}satz"):
        for child in satz:
            kind = etree.QName(child).localname
            if kind in PROCEDURE_KIND.values():
                return str(kind)
    return None


def _kind_is(kind: str) -> Any:
    def accepts(payload: bytes) -> str | None:
        found = meldungsart_of(payload)
        return None if found == kind else f"the notification is a {found or 'no'} Meldung"

    return accepts


def _behoerde(rt: Runtime, agency_id: str) -> Behoerde:
    agency = rt.directory.get(agency_id)
    return Behoerde(
        behoerdenkennung=Behoerdenkennung.from_string(agency.behoerdenkennung),
        behoerdenname=agency.name,
    )


class GewerbeFamily(Family):
    name: ClassVar[str] = "gewerbe"
    standards: ClassVar[tuple[tuple[str, str], ...]] = (("XGewerbeanzeige", "2.2"),)
    procedures: ClassVar[tuple[Procedure, ...]] = (
        Procedure(
            "gewerbeanmeldung",
            f"{_PROCEDURES}:gewerbeanmeldung",
            "Gewerbeanmeldung (§ 14 GewO): consult, approve, distribute",
        ),
        Procedure(
            "gewerbeummeldung",
            f"{_PROCEDURES}:gewerbeummeldung",
            "Gewerbeummeldung: change of address or activity, distributed",
        ),
        Procedure(
            "gewerbeabmeldung",
            f"{_PROCEDURES}:gewerbeabmeldung",
            "Gewerbeabmeldung: the business is given up; every recipient is told",
        ),
    )
    #: Gewerbeanzeigen reach the Gewerbeamt from the portal (Wirtschafts-Service-Portal.NRW)
    starts: ClassVar[tuple[StartRule, ...]] = tuple(
        StartRule(proc, frozenset({"Portal"}), frozenset({_NOTIFICATION}), _kind_is(kind))
        for proc, kind in PROCEDURE_KIND.items()
    )
    facts_model = CaseFacts
    kinds: ClassVar[dict[str, str]] = PROCEDURE_KIND
    """Procedure → the Meldungsart that may open it (a variant family names its own)."""
    routing_file: ClassVar[str] = "routing.yaml"
    routing_env: ClassVar[str] = "AMTSBOTE_ROUTING"

    def open_check(self, payload: bytes, procedure: str) -> tuple[CaseFacts, dict[str, Any]]:
        facts = CaseFacts.from_message(v2_2.parse(payload))
        if facts.meldungsart != self.kinds[procedure]:
            raise ValueError(f"a {facts.meldungsart} cannot start {procedure}")
        return facts, {}

    def message_type_root(self, key: str) -> str:
        return nachrichtentyp(key).root

    def reply_types(self, route: Route) -> tuple[str, ...]:
        return (rueckmeldung.ROOT,)

    def message_uuid(self, case: Any, route: Route) -> str:
        from ...runtime import get_runtime

        key = get_runtime().journal.secret(MESSAGE_UUID_SECRET)
        return message_uuid_for(case.message_uuid, route.rule, key=key)

    def build(self, rt: Runtime, case: Any, route: Route, *, message_uuid: str) -> BuiltMessage:
        """The route's message type filled from the notification: only the data groups the type
        carries (data minimisation by type), validated against XSD and rules on build."""
        inbound = _notification(rt, case.message_uuid)
        kopf = Nachrichtenkopf.neu(
            nachrichtentyp=route.message_type.rsplit(".", 1)[-1],
            leser=_behoerde(rt, route.recipient),
            autor=_behoerde(rt, rt.home.id),
            nachrichten_uuid=message_uuid,
        )
        payload = v2_2.build(v2_2.build_for(inbound, route.message_type, kopf=kopf))
        meta = MessageMeta(
            nachrichten_uuid=message_uuid,
            standard="XGewerbeanzeige",
            version="2.2",
            message_type=route.message_type,
            author=rt.home.behoerdenkennung,
            reader=rt.directory.get(route.recipient).behoerdenkennung,
            created_at=kopf.erstellungszeitpunkt,
        )
        return BuiltMessage(payload, meta)

    def read_reply(self, payload: bytes) -> ReplyOutcome:
        """A Rückmeldung: ``ergebnis`` 01 (keine Bedenken) is positive, anything else asks a
        clerk."""
        reply = rueckmeldung.parse(payload)
        return ReplyOutcome(
            reply.ergebnis.code, reply.ergebnis.code == "01", {"ergebnis": reply.ergebnis.code}
        )


FAMILY = GewerbeFamily()


# The notification a case started from, parsed once for all its routes (a case sends up to
# seven messages built from it). Journal payloads never change and the model is immutable, so a
# small LRU per journal object (weakly held) is safe.
_PARSED: weakref.WeakKeyDictionary[Any, OrderedDict[str, v2_2.Gewerbemeldung]] = (
    weakref.WeakKeyDictionary()
)
_PARSED_MAX = 64
_parsed_lock = threading.Lock()


def _notification(rt: Runtime, message_uuid: str) -> v2_2.Gewerbemeldung:
    with _parsed_lock:
        parsed = _PARSED.setdefault(rt.journal, OrderedDict())
        if (model := parsed.get(message_uuid)) is not None:
            parsed.move_to_end(message_uuid)
            return model
    model = v2_2.parse(rt.journal.payload(message_uuid, direction=Direction.INBOUND))
    with _parsed_lock:
        parsed[message_uuid] = model
        while len(parsed) > _PARSED_MAX:
            parsed.popitem(last=False)
    return model
