"""The DMS hands over an Aussonderung: an export folder, or an 0501/0503 it built itself.

``hand_over(rt, source, by="dms-paderborn")`` takes

* an **export folder** (``manifest.yaml`` plus primary files, :mod:`.export`): amtsbote builds and
  validates the start message — 0501 (four-stage) or 0503 with the files (two-stage) — and keeps
  the primary documents in the journal's blob store; for the four-stage procedure also the
  candidate 0503, so the handover weeks later needs the export no more;
* a DMS-built **0501 or 0503 XML** file, or an **x-man container** (``{ProzessID}_{Name}.zip``,
  primary documents inside): checked (container rules, XSD, code lists) and passed on.

The start message is recorded as received from the DMS (an agency with role ``DMS`` in the
directory; the family's start rules decide) under its xdomea key; the primary files first, so a
message row never names files that are not there. One case per ProzessID: a second hand-over of the
same ProzessID and type is answered with the case already there, nothing stored again. Whoever
calls starts the procedure (``amtsbote aussonderung hand-over`` emits the event the deployment
triggers listen for, or runs the flow in-process with ``--run``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import xoev
from connectors.exceptions import JournalNotFoundError
from connectors.journal import Direction, MessageMeta
from xoev.container import ContainerLimits, read_container
from xoev.exceptions import ContainerError, UnusableInputError
from xoev.message import inspect_message
from xoev.parsing import parse_xml
from xoev.xdomea import aussonderung as xa

from ...exceptions import AmtsboteFlowError
from . import build as b
from .export import ExportError, read_export
from .family import CANDIDATE

if TYPE_CHECKING:
    from ...runtime import Runtime

__all__ = ["HandOver", "HandOverError", "hand_over"]


class HandOverError(AmtsboteFlowError):
    """What the DMS handed over cannot be used (names the source and every problem)."""

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source, self.problem = str(source), problem
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"hand-over {self.source}: {self.problem}"


@dataclass(frozen=True, slots=True)
class HandOver:
    message_uuid: str
    """The start message's journal key (xdomea key of ProzessID and type)."""
    process_id: str
    message_type: str
    procedure: str
    created: bool
    """False: this ProzessID was handed over before; nothing was stored again."""
    files: int
    case_id: str | None = None


def _archive(rt: Runtime) -> str:
    routing = rt.routing_for("aussonderung")
    recipients = {r.recipient for r in routing.rules}
    if len(recipients) != 1:
        raise HandOverError(
            routing.source,
            "the Aussonderung routing must name exactly one "
            f"archive, names {sorted(recipients) or 'none'}",
        )
    return recipients.pop()


def hand_over(
    rt: Runtime,
    source: str | Path,
    *,
    by: str = "dms-paderborn",
    limits: ContainerLimits | None = None,
) -> HandOver:
    """Check, store and decide the start of what the DMS ``by`` hands over (module docstring).
    Raises :class:`HandOverError` naming the problem; nothing is stored then."""
    src = Path(source)
    if by not in rt.directory:
        raise HandOverError(src, f"{by!r} is no agency of the directory")
    files: dict[str, tuple[Path | None, object]] = {}
    candidate: bytes | None = None
    with tempfile.TemporaryDirectory(prefix="amtsbote-handover-") as tmp:
        if src.is_dir():
            try:
                export = read_export(src)
            except ExportError as exc:
                raise HandOverError(src, "; ".join(exc.problems)) from None
            built = b.from_export(
                export, absender=rt.home, empfaenger=rt.directory.get(_archive(rt))
            )
            payload = xa.build(built.start)
            if built.candidate is not None:
                candidate = xa.build(built.candidate)
            files = {n: (f.path, None) for n, f in built.files.items()}
            if built.candidate is None:  # two-stage: the 0503 carries exactly its files
                files = {n: files[n] for n in xa.dateinamen(built.start)}
        elif src.suffix.lower() == ".zip":
            try:
                read = read_container(src, limits=limits)
                for name, member in read.files.items():
                    files[name] = (member.extract_to(tmp), None)
            except ContainerError as exc:
                raise HandOverError(src, str(exc)) from None
            payload = read.xml
        elif src.is_file():
            payload = src.read_bytes()
            try:
                parse_xml(payload, source=str(src))
            except UnusableInputError as exc:
                raise HandOverError(src, str(exc)) from None
        else:
            raise HandOverError(src, "neither an export folder, an .xml file nor a .zip container")
        return _record(rt, src, payload, files, candidate, by=by)


def _record(
    rt: Runtime,
    src: Path,
    payload: bytes,
    files: dict[str, tuple[Path | None, object]],
    candidate: bytes | None,
    *,
    by: str,
) -> HandOver:
    report = xoev.validate(payload, source=str(src))
    if not report.ok:
        raise HandOverError(
            src, "the message has findings: " + "; ".join(str(f) for f in report.findings[:10])
        )
    info = inspect_message(parse_xml(payload))
    if info.standard != "xdomea" or info.message_type not in ("0501", "0503"):
        raise HandOverError(
            src,
            f"{info.standard} {info.message_type} is no Aussonderung start (xdomea 0501 or 0503)",
        )
    key, process_id = info.nachrichten_uuid, info.process_id
    assert key is not None and process_id is not None  # xdomea with a ProzessID (validated)
    journal = rt.journal
    try:
        existing = journal.get_message(key, direction=Direction.INBOUND, sender_agency=by)
    except JournalNotFoundError:
        existing = None
    if existing is not None:
        return HandOver(
            key,
            process_id,
            info.message_type,
            _procedure_of(info.message_type),
            False,
            len(journal.blobs.files_of(key)),
            existing.case_id,
        )
    started = _decide(rt, info, payload, by)
    if started.procedure is None:
        journal.log_event(
            "case.refused",
            actor="hand-over",
            nachrichten_uuid=key,
            detail={
                "reason": started.reason or "refused",
                "sender": by,
                "message_type": info.message_type,
            },
        )
        raise HandOverError(src, f"starts no procedure: {started.reason}")
    # primary files first: a recorded message never names files that are not there
    for name, (path, _) in files.items():
        assert path is not None
        ref = journal.blobs.put_file(path)
        journal.blobs.attach(key, name, ref.digest)
    if candidate is not None:
        journal.blobs.attach(key, CANDIDATE, journal.blobs.put_bytes(candidate).digest)
    _, created = journal.record_inbound(
        payload,
        MessageMeta.from_info(info),
        sender_agency=by,
        recipient=rt.home.id,
        initial_state=None,
        actor=f"hand-over:{by}",
    )
    journal.log_event(
        "aussonderung.handed-over",
        actor=f"hand-over:{by}",
        nachrichten_uuid=key,
        detail={
            "process_id": process_id,
            "message_type": info.message_type,
            "files": len(files),
            "procedure": started.procedure,
        },
    )
    return HandOver(key, process_id, info.message_type, started.procedure, created, len(files))


def _decide(rt: Runtime, info: Any, payload: bytes, by: str) -> Any:
    """The families' start decision (as the inbox hook asks it), before anything is stored."""
    from ...families import all_families
    from ..base import Started

    record = SimpleNamespace(
        message_type=info.root,
        standard=info.standard,
        version=info.version,
        sender_agency=by,
        nachrichten_uuid=info.nachrichten_uuid,
    )
    sender = rt.directory.get(by)
    reasons = []
    for family in reversed([f for f in all_families() if f.speaks(info.standard, info.version)]):
        started = family.start_for(record, sender, payload)  # type: ignore[arg-type]
        if not started.refused:
            return started
        reasons.append(f"{family.name}: {started.reason}")
    return Started(None, "; ".join(reasons) or f"no family speaks {info.standard}")


def _procedure_of(code: str) -> str:
    from .family import PROCEDURE_START

    return next(p for p, c in PROCEDURE_START.items() if c == code)
