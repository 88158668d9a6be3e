"""The Aussonderung family declared: xdomea 3.0.0/3.1.0, who starts what, keys, build, replies.

Starts: only the city's own DMS (role ``DMS``) starts an Aussonderung — with an 0501 the
four-stage ``aussonderung``, with an 0503 the two-stage ``aussonderung-zweistufig`` (handed over
with ``amtsbote aussonderung hand-over``, see :mod:`.handover`). One case per ProzessID: the start
message's key is ``xdomea_message_key(ProzessID, type)``, and so is every message's of the
process, so each (ProzessID, type) is sent exactly once however often a task, a run or a
hand-over is repeated.

Replies: 0501 is answered by 0504 then 0502, 0503 by 0507 then 0506.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from connectors.journal import Direction, MessageMeta
from xoev.message import inspect_message, xdomea_message_key
from xoev.parsing import parse_xml
from xoev.xdomea import aussonderung as xa
from xoev.xdomea.records import Aussonderungsart

from ..base import BuiltMessage, Family, Procedure, ReplyOutcome, StartRule
from . import build as b
from .facts import AussonderungFacts

if TYPE_CHECKING:
    from ...routing import Route
    from ...runtime import Runtime

__all__ = [
    "CANDIDATE",
    "FAMILY",
    "PROCEDURE_START",
    "AussonderungFamily",
    "appraisal_of",
    "type_code",
]

_PROCEDURES = "flows.families.aussonderung.procedures"
#: Procedure → the message type (code) that starts it.
PROCEDURE_START = {"aussonderung": "0501", "aussonderung-zweistufig": "0503"}
#: Name under which the candidate 0503 of a four-stage case is kept with the start message.
CANDIDATE = "amtsbote-candidate.0503.xml"
_CODES = {cls.TYPE: cls.ROOT for cls in xa.MESSAGE_CLASSES.values()}
_REPLIES = {"0501": ("0504", "0502"), "0503": ("0507", "0506")}
# The journal records a message's type by its root element name (unambiguous across standards).


def type_code(key: str) -> str:
    """The xdomea type code (``0501``) of a code or root name."""
    return _code(key)


def _code(key: str) -> str:
    key = key.strip()
    if key in _CODES:
        return key
    for code, root in _CODES.items():
        if key == root:
            return code
    raise LookupError(
        f"unknown xdomea Aussonderung message type {key!r} (known: {', '.join(sorted(_CODES))})"
    )


def appraisal_of(rt: Runtime, process_id: str) -> xa.Bewertungsverzeichnis:
    """The archive's 0502 of the process, as received."""
    payload = rt.journal.payload(
        xdomea_message_key(process_id, "0502"), direction=Direction.INBOUND
    )
    msg = xa.parse(payload)
    assert isinstance(msg, xa.Bewertungsverzeichnis)
    return msg


class AussonderungFamily(Family):
    name: ClassVar[str] = "aussonderung"
    standards: ClassVar[tuple[tuple[str, str], ...]] = (("xdomea", "3.0.0"), ("xdomea", "3.1.0"))
    procedures: ClassVar[tuple[Procedure, ...]] = (
        Procedure(
            "aussonderung",
            f"{_PROCEDURES}:aussonderung",
            "Aussonderung, four-stage: offer (0501), appraisal (0502), confirmation (0505), "
            "approval, handover (0503), import confirmed (0506), release for deletion",
        ),
        Procedure(
            "aussonderung-zweistufig",
            f"{_PROCEDURES}:aussonderung_zweistufig",
            "Aussonderung, two-stage: handover (0503) directly, import confirmed (0506)",
        ),
    )
    starts: ClassVar[tuple[StartRule, ...]] = tuple(
        StartRule(proc, frozenset({"DMS"}), frozenset({_CODES[code]}))
        for proc, code in PROCEDURE_START.items()
    )
    facts_model = AussonderungFacts
    routing_file: ClassVar[str] = "routing-aussonderung.yaml"
    routing_env: ClassVar[str] = "AMTSBOTE_ROUTING_AUSSONDERUNG"

    def open_check(
        self, payload: bytes, procedure: str
    ) -> tuple[AussonderungFacts, dict[str, Any]]:
        msg = xa.parse(payload)
        want = PROCEDURE_START[procedure]
        if want != msg.TYPE:
            raise ValueError(f"an xdomea {msg.TYPE} cannot start {procedure} (needs {want})")
        facts = AussonderungFacts(
            verfahren="vierstufig" if want == "0501" else "zweistufig",
            version=msg.version,
            process_id=msg.kopf.prozess_id,
            records=sum(1 for _ in xa.records(msg)),
        )
        return facts, {"process_id": msg.kopf.prozess_id}

    def message_type_root(self, key: str) -> str:
        return _CODES[_code(key)]

    def reply_types(self, route: Route) -> tuple[str, ...]:
        return tuple(_CODES[c] for c in _REPLIES.get(_code(route.message_type), ()))

    def message_uuid(self, case: Any, route: Route) -> str:
        return xdomea_message_key(case.facts.process_id, _code(route.message_type))

    def build(self, rt: Runtime, case: Any, route: Route, *, message_uuid: str) -> BuiltMessage:
        facts: AussonderungFacts = case.facts
        home, archive = rt.home, rt.directory.get(route.recipient)
        code = _code(route.message_type)
        start = xa.parse(rt.journal.payload(case.message_uuid, direction=Direction.INBOUND))
        files: dict[str, str] = {}
        msg: xa.AussonderungsNachricht
        if code == "0505":
            msg = xa.BewertungEmpfangen(
                kopf=b.kopf(facts.process_id, absender=home, empfaenger=archive),
                version=facts.version,
            )
        elif code == "0501" or (code == "0503" and start.TYPE == "0503"):
            if code != start.TYPE:
                raise ValueError(
                    f"case {case.case_id}: an {code} is built from an {code}, "
                    f"the case started with {start.TYPE}"
                )
            msg = b.readdress(start, absender=home, empfaenger=archive)
            files = self._files(rt, case.message_uuid, xa.dateinamen(msg))
        elif code == "0503":
            msg, files = self._handover(rt, case, start, archive)
        else:
            raise ValueError(f"the city sends no xdomea {code} in an Aussonderung")
        payload = xa.build(msg)
        meta = MessageMeta.from_info(inspect_message(parse_xml(payload)))
        return BuiltMessage(payload, meta, files)

    @staticmethod
    def _files(rt: Runtime, key: str, names: tuple[str, ...]) -> dict[str, str]:
        held = {f.name: f.digest for f in rt.journal.blobs.files_of(key)}
        missing = [n for n in names if n not in held]
        if missing:
            raise b.CandidateError(
                f"primary documents not held for message {key}: {', '.join(missing[:5])}"
            )
        return {n: held[n] for n in names}

    def _handover(
        self, rt: Runtime, case: Any, start: xa.AussonderungsNachricht, archive: Any
    ) -> tuple[xa.Aussonderung, dict[str, str]]:
        """The 0503 of a four-stage case: the candidate (or the 0501's records) cut to what the
        0502 appraised archivwürdig."""
        facts: AussonderungFacts = case.facts
        held = {f.name: f for f in rt.journal.blobs.files_of(case.message_uuid)}
        offered: tuple[Any, ...] = getattr(start, "schriftgutobjekte", ())
        if CANDIDATE in held:
            with rt.journal.blobs.open(held[CANDIDATE].digest) as f:
                candidate = xa.parse(f.read())
            offered = candidate.schriftgutobjekte  # type: ignore[attr-defined]
        selection = b.select(offered, appraisal_of(rt, facts.process_id))
        if not selection.records:
            raise b.CandidateError(f"case {case.case_id}: nothing was appraised archivwürdig")
        missing = b.missing_files(selection.records)
        if missing:
            raise b.CandidateError(
                f"case {case.case_id}: documents appraised archivwürdig have no primary file "
                f"(hand over the DMS export, not only its 0501): {', '.join(missing[:5])}"
            )
        msg = xa.Aussonderung(
            kopf=b.kopf(facts.process_id, absender=rt.home, empfaenger=archive),
            version=facts.version,
            schriftgutobjekte=selection.records,
        )
        return msg, self._files(rt, case.message_uuid, xa.dateinamen(msg))

    def read_reply(self, payload: bytes) -> ReplyOutcome:
        """0504/0507: received (positive). 0502: appraised — positive; the counts per
        Aussonderungsart in the detail. 0506: positive when every object was imported."""
        msg = xa.parse(payload)
        if isinstance(msg, xa.Bewertungsverzeichnis):
            counts = {art.name.lower(): len(msg.ids(art)) for art in Aussonderungsart}
            return ReplyOutcome("bewertet", True, counts)
        if isinstance(msg, xa.ImportBestaetigung):
            failed = [e.id for e in msg.ergebnisse if not e.erfolgreich]
            return ReplyOutcome(
                "importiert" if not failed else "import-fehler",
                not failed,
                {"imported": len(msg.ergebnisse) - len(failed), "failed": len(failed)},
            )
        if isinstance(msg, xa.AnbietungEmpfangen | xa.AussonderungEmpfangen):
            return ReplyOutcome("empfangen", True, {"type": msg.TYPE})
        raise ValueError(f"xdomea {msg.TYPE} is no reply of an Aussonderung")


FAMILY = AussonderungFamily()
