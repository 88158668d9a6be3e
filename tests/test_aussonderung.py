"""The Aussonderung end to end: the DMS hands over, a SIMULATED Landesarchiv (archive_stub, which
says so in every message) appraises and imports, over real inboxes on loopback, with a real
Prefect server."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_procedures import Env, _approve_when_waiting

from connectors.journal import Direction
from flows.families.aussonderung.archive_stub import STUB_NOTICE
from flows.families.aussonderung.handover import HandOverError, hand_over
from flows.families.aussonderung.sample_export import write_sample_export
from xoev.message import xdomea_message_key
from xoev.xdomea import aussonderung as xa

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[2] / "shared" / "xoev" / "beispiele" / "primaerdokumente"


@pytest.fixture
def env(tmp_path: Path, prefect_server: Any) -> Iterator[Env]:
    e = Env(tmp_path)
    try:
        yield e
    finally:
        e.close()


def _run(procedure: str, key: str) -> dict[str, Any]:
    from flows.procedures import procedure_flow

    return asyncio.run(procedure_flow(procedure)(key))


def _code(m: Any) -> str:
    """xdomea type code of a journal message (the journal records the root name)."""
    return str(m.message_type).rsplit(".", 1)[-1]


def _archive(env: Env) -> Any:
    return env.installation.journal_of("landesarchiv-owl")


def _kinds(env: Env, case_id: str) -> dict[str, dict[str, Any]]:
    return {
        e.kind: e.detail
        for e in env.journal.events(case_id=case_id)
        if e.kind.startswith("aussonderung.")
    }


def test_four_stage_aussonderung_hands_over_only_what_is_archivwuerdig(
    env: Env, tmp_path: Path
) -> None:
    folder = write_sample_export(tmp_path / "export", akten=2, documents=DOCS, seed="vier")
    done = hand_over(env.rt, folder)
    assert done.created and done.procedure == "aussonderung" and done.files == 6
    clerk = _approve_when_waiting(env)
    result = _run("aussonderung", done.message_uuid)
    clerk.join(5)
    assert result["status"] == "closed", result
    assert result["outcome"] == "archived"
    case_id = result["case_id"]
    pid = done.process_id

    # what the archive received: 0501, 0505, 0503 — each exactly once, under its xdomea key
    archive = _archive(env)
    got = {_code(m): m for m in archive.messages(direction=Direction.INBOUND)}
    assert sorted(got) == ["0501", "0503", "0505"]
    assert got["0503"].nachrichten_uuid == xdomea_message_key(pid, "0503")
    # data minimisation: the 0503 holds the Anmeldungen (A), not the Ummeldungen (V)
    sent = xa.parse(archive.payload(got["0503"].nachrichten_uuid, direction=Direction.INBOUND))
    titles = {r.titel for r in xa.records(sent)}
    assert "Gewerbeanmeldung" in titles and "Ummeldung (Anschrift)" not in titles
    names = xa.dateinamen(sent)
    assert len(names) == 4 and not any("ummeldung" in n for n in names)
    # the primary documents arrived intact (the archive's blob store, by SHA-512)
    held = {f.name: f.digest for f in archive.blobs.files_of(got["0503"].nachrichten_uuid)}
    assert set(held) == set(names)
    source = (folder / "dokumente" / "0000-anmeldung.pdf").read_bytes()
    assert hashlib.sha512(source).hexdigest() in held.values()

    # the replies the city got are the stub's, and it says so
    replies = env.journal.messages(case_id=case_id, direction=Direction.INBOUND)
    assert sorted(_code(m) for m in replies) == ["0501", "0502", "0504", "0506", "0507"]
    reply = env.journal.payload(xdomea_message_key(pid, "0506"), direction=Direction.INBOUND)
    assert STUB_NOTICE.encode() in reply

    # evidence: appraised, transferred, imported with signatures, released for deletion
    ev = _kinds(env, case_id)
    appraisal = ev["aussonderung.appraised"]
    assert len(appraisal["archivwuerdig"]) == 4 and len(appraisal["vernichten"]) == 2  # 0502
    assert len(appraisal["effective"]["archivwuerdig"]) == 8  # with the documents inside
    assert len(appraisal["effective"]["kassabel"]) == 4
    signatures = [o["archivkennung"] for o in ev["aussonderung.imported"]["objects"].values()]
    assert signatures and all(s.endswith("(simuliert)") for s in signatures)
    released = ev["aussonderung.released"]
    assert len(released["kassabel"]) == 4 and len(released["archived"]) == 8
    assert not released["not_imported"]
    assert set(ev["aussonderung.transferred"]["files"]) == set(names)

    # the evidence exported as the CLI does it
    from flows.cli import main

    out = tmp_path / "evidence.json"
    assert main(["aussonderung", "evidence", case_id, "--out", str(out)]) == 0
    doc = __import__("json").loads(out.read_text(encoding="utf-8"))
    assert doc["process_id"] == pid and doc["status"] == "closed"
    assert [e["kind"] for e in doc["events"]] == [
        "aussonderung.handed-over",
        "aussonderung.appraised",
        "aussonderung.transferred",
        "aussonderung.imported",
        "aussonderung.released",
    ]
    assert main(["aussonderung", "evidence", "05774032-2026-999999"]) == 2


def test_rerun_and_second_hand_over_send_nothing_twice(env: Env, tmp_path: Path) -> None:
    folder = write_sample_export(tmp_path / "export", akten=1, documents=DOCS, seed="twice")
    done = hand_over(env.rt, folder)
    clerk = _approve_when_waiting(env)
    first = _run("aussonderung", done.message_uuid)
    clerk.join(5)
    assert first["status"] == "closed"
    again = hand_over(env.rt, folder)
    assert not again.created and again.message_uuid == done.message_uuid
    second = _run("aussonderung", done.message_uuid)
    assert second["status"] == "closed"
    counts: dict[str, int] = {}
    for m in _archive(env).messages(direction=Direction.INBOUND):
        counts[_code(m)] = counts.get(_code(m), 0) + 1
    assert counts == {"0501": 1, "0505": 1, "0503": 1}
    attempts = [
        d.attempts
        for d in env.journal.deliveries(case_id=first["case_id"], direction=Direction.OUTBOUND)
    ]
    assert attempts == [1, 1, 1]


def test_rejected_handover_sends_no_0503(env: Env, tmp_path: Path) -> None:
    folder = write_sample_export(tmp_path / "export", akten=1, documents=DOCS, seed="nein")
    done = hand_over(env.rt, folder)
    clerk = _approve_when_waiting(env, decision="reject")
    result = _run("aussonderung", done.message_uuid)
    clerk.join(5)
    assert result["outcome"] == "rejected"
    types = {_code(m) for m in _archive(env).messages(direction=Direction.INBOUND)}
    assert types == {"0501", "0505"}


@pytest.mark.parametrize("version", ["3.0.0", "3.1.0"])
def test_two_stage_aussonderung(env: Env, tmp_path: Path, version: str) -> None:
    folder = write_sample_export(
        tmp_path / "export",
        akten=1,
        verfahren="zweistufig",
        xdomea=version,
        documents=DOCS,
        seed=f"zwei-{version}",
    )
    done = hand_over(env.rt, folder)
    assert done.procedure == "aussonderung-zweistufig" and done.message_type == "0503"
    result = _run("aussonderung-zweistufig", done.message_uuid)
    assert result["status"] == "closed", result
    archive = _archive(env)
    [msg] = archive.messages(direction=Direction.INBOUND)
    assert _code(msg) == "0503" and msg.version == version
    # two-stage: everything handed over is the DMS's choice — all three documents
    assert len(archive.blobs.files_of(msg.nachrichten_uuid)) == 3
    assert "aussonderung.released" in _kinds(env, result["case_id"])


def test_a_dms_built_0501_is_validated_and_passed_on(env: Env, tmp_path: Path) -> None:
    """A 0501 the DMS built itself (no export): validated, stored, the four-stage procedure
    starts; its Empfänger becomes the routing's archive when it is passed on. A broken one is
    refused with the file named."""
    from flows.families.aussonderung import build as b
    from flows.families.aussonderung.export import read_export

    export = read_export(
        write_sample_export(tmp_path / "x", akten=1, documents=DOCS, seed="dms-0501")
    )
    start = b.from_export(
        export, absender=env.rt.home, empfaenger=env.directory.get("it-nrw")
    ).start  # a wrong Empfänger
    path = tmp_path / "0501.xml"
    path.write_bytes(xa.build(start))
    done = hand_over(env.rt, path)
    assert done.procedure == "aussonderung" and done.files == 0
    family = __import__("flows.families", fromlist=["get_family"]).get_family("aussonderung")
    route = next(r for r in env.rt.routing_for("aussonderung").rules if r.rule == "anbietung")
    case = type(
        "C",
        (),
        {
            "message_uuid": done.message_uuid,
            "case_id": "-",
            "facts": family.open_check(path.read_bytes(), "aussonderung")[0],
        },
    )()
    built = family.build(env.rt, case, route, message_uuid=done.message_uuid)
    assert b"05-OWL" in built.payload and b"STLA" not in built.payload
    broken = tmp_path / "broken.xml"
    broken.write_bytes(path.read_bytes().replace(b"</xdomea:Kopf>", b"<x/></xdomea:Kopf>"))
    with pytest.raises(HandOverError, match=r"broken\.xml"):
        hand_over(env.rt, broken)


def test_a_slow_archive_is_waited_for(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 0506 comes seconds after the 0507: the run waits for it (a run-input key per reply
    type that Prefect accepts) and is resumed when it arrives."""
    from flows.families.aussonderung import archive_stub

    monkeypatch.setattr(archive_stub, "REPLY_GAP", 3.0)
    folder = write_sample_export(
        tmp_path / "export", akten=1, verfahren="zweistufig", documents=DOCS, seed="slow"
    )
    done = hand_over(env.rt, folder)
    result = _run("aussonderung-zweistufig", done.message_uuid)
    assert result["status"] == "closed", result
    waits = [
        e
        for e in env.journal.events(case_id=result["case_id"], kind="case.updated")
        if str(e.detail.get("waiting_for", "")).startswith("reply:")
    ]
    assert waits  # it did wait


def test_hand_over_refuses_what_cannot_start(env: Env, tmp_path: Path) -> None:
    folder = write_sample_export(tmp_path / "export", akten=1, documents=DOCS, seed="refuse")
    (folder / "dokumente" / "0000-anmeldung.pdf").unlink()
    with pytest.raises(HandOverError, match=r"0000-anmeldung\.pdf.*missing"):
        hand_over(env.rt, folder)
    ok = write_sample_export(tmp_path / "ok", akten=1, documents=DOCS, seed="refuse-2")
    with pytest.raises(HandOverError, match="may not start"):
        hand_over(env.rt, ok, by="wsp-nrw")  # the portal is no DMS
    assert env.journal.messages(direction=Direction.INBOUND) == []
    refused = env.journal.events(kind="case.refused")
    assert refused and "DMS" in refused[-1].detail["reason"]


# ------------------------------------------------------------------ transfer directory, WebDAV

_ARCHIVE_HTTP = re.compile(
    r"(  - id: landesarchiv-owl\n(?:    .*\n)*?)    channel: http\n"
    r"    endpoint: .*\n"
)


def _archive_on(channel_lines: str) -> Any:
    def edit(text: str) -> str:
        new, n = _ARCHIVE_HTTP.subn(lambda m: m.group(1) + channel_lines, text)
        assert n == 1, "landesarchiv-owl not found in the directory"
        return new

    return edit


def _four_stage(env: Env, tmp_path: Path, seed: str) -> dict[str, Any]:
    folder = write_sample_export(tmp_path / "export", akten=2, documents=DOCS, seed=seed)
    done = hand_over(env.rt, folder)
    clerk = _approve_when_waiting(env)
    result = _run("aussonderung", done.message_uuid)
    clerk.join(5)
    assert result["status"] == "closed", result
    return result


def _check_area(area: Path, result: dict[str, Any], env: Env) -> None:
    """x-man layout: amtsbote's containers in the root, the archive's in a folder per type, all
    read (moved to .done / .archive-done), the 0503 with its primary documents."""
    import zipfile

    read_by_archive = sorted(p.name for p in (area / ".archive-done").iterdir())
    assert [n.split("_", 1)[1] for n in read_by_archive] == [
        "Aussonderung.Anbieteverzeichnis.0501.zip",
        "Aussonderung.Aussonderung.0503.zip",
        "Aussonderung.BewertungEmpfangBestaetigen.0505.zip",
    ]
    [handover] = [area / ".archive-done" / n for n in read_by_archive if n.endswith("0503.zip")]
    with zipfile.ZipFile(handover) as zf:
        assert len(zf.namelist()) == 5  # the XML and the four archivwürdig documents
    read_by_city = sorted(p.name.split("_", 1)[1] for p in (area / ".done").iterdir())
    assert read_by_city == sorted(
        f"{root}.zip"
        for root in (
            "Aussonderung.AnbietungEmpfangBestaetigen.0504",
            "Aussonderung.Bewertungsverzeichnis.0502",
            "Aussonderung.AussonderungEmpfangBestaetigen.0507",
            "Aussonderung.AussonderungImportBestaetigen.0506",
        )
    )
    assert "aussonderung.released" in _kinds(env, result["case_id"])


def test_four_stage_through_a_transfer_directory(tmp_path: Path, prefect_server: Any) -> None:
    area = tmp_path / "transfer" / "landesarchiv-owl"
    area.mkdir(parents=True)
    env = Env(
        tmp_path,
        edit_agencies=_archive_on(f"    channel: transfer-dir\n    transfer_dir: {area}\n"),
    )
    try:
        result = _four_stage(env, tmp_path, "transfer-dir")
        _check_area(area, result, env)
    finally:
        env.close()


def test_four_stage_through_webdav_with_tls(tmp_path: Path, prefect_server: Any) -> None:
    from test_transfer import DavServer, _write_pki

    (tmp_path / "pki").mkdir()
    pki = _write_pki(tmp_path / "pki")
    share = tmp_path / "share"
    with DavServer(share, tls=pki) as dav:
        env = Env(
            tmp_path,
            edit_agencies=_archive_on(
                f"    channel: webdav\n    webdav_url: {dav.url}\n"
                "    webdav_user_env: AMTSBOTE_DAV_USER_LAV\n"
                "    webdav_password_env: AMTSBOTE_DAV_PASSWORD_LAV\n"
                f"    webdav_ca: {pki['ca']}\n"
            ),
            transfer_roots={"landesarchiv-owl": share},
            environ={"AMTSBOTE_DAV_USER_LAV": "stadt", "AMTSBOTE_DAV_PASSWORD_LAV": "geheim"},
        )
        try:
            result = _four_stage(env, tmp_path, "webdav")
            _check_area(share, result, env)
        finally:
            env.close()


# ------------------------------------------------------------------ hostile containers


def _container_of(env: Env, tmp_path: Path, seed: str) -> Path:
    """A DMS-built two-stage 0503 container (x-man layout) with its primary documents."""
    from flows.families.aussonderung import build as b
    from flows.families.aussonderung.export import read_export
    from xoev.container import write_container

    export = read_export(
        write_sample_export(
            tmp_path / seed, akten=1, verfahren="zweistufig", documents=DOCS, seed=seed
        )
    )
    built = b.from_export(
        export, absender=env.rt.home, empfaenger=env.directory.get("landesarchiv-owl")
    )
    out = tmp_path / f"{seed}-zip"
    out.mkdir()
    write_container(out, xa.build(built.start), {n: f.path for n, f in built.files.items()})
    [path] = out.glob("*.zip")
    return path


def _rewrite(src: Path, target: Path, members: list[tuple[Any, bytes]]) -> Path:
    import warnings
    import zipfile

    with (
        warnings.catch_warnings(),
        zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf,
    ):
        warnings.simplefilter("ignore", UserWarning)  # the duplicate member is the point
        for info, data in members:
            zf.writestr(info, data)
    return target


def test_a_dms_container_is_accepted_and_hostile_ones_are_refused(env: Env, tmp_path: Path) -> None:
    import stat
    import zipfile

    good = _container_of(env, tmp_path, "dms-container")
    with zipfile.ZipFile(good) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    xml_name = members[0][0]
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    cases = {
        "traversal": [*members, ("../etc/passwd", b"x")],
        "absolute": [*members, ("/tmp/evil", b"x")],
        "duplicate": [*members, (members[1][0], b"other")],
        "missing": members[:-1],
        "unreferenced": [*members, ("extra.pdf", b"%PDF-1.4")],
        "bomb": [*members[:-1], (members[-1][0], b"\0" * (64 << 20))],
    }
    link = zipfile.ZipInfo(members[1][0] + ".lnk")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    cases["symlink"] = [*members, (link, b"/etc/passwd")]
    taken = []
    for name, content in cases.items():
        folder = hostile / name
        folder.mkdir()
        path = _rewrite(good, folder / good.name, content)
        try:
            hand_over(env.rt, path)
            taken.append(name)
        except HandOverError as exc:
            assert good.name in str(exc)  # names the container
    assert taken == []
    other = str(uuid.uuid4())
    renamed = hostile / "renamed"
    renamed.mkdir()
    pid = good.name.split("_", 1)[0]
    wrong = _rewrite(
        good,
        renamed / good.name.replace(pid, other),
        [(n.replace(pid, other) if n == xml_name else n, d) for n, d in members],
    )
    with pytest.raises(HandOverError, match=r"ProzessID|does not match|mismatch"):
        hand_over(env.rt, wrong)
    assert env.journal.messages(direction=Direction.INBOUND) == []  # nothing stored
    assert xml_name.endswith(".xml")

    done = hand_over(env.rt, good)  # the genuine container is taken and passed on
    assert done.procedure == "aussonderung-zweistufig" and done.files == 3
    result = _run("aussonderung-zweistufig", done.message_uuid)
    assert result["status"] == "closed", result
