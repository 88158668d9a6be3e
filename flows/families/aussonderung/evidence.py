"""The evidence of an Aussonderung: offered, appraised, handed over, confirmed, released.

Every step is a ``aussonderung.*`` event in the journal's append-only event log (ids, counts,
digests and archive signatures — no titles, no names), written by the procedure's tasks:

=============================  ===========================================================
``aussonderung.handed-over``   the DMS handed the records over (ProzessID, type, files)
``aussonderung.appraised``     the archive's 0502: the IDs per Aussonderungsart
``aussonderung.transferred``   the 0503 left: the IDs handed over, every file with SHA-512
``aussonderung.imported``      the archive's 0506: per ID success and Archivkennung
``aussonderung.released``      released for deletion: kassabel IDs (after the 0505) and the
                               IDs the archive imported (after the 0506)
=============================  ===========================================================

:func:`evidence` gathers them with the case's messages (type, key, SHA-512, when) into one
document; ``amtsbote aussonderung evidence CASE`` prints it as JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.journal import Direction
from xoev.message import xdomea_message_key
from xoev.xdomea import aussonderung as xa
from xoev.xdomea.records import Aussonderungsart, iter_records

from .build import select
from .family import CANDIDATE, appraisal_of

if TYPE_CHECKING:
    from ...runtime import Runtime

__all__ = ["EVENTS", "appraised", "evidence", "imported", "transferred"]

EVENTS = (
    "aussonderung.handed-over",
    "aussonderung.appraised",
    "aussonderung.transferred",
    "aussonderung.imported",
    "aussonderung.released",
)


def appraised(rt: Runtime, case_id: str, process_id: str) -> dict[str, Any]:
    """Record the 0502 as evidence: the IDs per Aussonderungsart as the archive named them,
    and ``effective`` — applied to every offered object (an object without an appraisal of its
    own takes its parent's): ``archivwuerdig``, ``kassabel``, ``offen``."""
    msg = appraisal_of(rt, process_id)
    detail: dict[str, Any] = {art.name.lower(): list(msg.ids(art)) for art in Aussonderungsart}
    offered = xa.parse(
        rt.journal.payload(xdomea_message_key(process_id, "0501"), direction=Direction.INBOUND)
    )
    sel = select(getattr(offered, "schriftgutobjekte", ()), msg)
    detail["effective"] = {
        "archivwuerdig": list(sel.archivwuerdig),
        "kassabel": list(sel.kassabel),
        "offen": list(sel.offen),
    }
    _once(rt, case_id, "aussonderung.appraised", detail)
    return detail


def transferred(rt: Runtime, case_id: str, process_id: str) -> dict[str, Any]:
    """Record the 0503 that left, with its files' digests."""
    key = xdomea_message_key(process_id, "0503")
    msg = xa.parse(rt.journal.payload(key, direction=Direction.OUTBOUND))
    ids = [r.id for r in xa.records(msg)]
    files = {f.name: f.digest for f in rt.journal.blobs.files_of(key) if f.name != CANDIDATE}
    detail = {"ids": ids, "files": files}
    _once(rt, case_id, "aussonderung.transferred", detail)
    return detail


def imported(rt: Runtime, case_id: str, process_id: str, *, kassabel: list[str]) -> dict[str, Any]:
    """Record the 0506 and release for deletion what the archive took over (with its
    descendants) and what was appraised kassabel. Returns the release."""
    msg = xa.parse(
        rt.journal.payload(xdomea_message_key(process_id, "0506"), direction=Direction.INBOUND)
    )
    assert isinstance(msg, xa.ImportBestaetigung)
    results = {
        e.id: {
            "ok": e.erfolgreich,
            "archivkennung": e.archivkennung,
            "fehler": list(e.fehlermeldungen),
        }
        for e in msg.ergebnisse
    }
    _once(rt, case_id, "aussonderung.imported", {"objects": results})
    sent = xa.parse(
        rt.journal.payload(xdomea_message_key(process_id, "0503"), direction=Direction.OUTBOUND)
    )
    ok = {i for i, r in results.items() if r["ok"]}
    archived: list[str] = []
    for top in getattr(sent, "schriftgutobjekte", ()):
        for r in iter_records((top,)):
            if r.id in ok or top.id in ok:
                archived.append(r.id)
    failed = sorted(i for i, r in results.items() if not r["ok"])
    release = {"archived": archived, "kassabel": kassabel, "not_imported": failed}
    _once(rt, case_id, "aussonderung.released", release)
    return release


def released_kassabel(rt: Runtime, case_id: str, kassabel: list[str]) -> dict[str, Any]:
    """Nothing was archivwürdig: the kassabel records are released after the 0505."""
    release = {"archived": [], "kassabel": kassabel, "not_imported": []}
    _once(rt, case_id, "aussonderung.released", release)
    return release


def _once(rt: Runtime, case_id: str, kind: str, detail: dict[str, Any]) -> None:
    """Evidence is written once per case and kind (a re-run finds it there)."""
    if not rt.journal.events(case_id=case_id, kind=kind):
        rt.journal.log_event(kind, actor="aussonderung", case_id=case_id, detail=detail)


def evidence(rt: Runtime, case_id: str) -> dict[str, Any]:
    """The case's evidence as one JSON-able document (module docstring)."""
    case = rt.journal.get_case(case_id)
    events = [e for e in rt.journal.events(case_id=case_id) if e.kind in EVENTS]
    ref = case.summary.get("ref", {})
    key = None
    if ref.get("process_id"):
        key = xdomea_message_key(
            ref["process_id"], "0501" if case.procedure == "aussonderung" else "0503"
        )
    handed = (
        [e for e in rt.journal.events(nachrichten_uuid=key) if e.kind == EVENTS[0]] if key else []
    )
    messages = [
        {
            "type": m.message_type,
            "direction": m.direction.value,
            "key": m.nachrichten_uuid,
            "sha512": m.payload_sha512,
            "recorded_at": m.recorded_at.isoformat(),
        }
        for m in rt.journal.messages(case_id=case_id)
    ]
    return {
        "case_id": case.case_id,
        "procedure": case.procedure,
        "status": case.status.value,
        "process_id": ref.get("process_id"),
        "messages": messages,
        "events": [
            {"kind": e.kind, "at": e.at.isoformat(), "detail": e.detail} for e in [*handed, *events]
        ],
    }
