"""A SIMULATED Landesarchiv for demo and tests — not the Landesarchiv NRW, and no archive software.

It answers as an archive would in the xdomea Aussonderung and says that it is a stub: every
message it writes carries the Kopf ``Hinweis`` :data:`STUB_NOTICE`, its archive signatures end in
``(simuliert)``, and it logs ``simulated archive`` on every answer.

* 0501 → 0504 (Anbietung empfangen), then 0502 appraising by a simple rule: the agency's
  Bewertungsvorschlag is followed; an Akte without one is archivwürdig (A), a Vorgang or Teilakte
  without one follows its Akte (no Bewertung of its own).
* 0503 → 0507 (Aussonderung empfangen), then 0506: every Akte and Vorgang handed over is
  "imported" with an archive signature; a document whose primary file is missing or whose SHA-512
  does not match fails the import of its top-level record (so tests see a failed import).

:class:`ArchiveStub` is transport-neutral (payload in, payloads out); :func:`archive_stub_hook`
makes it the ``on_accepted`` hook of the archive's inbox (HTTP), answering to the city's inbox.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from connectors.directory import Agency, Directory
from connectors.journal import Direction, Journal
from connectors.senders import OutgoingMessage, sender_for
from xoev.message import xdomea_message_key
from xoev.xdomea import aussonderung as xa
from xoev.xdomea.records import Akte, Aussonderungsart, Dokument, Record, Vorgang, iter_records

from .build import kopf

__all__ = ["STUB_NOTICE", "ArchiveStub", "archive_stub_hook", "transfer_stub"]

log = logging.getLogger("amtsbote.archive_stub")

REPLY_GAP = 0.0
"""Seconds the simulated archive waits between its two answers (a test makes it slow, so that
the procedure waits for the second one)."""
STUB_NOTICE = "Simulierter Partner (amtsbote archive stub) - kein Landesarchiv, nur Test und Demo"


class ArchiveStub:
    """The simulated archive's answers (module docstring)."""

    def __init__(
        self,
        archive: Agency,
        city: Agency,
        *,
        signature: str = "LAV NRW OWL, D 106 Paderborn Nr. {n} (simuliert)",
    ) -> None:
        self.archive, self.city, self.signature = archive, city, signature

    def _kopf(self, msg: xa.AussonderungsNachricht) -> Any:
        return kopf(
            msg.kopf.prozess_id, absender=self.archive, empfaenger=self.city, hinweis=STUB_NOTICE
        )

    def answer(
        self, payload: bytes, *, file_ok: Callable[[str], bool] | None = None
    ) -> list[bytes]:
        """The stub's answers to ``payload`` in order (none to what it does not answer).
        ``file_ok(dateiname)`` tells whether a primary document arrived intact (default: yes)."""
        msg = xa.parse(payload)
        log.info(
            "simulated archive %s answers xdomea %s of process %s",
            self.archive.id,
            msg.TYPE,
            msg.kopf.prozess_id,
        )
        if isinstance(msg, xa.Anbietung):
            return [
                xa.build(xa.AnbietungEmpfangen(kopf=self._kopf(msg), version=msg.version)),
                xa.build(
                    xa.Bewertungsverzeichnis(
                        kopf=self._kopf(msg), version=msg.version, bewertungen=self.appraise(msg)
                    )
                ),
            ]
        if isinstance(msg, xa.Aussonderung):
            return [
                xa.build(xa.AussonderungEmpfangen(kopf=self._kopf(msg), version=msg.version)),
                xa.build(
                    xa.ImportBestaetigung(
                        kopf=self._kopf(msg),
                        version=msg.version,
                        ergebnisse=self.imports(msg, file_ok),
                    )
                ),
            ]
        return []

    @staticmethod
    def appraise(msg: xa.Anbietung) -> tuple[xa.Bewertung, ...]:
        out, tops = [], {r.id for r in msg.schriftgutobjekte}
        for r in iter_records(msg.schriftgutobjekte):
            if isinstance(r, Dokument):
                continue
            vorschlag = r.archiv.bewertungsvorschlag if r.archiv is not None else None
            if vorschlag is not None:
                out.append(xa.Bewertung(id=r.id, aussonderungsart=vorschlag))
            elif isinstance(r, Akte) and r.id in tops:
                out.append(xa.Bewertung(id=r.id, aussonderungsart=Aussonderungsart.ARCHIVWUERDIG))
        return tuple(out)

    def imports(
        self, msg: xa.Aussonderung, file_ok: Callable[[str], bool] | None
    ) -> tuple[xa.AusgesondertesObjekt, ...]:
        out = []
        for top in msg.schriftgutobjekte:
            broken = [
                f.dateiname
                for r in iter_records((top,))
                if isinstance(r, Dokument)
                for v in r.versionen
                for f in v.formate
                if file_ok is not None and not file_ok(f.dateiname)
            ]
            for r in iter_records((top,)):
                if not isinstance(r, Akte | Vorgang):
                    continue
                if broken:
                    out.append(
                        xa.AusgesondertesObjekt(
                            id=r.id,
                            erfolgreich=False,
                            fehlermeldungen=(
                                f"Primärdatei fehlt oder ist beschädigt: {broken[0]}",
                            ),
                        )
                    )
                else:
                    out.append(
                        xa.AusgesondertesObjekt(
                            id=r.id,
                            erfolgreich=True,
                            archivkennung=self.signature.format(n=_number(r)),
                        )
                    )
        return tuple(out)


def _number(r: Record) -> str:
    return str(zlib.crc32(r.id.encode()) % 100000)


_ANSWERED = (xa.Anbietung.ROOT, xa.Aussonderung.ROOT)


def archive_stub_hook(
    directory: Directory,
    archive: Agency,
    city: Agency,
    journal: Journal,
    *,
    delay: float = 0.2,
    attempts: int = 20,
) -> Callable[..., None]:
    """The archive's inbox hook: answer every 0501/0503 it accepts, to the city's inbox."""
    stub = ArchiveStub(archive, city)

    def file_ok_for(key: str) -> Callable[[str], bool]:
        held: Mapping[str, Any] = {f.name: f for f in journal.blobs.files_of(key)}

        def ok(name: str) -> bool:
            f = held.get(name)
            if f is None:
                return False
            try:
                journal.blobs.verify(f.digest)
            except Exception:
                return False
            return True

        return ok

    def run(key: str) -> None:
        time.sleep(delay)
        payload = journal.payload(key, direction=Direction.INBOUND)
        answers = stub.answer(payload, file_ok=file_ok_for(key))
        with sender_for(city.id, directory) as sender:
            for n, data in enumerate(answers):
                if n:
                    time.sleep(REPLY_GAP)
                reply = xa.parse(data)
                message = OutgoingMessage(
                    payload=data,
                    nachrichten_uuid=xdomea_message_key(reply.kopf.prozess_id, reply.TYPE),
                    recipient=city.id,
                    sender=archive.id,
                )
                for attempt in range(attempts):
                    try:
                        sender.send(message)
                        break
                    except Exception as exc:  # the city's inbox may be restarting
                        log.debug("simulated archive: attempt %d failed: %s", attempt, exc)
                        time.sleep(0.5)

    def on_accepted(record: Any, info: Any, created: bool) -> None:
        if created and record.standard == "xdomea" and record.message_type in _ANSWERED:
            threading.Thread(
                target=run, args=(record.nachrichten_uuid,), daemon=True, name="simulated-archive"
            ).start()

    return on_accepted


def transfer_stub(root: Path | str, archive: Agency, city: Agency, *, min_age: float = 0.0) -> Any:
    """The simulated archive on its transfer area (the folder itself, or the folder a WebDAV
    server shares): reads what amtsbote wrote into the root (0501, 0503, 0505) and writes its
    answers as containers into a folder per type (x-man's ``Path0502`` … layout). Returns a
    :class:`~connectors.transfer.TransferDirPoller`; call ``poll_once()`` (or run it in a
    :class:`~connectors.inbox.transfer.PollerThread`)."""
    from connectors.transfer import TransferDirPoller, TransferLayout
    from xoev.container import read_container, write_container

    area = Path(root)
    stub = ArchiveStub(archive, city)

    def accept(path: Path, *, source: str) -> None:
        read = read_container(path)
        for data in stub.answer(read.xml, file_ok=lambda name: name in read.files):
            reply = xa.parse(data)
            folder = area / reply.ROOT
            folder.mkdir(exist_ok=True)
            with tempfile.TemporaryDirectory(dir=area, prefix=".stub-") as tmp:
                write_container(tmp, data)
                [built] = Path(tmp).glob("*.zip")
                target = folder / built.name
                if not target.exists():
                    os.link(built, target)  # atomic, never replaces

    layout = TransferLayout(receive_types=frozenset({"0501", "0503", "0505"}), done=".archive-done")
    return TransferDirPoller(area, accept, layout=layout, min_age=min_age)
