"""The demo's Aussonderung: a fictitious DMS export of closed Gewerbeakten of the Stadt Paderborn,
handed over and run four-stage against the simulated Landesarchiv; the process is printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from connectors.journal import Direction

from .archive_stub import STUB_NOTICE
from .evidence import evidence
from .handover import hand_over
from .procedures import aussonderung
from .sample_export import write_sample_export

__all__ = ["run_demo_aussonderung"]

_ARROW = {"outbound": "→", "inbound": "←"}


def _documents() -> Path | None:
    """The PDF/A and DOCX test files in ../shared when the checkout has them beside it."""
    from ...operations import project_root

    folder = project_root().parent / "shared" / "xoev" / "beispiele" / "primaerdokumente"
    return folder if folder.is_dir() else None


async def run_demo_aussonderung(rt: Any, run_dir: Path, out: TextIO) -> str | None:
    """Hand over the sample export, run the four-stage procedure (the demo's auto-approver
    gives the records manager's approval), print the process. Returns the case id."""
    folder = write_sample_export(
        run_dir / "dms-export", akten=3, documents=_documents(), seed="demo-paderborn"
    )
    print(
        f"\nAussonderung: the DMS hands over {folder} (fictitious closed Gewerbeakten)",
        file=out,
        flush=True,
    )
    done = hand_over(rt, folder)
    if done.created:
        print(
            f"  handed over: xdomea {done.message_type}, ProzessID {done.process_id}, "
            f"{done.files} primary documents",
            file=out,
            flush=True,
        )
    result = await aussonderung(message_uuid=done.message_uuid)
    case_id = str(result["case_id"])
    doc = evidence(rt, case_id)
    archive = next(a for a in rt.directory if a.has_role("Archiv"))
    print(
        f"\ncase {case_id}  aussonderung  status={doc['status']}  "
        f"({rt.home.name} → {archive.name}; {STUB_NOTICE})",
        file=out,
    )
    print("  messages:", file=out)
    for m in doc["messages"]:
        code = m["type"].rsplit(".", 1)[-1]
        if (
            m["direction"] == "inbound"
            and code in ("0501", "0503")
            and m["key"] == done.message_uuid
        ):
            who = "from the DMS"
        else:
            who = "to the archive" if m["direction"] == "outbound" else "from the archive"
        files = (
            len(
                [
                    f
                    for f in rt.journal.blobs.files_of(m["key"])
                    if f.name.endswith((".pdf", ".docx"))
                ]
            )
            if code == "0503"
            else 0
        )
        extra = f", {files} primary documents" if files and m["direction"] == "outbound" else ""
        print(f"    {_ARROW[m['direction']]} {m['type']} {who}{extra}", file=out)
    events = {e["kind"]: e["detail"] for e in doc["events"]}
    appraisal = events.get("aussonderung.appraised", {}).get("effective", {})
    print(
        f"  appraisal (0502): {len(appraisal.get('archivwuerdig', []))} records archivwürdig, "
        f"{len(appraisal.get('kassabel', []))} kassabel",
        file=out,
    )
    moved = events.get("aussonderung.transferred", {})
    print(
        f"  handed over (0503): {len(moved.get('ids', []))} records, "
        f"{len(moved.get('files', {}))} primary documents (SHA-512 in the evidence)",
        file=out,
    )
    imported = events.get("aussonderung.imported", {}).get("objects", {})
    signatures = sorted({o["archivkennung"] for o in imported.values() if o["archivkennung"]})
    print(
        f"  archive signatures (0506): {len(signatures)}, e.g. {', '.join(signatures[:2])}",
        file=out,
    )
    released = events.get("aussonderung.released", {})
    print(
        f"  released for deletion: {len(released.get('archived', []))} archived records, "
        f"{len(released.get('kassabel', []))} kassabel ones",
        file=out,
    )
    from ...demo import demo_command

    print(
        f"  evidence: {demo_command(f'amtsbote aussonderung evidence {case_id}')}",
        file=out,
        flush=True,
    )
    inbound = rt.journal.messages(case_id=case_id, direction=Direction.INBOUND)
    assert inbound  # the archive answered
    return case_id
