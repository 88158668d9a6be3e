"""Fill a message journal with realistic synthetic Gewerbe cases — for benchmarks and tests.

::

    .venv/bin/python bench/generate.py --database-url sqlite:///var/bench/journal.sqlite \
        [--cases 10000] [--seed 1] [--days 90]

or from code (tests use small ``cases`` and a fixed ``seed`` and ``now``)::

    from bench.generate import GeneratorOptions, generate
    stats = generate("sqlite:///…/journal.sqlite", GeneratorOptions(cases=200, seed=7, now=…))

What a case looks like (the shape the procedures in ``flows/`` write):

* intake: the notification (``gwa.gewerbemeldung.0010`` from the portal ``wsp-nrw``) is received
  with a mailbox delivery for the Stadt Paderborn, the case is opened a few seconds later
  (``case.created``, ``correlation.consumed``) and planned (``case.planned``);
* procedures ~70 % Anmeldung, 20 % Ummeldung, 10 % Abmeldung; 5–8 outbound messages per case
  (IT.NRW, Finanzamt, DGUV, IHK or HWK (sometimes both), Arbeitsschutz, Lebensmittelüberwachung);
* a non-EU national (Anmeldung/Ummeldung) makes a consultation of the Ausländerbehörde: message,
  expectation, Rückmeldung 1–6 working days later, ``case.reply``;
* erlaubnispflichtige Gewerbe wait for a clerk's approval (``case.decision``) — working hours only,
  a few are left waiting far beyond the 10-working-day rule; some are rejected;
* sending: per-agency failure rates, retries after 2/10/60/300 s; 2 % of the deliveries become
  dead letters (permanent errors at once, transient ones after 5 attempts), 40 % of those are
  redelivered some working days later (so ~1.2 % stay dead); the mailbox agency (IHK) fetches
  in working hours;
* everything after ``now`` has not happened yet: recent cases are open, waiting or in flight.

Intake is spread over the last ``days`` days, fewer on weekends and NRW public holidays, and
human steps (approval, replies, mailbox fetches) happen in working hours on working days, so
lead times show the weekend and holiday effects.

Payloads are small synthetic XML, zlib-compressed like the journal stores them (or encrypted
with ``key``), and carry **fictitious** names, birth dates and streets from
:data:`FICTITIOUS_NAMES` — so tests can prove that retention removed them. No real personal data.

Rows are bulk-inserted with SQLAlchemy Core ``executemany`` in chunks of cases (ids assigned
here), directly into the journal's tables (the database must be empty; the schema is created by
the journal's migrations). :func:`write_cases` writes hand-made :class:`SynthCase` timelines, for
tests that need exact dates.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import holidays  # noqa: E402
from sqlalchemy import Engine, func, select, text  # noqa: E402

from connectors.journal import models  # noqa: E402
from connectors.journal.crypto import PayloadCodec  # noqa: E402
from connectors.journal.engine import (  # noqa: E402
    JournalOptions,
    create_journal_engine,
    prepare_sqlite_file,
    sqlite_file,
)
from connectors.journal.migrate import upgrade  # noqa: E402

__all__ = [
    "AGENCIES",
    "FICTITIOUS_NAMES",
    "GeneratorOptions",
    "GeneratorStats",
    "SynthAttempt",
    "SynthCase",
    "SynthDelivery",
    "SynthEvent",
    "SynthExpectation",
    "SynthMessage",
    "epoch",
    "generate",
    "synth_payload",
    "write_cases",
]

BERLIN = ZoneInfo("Europe/Berlin")
HOME = "stadt-paderborn"
PORTAL = "wsp-nrw"
#: Agency id → Behördenkennung (as in deployments/owl/agencies.yaml).
AGENCIES = {
    "stadt-paderborn": "MELDID:05774032",
    "kreis-paderborn": "MELDID:05774000",
    "bezreg-detmold": "ARBS:057",
    "it-nrw": "STLA:05",
    "ihk-owl": "IHK:0521",
    "hwk-owl": "HWK:0522",
    "finanzamt-paderborn": "BUFA:5339",
    "dguv": "UVT:15087927",
    "wsp-nrw": "PORTAL:05-wsp",
}
MAILBOX_AGENCIES = frozenset({"ihk-owl"})
#: Per agency: probability that one send attempt fails, typical send duration (s).
AGENCY_BEHAVIOUR = {
    "it-nrw": (0.01, 0.3),
    "finanzamt-paderborn": (0.005, 0.05),
    "dguv": (0.06, 1.2),
    "ihk-owl": (0.02, 0.4),
    "hwk-owl": (0.03, 0.8),
    "bezreg-detmold": (0.04, 0.6),
    "kreis-paderborn": (0.02, 0.5),
}
RETRY_DELAYS = (2.0, 10.0, 60.0, 300.0)
TRANSIENT_ERRORS = (
    ("SendTimeout", None, "no answer within 30 s"),
    ("SendConnectionError", None, "connection refused by the recipient's endpoint"),
    ("SendHTTPError", 503, "HTTP 503 Service Unavailable from the recipient's inbox"),
    ("SendHTTPError", 502, "HTTP 502 Bad Gateway from the recipient's inbox"),
)
PERMANENT_ERRORS = (
    ("SendRejected", 422, "HTTP 422: the recipient refused the message (schema)"),
    ("SendRejected", 403, "HTTP 403: the recipient does not accept this message type"),
)
PROCEDURES = (
    ("gewerbeanmeldung", 0.70, "anmeldung"),
    ("gewerbeummeldung", 0.20, "ummeldung"),
    ("gewerbeabmeldung", 0.10, "abmeldung"),
)
RUECKMELDUNG = "amt.rueckmeldung.0900"
_EPOCH = datetime(1970, 1, 1)
_RUN_NAMESPACE = uuid.UUID("0b6f4d1e-8a43-4c59-9a0e-3c1d2f6e7a10")
NOTIFICATION = "gwa.gewerbemeldung.0010"

#: Fictitious personal data put into payloads (first names, family names, streets, birth
#: dates). Made up on purpose so that a scan of a database dump can prove their absence.
FICTITIOUS_NAMES: dict[str, tuple[str, ...]] = {
    "vorname": (
        "Ilvana",
        "Torbek",
        "Mirjel",
        "Aswinda",
        "Feodorin",
        "Quirinja",
        "Balthus",
        "Ysolde",
        "Kasimo",
        "Wendeline",
    ),
    "familienname": (
        "Quendelbrock",
        "Wirrlandt",
        "Pfiffelkamp",
        "Zorrenbeek",
        "Murkelhaus",
        "Trundelmann",
        "Fessenbrink",
        "Quackhorst",
        "Schnirrwald",
        "Plumpeck",
    ),
    "strasse": (
        "Synthetikweg",
        "Fiktivstraße",
        "Am Erfundenen Hof",
        "Zauselgasse",
        "Schimärenallee",
    ),
    "geburtsdatum": ("1961-02-29", "1977-13-01", "1988-04-31", "1993-06-31", "2001-09-31"),
}


def epoch(value: datetime) -> float:
    """Seconds since 1970 of an aware datetime (the generator's internal time scale)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime; give an aware one")
    return value.timestamp()


# --------------------------------------------------------------------------- timelines


@dataclass(slots=True)
class SynthAttempt:
    at: float
    ok: bool
    status_code: int | None = None
    error_class: str | None = None
    error: str | None = None
    duration_ms: int | None = None


@dataclass(slots=True)
class SynthDelivery:
    """One message for one recipient. ``states``: ``(at, state, actor)`` in order, the first is
    the creation; the row gets the last one. ``attempts`` in order."""

    recipient: str
    states: list[tuple[float, str, str]]
    attempts: list[SynthAttempt] = field(default_factory=list)
    next_attempt_at: float | None = None


@dataclass(slots=True)
class SynthMessage:
    nachrichten_uuid: str
    direction: str
    message_type: str
    recorded_at: float
    author: str | None
    reader: str | None
    sender_agency: str | None
    payload: bytes
    deliveries: list[SynthDelivery] = field(default_factory=list)
    in_reply_to: str | None = None
    correlation_state: str | None = None
    standard: str = "XGewerbeanzeige"
    version: str = "2.2"
    actor: str = "outbox"


@dataclass(slots=True)
class SynthEvent:
    at: float
    kind: str
    actor: str
    detail: dict[str, Any]
    nachrichten_uuid: str | None = None


@dataclass(slots=True)
class SynthExpectation:
    created_at: float
    updated_at: float
    state: str
    in_reply_to: str | None
    message_type: str | None
    from_agency: str | None
    reply_uuid: str | None = None
    expires_at: float | None = None


@dataclass(slots=True)
class SynthCase:
    """A case as of ``now``: ``statuses`` ``(at, status)`` in order (the first at creation),
    ``summary`` as it stands, the messages with their deliveries, and the events that are not
    derived from those (``case.planned``, ``case.decision``, ``case.reply``, correlation)."""

    case_id: str
    procedure: str
    created_at: float
    statuses: list[tuple[float, str]]
    summary: dict[str, Any]
    messages: list[SynthMessage] = field(default_factory=list)
    events: list[SynthEvent] = field(default_factory=list)
    expectations: list[SynthExpectation] = field(default_factory=list)


def synth_payload(message_type: str, nachrichten_uuid: str, rng: random.Random) -> bytes:
    """A small XML document with fictitious personal data (see :data:`FICTITIOUS_NAMES`)."""
    f = FICTITIOUS_NAMES
    first = rng.choice(f["vorname"])
    last = rng.choice(f["familienname"])
    street = rng.choice(f["strasse"])
    born = rng.choice(f["geburtsdatum"])
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<synth:nachricht xmlns:synth="urn:amtsbote:synthetisch" typ="{message_type}" '
        f'uuid="{nachrichten_uuid}">'
        f"<person><vorname>{first}</vorname><familienname>{last}</familienname>"
        f"<geburtsdatum>{born}</geburtsdatum><anschrift><strasse>{street}</strasse>"
        f"<hausnummer>{rng.randint(1, 120)}</hausnummer><plz>33098</plz><ort>Paderborn</ort>"
        f"</anschrift></person><betrieb><name>{last} Handel und Dienste</name>"
        f"<wz>{rng.choice(('47.11', '56.10', '43.22', '62.01', '96.02'))}</wz></betrieb>"
        "</synth:nachricht>\n"
    ).encode()


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class GeneratorOptions:
    """What to generate. Shares are probabilities per case or per delivery."""

    cases: int = 10_000
    seed: int = 1
    days: int = 90
    """Intake is spread over the ``days`` days before ``now``."""
    now: datetime | None = None
    """The end of the period; nothing happens after it (default: now)."""
    dead_share: float = 0.02
    """Deliveries that become dead letters."""
    redeliver_share: float = 0.4
    """Of the dead letters: redelivered successfully some working days later."""
    approval_share: float = 0.10
    """Anmeldungen/Ummeldungen of erlaubnispflichtige Gewerbe (clerk approval)."""
    reject_share: float = 0.05
    """Of the approvals: rejected."""
    stuck_share: float = 0.05
    """Of the approvals: the clerk takes 8–25 working days (overdue cases)."""
    consult_share: float = 0.12
    """Anmeldungen/Ummeldungen with a non-EU national (consultation)."""
    chunk: int = 1000
    """Cases per transaction."""
    key: str | None = None
    """Fernet key: encrypt payloads like a journal with ``AMTSBOTE_JOURNAL_KEY``."""


@dataclass(slots=True)
class GeneratorStats:
    cases: int = 0
    messages: int = 0
    deliveries: int = 0
    attempts: int = 0
    events: int = 0
    expectations: int = 0
    dead: int = 0
    seconds: float = 0.0

    def add(self, other: GeneratorStats) -> None:
        for name in (
            "cases",
            "messages",
            "deliveries",
            "attempts",
            "events",
            "expectations",
            "dead",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))


# --------------------------------------------------------------------------- calendar


class _Calendar:
    """Working hours (08:00–16:00 Europe/Berlin, Mon–Fri, not on NRW public holidays)."""

    START_H = 8
    END_H = 16

    def __init__(self, first: date, last: date) -> None:
        years = range(first.year - 1, last.year + 2)
        self.holidays = frozenset(holidays.Germany(subdiv="NW", years=years))

    def working(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def add_work_hours(self, t: float, hours: float) -> float:
        """``t`` plus ``hours`` of working time (starting at the next working moment)."""
        local = datetime.fromtimestamp(t, BERLIN)
        remaining = hours * 3600.0
        for _ in range(400):
            day = local.date()
            if self.working(day):
                start = datetime(day.year, day.month, day.day, self.START_H, tzinfo=BERLIN)
                end = datetime(day.year, day.month, day.day, self.END_H, tzinfo=BERLIN)
                begin = max(local, start)
                if begin < end:
                    available = (end - begin).total_seconds()
                    if remaining <= available:
                        return (begin + timedelta(seconds=remaining)).timestamp()
                    remaining -= available
            nxt = day + timedelta(days=1)
            local = datetime(nxt.year, nxt.month, nxt.day, 0, tzinfo=BERLIN)
        return local.timestamp()


# --------------------------------------------------------------------------- the simulation


class _Simulator:
    def __init__(self, opts: GeneratorOptions, now: float) -> None:
        self.o = opts
        self.now = now
        self.rng = random.Random(opts.seed)
        start = now - opts.days * 86400.0
        self.start = start
        self.cal = _Calendar(
            datetime.fromtimestamp(start, BERLIN).date(), datetime.fromtimestamp(now, BERLIN).date()
        )
        self.codec = PayloadCodec(opts.key) if opts.key else None

    # ------------------------------------------------------------------ helpers

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def intake_times(self) -> list[float]:
        rng, cal = self.rng, self.cal
        times: list[float] = []
        span = self.now - self.start
        while len(times) < self.o.cases:
            t = self.start + rng.random() * (span - 60.0)
            local = datetime.fromtimestamp(t, BERLIN)
            if cal.working(local.date()):
                weight = 1.0 if 7 <= local.hour < 19 else 0.12
            elif local.weekday() == 5 and local.date() not in cal.holidays:
                weight = 0.25 if 8 <= local.hour < 22 else 0.04
            else:
                weight = 0.10 if 9 <= local.hour < 21 else 0.03
            if rng.random() < weight:
                times.append(round(t, 3))
        times.sort()
        return times

    # ------------------------------------------------------------------ one case

    def case(self, case_id: str, t0: float) -> SynthCase:
        rng, now = self.rng, self.now
        r = rng.random()
        procedure, kind = PROCEDURES[-1][0], PROCEDURES[-1][2]
        acc = 0.0
        for name, share, meldungsart in PROCEDURES:
            acc += share
            if r < acc:
                procedure, kind = name, meldungsart
                break
        active = kind != "abmeldung"
        handwerk = rng.random() < 0.2
        food = rng.random() < 0.2
        non_eu = active and rng.random() < self.o.consult_share
        approval = active and rng.random() < self.o.approval_share
        facts = {
            "meldungsart": kind,
            "handwerk": handwerk,
            "reisegewerbe": rng.random() < 0.03,
            "wz": ["5610"] if food else [rng.choice(("4711", "4322", "6201", "9602"))],
            "nationality": ["non-eu"] if non_eu else ["eu", "german"],
            "land": "05",
        }
        notification_uuid = self.uuid()
        notification = SynthMessage(
            nachrichten_uuid=notification_uuid,
            direction="inbound",
            message_type=NOTIFICATION,
            recorded_at=t0,
            author=AGENCIES[PORTAL],
            reader=AGENCIES[HOME],
            sender_agency=PORTAL,
            payload=self.payload(NOTIFICATION, notification_uuid),
            deliveries=[SynthDelivery(HOME, [(t0, "delivered", "inbox")])],
            correlation_state="consumed",
            actor="inbox",
        )
        created = round(min(t0 + rng.uniform(1.0, 20.0), now), 3)
        case = SynthCase(
            case_id=case_id,
            procedure=procedure,
            created_at=created,
            statuses=[(created, "open")],
            summary={"facts": facts},
            messages=[notification],
        )
        routes: list[tuple[str, str, str]] = [
            ("statistik", "it-nrw", "sta.gewerbemeldung.0100"),
            ("finanzamt", "finanzamt-paderborn", "fa.gewerbemeldung.0240"),
            ("unfallversicherung", "dguv", "dgu.gewerbemeldung.0230"),
            ("arbeitsschutz", "bezreg-detmold", "gaa.gewerbemeldung.0250"),
        ]
        if handwerk:
            routes.append(("hwk", "hwk-owl", "hwk.gewerbemeldung.0210"))
            if rng.random() < 0.3:
                routes.append(("ihk", "ihk-owl", "ihk.gewerbemeldung.0200"))
        else:
            routes.append(("ihk", "ihk-owl", "ihk.gewerbemeldung.0200"))
        if food:
            routes.append(
                ("lebensmittelueberwachung", "kreis-paderborn", "lue.gewerbemeldung.0290")
            )
        consults = [("auslaenderbehoerde", "kreis-paderborn", "abh.gewerbemeldung.0500")]
        planned = created + rng.uniform(0.5, 3.0)
        case.events.append(
            SynthEvent(
                planned,
                "case.planned",
                "check",
                {
                    "approval": approval,
                    "consult": [c[0] for c in consults] if non_eu else [],
                    "distribute": [r[0] for r in routes],
                },
            )
        )
        t = planned
        if non_eu:
            t = self.consult(case, consults[0], t)
            if t < 0:
                return case
            reply_code = "01" if rng.random() < 0.9 else "02"
            if reply_code != "01":
                approval = True
        if approval:
            t = self.approve(case, t)
            if t < 0:
                return case
            if case.summary.get("outcome") == "rejected":
                return case
        self.distribute(case, routes, t)
        return case

    def status(
        self,
        case: SynthCase,
        at: float,
        status: str,
        actor: str,
        detail: dict[str, Any] | None = None,
        *,
        summary: bool = False,
    ) -> bool:
        """Change the case status at ``at``; False (nothing done) when that is after now."""
        if at > self.now:
            return False
        at = round(at, 3)
        case.statuses.append((at, status))
        case.events.append(
            SynthEvent(
                at,
                "case.updated",
                actor,
                {
                    **(detail or {}),
                    "changed": ["status", "summary"] if summary else ["status"],
                    "from": case.statuses[-2][1],
                    "to": status,
                },
            )
        )
        return True

    def payload(self, message_type: str, nachrichten_uuid: str) -> bytes:
        return synth_payload(message_type, nachrichten_uuid, self.rng)

    def outbound(
        self,
        case: SynthCase,
        rule: str,
        recipient: str,
        message_type: str,
        t: float,
        *,
        fail_all: bool | None = None,
    ) -> tuple[SynthMessage, float]:
        """Record and send one message; returns it and the time it is acknowledged (delivered,
        or fetched for the mailbox agency) — ``inf`` if not (yet)."""
        msg_uuid = self.uuid()
        msg = SynthMessage(
            nachrichten_uuid=msg_uuid,
            direction="outbound",
            message_type=message_type,
            recorded_at=round(t, 3),
            author=AGENCIES[HOME],
            reader=AGENCIES[recipient],
            sender_agency=HOME,
            payload=self.payload(message_type, msg_uuid),
            actor=f"rule:{rule}",
        )
        case.messages.append(msg)
        d = SynthDelivery(recipient, [(msg.recorded_at, "created", f"rule:{rule}")])
        msg.deliveries.append(d)
        done = self.send(d, msg.recorded_at, fail_all=fail_all)
        return msg, done

    def send(self, d: SynthDelivery, t: float, *, fail_all: bool | None = None) -> float:
        rng, now = self.rng, self.now
        fail_p, duration = AGENCY_BEHAVIOUR[d.recipient]
        if fail_all is None:
            fail_all = rng.random() < self.o.dead_share
        permanent = fail_all and rng.random() < 0.25
        transient = rng.choice(TRANSIENT_ERRORS)
        t += rng.uniform(0.05, 0.5)
        for n in range(len(RETRY_DELAYS) + 1):
            if t > now:
                return float("inf")
            ms = max(1, int(rng.lognormvariate(0, 0.6) * duration * 1000))
            end = round(t + ms / 1000.0, 3)
            fails = fail_all or rng.random() < fail_p
            if not fails:
                if end > now:
                    return float("inf")
                if d.states[-1][1] in ("created", "failed"):
                    d.states.append((end, "sent", "sender"))
                d.states.append((end, "delivered", "sender"))
                d.attempts.append(SynthAttempt(end, True, 202, duration_ms=ms))
                d.next_attempt_at = None
                if d.recipient in MAILBOX_AGENCIES:
                    fetched = round(self.cal.add_work_hours(end, rng.uniform(0.2, 14.0)), 3)
                    if fetched <= now:
                        d.states.append((fetched, "fetched", d.recipient))
                        return fetched
                    return float("inf")
                return end
            error_class, code, message = rng.choice(PERMANENT_ERRORS) if permanent else transient
            if end > now:
                return float("inf")
            d.attempts.append(SynthAttempt(end, False, code, error_class, message, ms))
            if d.states[-1][1] != "failed":
                d.states.append((end, "failed", "sender"))
            if permanent or n == len(RETRY_DELAYS):
                dead_at = round(end + rng.uniform(0.01, 0.2), 3)
                if dead_at > now:
                    return float("inf")
                d.states.append((dead_at, "dead", "sender"))
                d.next_attempt_at = None
                return float("inf")
            t = end + RETRY_DELAYS[n]
            d.next_attempt_at = round(t, 3)
        return float("inf")  # pragma: no cover - the loop returns

    def consult(self, case: SynthCase, route: tuple[str, str, str], t: float) -> float:
        """Consultation; returns when the reply was taken, -1 if the case is still waiting."""
        rng, now = self.rng, self.now
        rule, recipient, message_type = route
        msg, done = self.outbound(case, rule, recipient, message_type, t, fail_all=False)
        if done == float("inf") or done > now:
            return -1
        expect_at = done + rng.uniform(0.05, 0.3)
        if expect_at > now:
            return -1
        expectation = SynthExpectation(
            created_at=expect_at,
            updated_at=expect_at,
            state="waiting",
            in_reply_to=msg.nachrichten_uuid,
            message_type=RUECKMELDUNG,
            from_agency=AGENCIES[recipient],
            expires_at=expect_at + 10 * 86400.0,
        )
        case.expectations.append(expectation)
        case.events.append(
            SynthEvent(
                expect_at,
                "correlation.expected",
                f"consult:{rule}",
                {
                    "message_type": RUECKMELDUNG,
                    "from_agency": AGENCIES[recipient],
                },
                msg.nachrichten_uuid,
            )
        )
        self.status(case, expect_at + 0.01, "waiting", "consult", {"waiting_for": f"reply:{rule}"})
        replied = self.cal.add_work_hours(expect_at, rng.uniform(4.0, 48.0))
        if replied > now:
            return -1
        replied = round(replied, 3)
        reply_uuid = self.uuid()
        reply = SynthMessage(
            nachrichten_uuid=reply_uuid,
            direction="inbound",
            message_type=RUECKMELDUNG,
            recorded_at=replied,
            author=AGENCIES[recipient],
            reader=AGENCIES[HOME],
            sender_agency=recipient,
            payload=self.payload(RUECKMELDUNG, reply_uuid),
            deliveries=[SynthDelivery(HOME, [(replied, "delivered", "inbox")])],
            in_reply_to=msg.nachrichten_uuid,
            correlation_state="consumed",
            standard="amtsbote.rueckmeldung",
            version="1.0",
            actor="inbox",
        )
        case.messages.append(reply)
        expectation.state, expectation.reply_uuid = "satisfied", reply_uuid
        expectation.updated_at = replied
        case.events.append(SynthEvent(replied, "correlation.matched", "inbox", {}, reply_uuid))
        taken = replied + rng.uniform(0.5, 5.0)
        if taken > now:
            reply.correlation_state = "matched"
            return -1
        case.events.append(
            SynthEvent(
                taken, "correlation.consumed", f"consult:{rule}", {"from": "matched"}, reply_uuid
            )
        )
        case.events.append(
            SynthEvent(
                taken, "case.reply", f"consult:{rule}", {"ergebnis": "01", "rule": rule}, reply_uuid
            )
        )
        self.status(case, taken + 0.01, "open", "consult")
        return taken + 0.02

    def approve(self, case: SynthCase, t: float) -> float:
        rng, now = self.rng, self.now
        if not self.status(case, t, "waiting", "approve", {"waiting_for": "approval"}):
            return -1
        if rng.random() < self.o.stuck_share:
            hours = rng.uniform(8, 25) * 8
        else:
            hours = rng.uniform(0.5, 24.0)
        decided = self.cal.add_work_hours(t, hours)
        if decided > now:
            return -1
        decision = "reject" if rng.random() < self.o.reject_share else "approve"
        case.events.append(
            SynthEvent(
                decided,
                "case.decision",
                "cli",
                {
                    "decision": decision,
                    "reason": "ok" if decision == "approve" else "permit-missing",
                    "via": "cli",
                },
            )
        )
        back = decided + rng.uniform(0.5, 5.0)
        if not self.status(case, back, "open", "approve", {"decision": decision}):
            return -1
        if decision == "reject":
            closed = back + rng.uniform(0.1, 1.0)
            if self.status(case, closed, "closed", "close", summary=True):
                case.summary = {
                    **case.summary,
                    "outcome": "rejected",
                    "deliveries": {},
                    "recipients": [],
                }
            return closed
        return back + 0.01

    def distribute(self, case: SynthCase, routes: list[tuple[str, str, str]], t: float) -> None:
        rng, now = self.rng, self.now
        for rule, recipient, message_type in routes:
            self.outbound(case, rule, recipient, message_type, t)
        sent = [m for m in case.messages if m.direction == "outbound"]
        deliveries = [d for m in sent for d in m.deliveries]
        # the flow closes once every delivery is delivered or dead (mailbox fetches may follow)
        ends = [at for d in deliveries for at, s, _ in d.states if s in ("delivered", "dead")]
        if len(ends) < len(deliveries):
            return  # still sending at `now`
        close_at = max(ends) + rng.uniform(0.5, 60.0)
        dead = [d for d in deliveries if d.states[-1][1] == "dead"]
        if close_at > now:
            return
        self.finish(case, close_at, "failed" if dead else "closed", deliveries)
        if not dead:
            return
        # redelivery of dead letters by an operator, some working days later
        if rng.random() >= self.o.redeliver_share:
            return
        again = self.cal.add_work_hours(close_at, rng.uniform(4.0, 40.0))
        if again > now:
            return
        for d in dead:
            d.states.append((round(again, 3), "created", "redeliver"))
            self.send(d, again, fail_all=False)
        if all(d.states[-1][1] in ("delivered", "fetched") for d in dead):
            last = max(d.states[-1][0] for d in dead) + rng.uniform(0.5, 5.0)
            if last <= now:
                self.finish(case, last, "closed", deliveries, actor="redeliver")

    def finish(
        self,
        case: SynthCase,
        at: float,
        status: str,
        deliveries: list[SynthDelivery],
        actor: str = "close",
    ) -> None:
        counts: dict[str, int] = {}
        for d in deliveries:
            state = d.states[-1][1]
            for s_at, s_state, _ in reversed(d.states):
                if s_at <= at:
                    state = s_state
                    break
            counts[state] = counts.get(state, 0) + 1
        summary = {
            **case.summary,
            "outcome": "dead-letters" if status == "failed" else "distributed",
            "deliveries": dict(sorted(counts.items())),
            "recipients": sorted({d.recipient for d in deliveries}),
        }
        if self.status(case, at, status, actor, summary=True):
            case.summary = summary


# --------------------------------------------------------------------------- writing


#: Column order of the rows written (tuples, driver-level executemany).
_COLUMNS: dict[str, tuple[str, ...]] = {
    "cases": (
        "case_id",
        "procedure",
        "status",
        "reference",
        "flow_run_id",
        "summary",
        "created_at",
        "updated_at",
        "closed_at",
    ),
    "messages": (
        "id",
        "nachrichten_uuid",
        "direction",
        "standard",
        "version",
        "message_type",
        "author",
        "reader",
        "sender_agency",
        "case_id",
        "payload",
        "payload_encoding",
        "payload_sha512",
        "size",
        "created_at",
        "recorded_at",
        "in_reply_to",
        "correlation_state",
    ),
    "deliveries": (
        "id",
        "message_id",
        "recipient",
        "state",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
        "updated_at",
    ),
    "delivery_attempts": (
        "id",
        "delivery_id",
        "at",
        "outcome",
        "status_code",
        "error_class",
        "error",
        "duration_ms",
    ),
    "events": ("id", "at", "actor", "kind", "case_id", "nachrichten_uuid", "delivery_id", "detail"),
    "expectations": (
        "id",
        "case_id",
        "flow_run_id",
        "message_type",
        "from_agency",
        "in_reply_to",
        "state",
        "reply_uuid",
        "created_at",
        "updated_at",
        "expires_at",
    ),
}


def _insert_sql(table: str, dialect: str) -> str:
    columns = _COLUMNS[table]
    mark = "?" if dialect == "sqlite" else "%s"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


class _Writer:
    """Bulk insert of timelines: rows as tuples, one ``executemany`` per table and chunk
    (SQLAlchemy Core ``exec_driver_sql``: no per-row statement compilation). On SQLite
    timestamps are written as the journal's text format (UTC, microseconds) and JSON as text;
    on PostgreSQL as aware datetimes and JSON text cast by the server."""

    def __init__(self, engine: Engine, now: float, codec: PayloadCodec | None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.now = now
        self.codec = codec
        self.sql = {name: _insert_sql(name, self.dialect) for name in _COLUMNS}
        self.copy = os.environ.get("AMTSBOTE_BENCH_COPY", "1") != "0"
        self._days: dict[int, str] = {}
        with engine.connect() as conn:
            ids = {}
            for name in ("messages", "deliveries", "delivery_attempts", "events", "expectations"):
                t = models.metadata.tables[name]
                ids[name] = int(
                    conn.execute(select(func.coalesce(func.max(t.c.id), 0))).scalar() or 0
                )
        self.ids = ids

    def next_id(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    def ts(self, t: float | None) -> Any:
        if t is None:
            return None
        if self.dialect != "sqlite":
            return datetime.fromtimestamp(t, UTC)
        # the journal's SQLite text format, "YYYY-MM-DD HH:MM:SS.ffffff" in UTC
        micros = round(t * 1_000_000)
        day, rest = divmod(micros, 86_400_000_000)
        text_day = self._days.get(day)
        if text_day is None:
            text_day = self._days[day] = (_EPOCH + timedelta(days=day)).date().isoformat()
        hours, rest = divmod(rest, 3_600_000_000)
        minutes, rest = divmod(rest, 60_000_000)
        seconds, micro = divmod(rest, 1_000_000)
        return f"{text_day} {hours:02d}:{minutes:02d}:{seconds:02d}.{micro:06d}"

    @staticmethod
    def js(value: dict[str, Any]) -> str:
        return json.dumps(value, separators=(",", ":"))

    def encode(self, payload: bytes) -> tuple[bytes, str, str, int]:
        if self.codec is not None:
            enc = self.codec.encode(payload)
            return enc.data, enc.encoding, enc.sha512, enc.size
        return (
            zlib.compress(payload, 1),
            "zlib",
            hashlib.sha512(payload).hexdigest(),
            len(payload),
        )

    def write(self, cases: Sequence[SynthCase]) -> GeneratorStats:
        stats = GeneratorStats()
        rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in _COLUMNS}
        events: list[
            tuple[float, str, str, str | None, str | None, int | None, dict[str, Any] | str]
        ] = []
        ts, js = self.ts, self.js
        add_case, add_message = rows["cases"].append, rows["messages"].append
        add_delivery, add_attempt = rows["deliveries"].append, rows["delivery_attempts"].append
        add_event = events.append
        for case in cases:
            cid = case.case_id
            status_at, status = case.statuses[-1]
            ended = status in ("closed", "cancelled", "failed")
            add_case(
                (
                    cid,
                    case.procedure,
                    status,
                    None,
                    str(uuid.uuid5(_RUN_NAMESPACE, cid)),
                    js(case.summary),
                    ts(case.created_at),
                    ts(max(status_at, case.created_at)),
                    ts(status_at) if ended else None,
                )
            )
            add_event(
                (
                    case.created_at,
                    "intake",
                    "case.created",
                    cid,
                    case.messages[0].nachrichten_uuid if case.messages else None,
                    None,
                    {"procedure": case.procedure, "status": case.statuses[0][1]},
                )
            )
            for m in case.messages:
                mid = self.next_id("messages")
                data, encoding, sha, size = self.encode(m.payload)
                in_case = m.correlation_state != "unmatched"
                add_message(
                    (
                        mid,
                        m.nachrichten_uuid,
                        m.direction,
                        m.standard,
                        m.version,
                        m.message_type,
                        m.author,
                        m.reader,
                        m.sender_agency,
                        cid if in_case else None,
                        data,
                        encoding,
                        sha,
                        size,
                        ts(m.recorded_at - 0.5),
                        ts(m.recorded_at),
                        m.in_reply_to,
                        m.correlation_state,
                    )
                )
                detail: dict[str, Any] = {
                    "standard": m.standard,
                    "version": m.version,
                    "message_type": m.message_type,
                    "author": m.author,
                    "reader": m.reader,
                    "sender_agency": m.sender_agency,
                    "size": size,
                    "in_reply_to": m.in_reply_to,
                }
                if m.direction == "inbound":
                    add_event(
                        (
                            m.recorded_at,
                            m.actor,
                            "message.received",
                            None,
                            m.nachrichten_uuid,
                            None,
                            detail,
                        )
                    )
                else:
                    detail["recipients"] = [d.recipient for d in m.deliveries]
                    add_event(
                        (
                            m.recorded_at,
                            m.actor,
                            "message.queued",
                            cid,
                            m.nachrichten_uuid,
                            None,
                            detail,
                        )
                    )
                if m.direction == "inbound" and m is case.messages[0] and in_case:
                    add_event(
                        (
                            case.created_at,
                            "intake",
                            "correlation.consumed",
                            cid,
                            m.nachrichten_uuid,
                            None,
                            {"from": "unmatched"},
                        )
                    )
                # inbound: the mailbox entry was made before a case claimed the message
                event_case = cid if m.direction == "outbound" else None
                for d in m.deliveries:
                    did = self.next_id("deliveries")
                    last_at, state, _ = d.states[-1]
                    last_error = None
                    last_code = d.attempts[-1].status_code if d.attempts else None
                    if state in ("failed", "dead") and d.attempts:
                        last_error = d.attempts[-1].error
                    add_delivery(
                        (
                            did,
                            mid,
                            d.recipient,
                            state,
                            len(d.attempts),
                            last_code,
                            last_error,
                            ts(d.next_attempt_at) if state == "failed" else None,
                            ts(d.states[0][0]),
                            ts(last_at),
                        )
                    )
                    for a in d.attempts:
                        add_attempt(
                            (
                                self.next_id("delivery_attempts"),
                                did,
                                ts(a.at),
                                "ok" if a.ok else "error",
                                a.status_code,
                                a.error_class,
                                a.error,
                                a.duration_ms,
                            )
                        )
                    previous = "null"
                    for at, s, actor in d.states:
                        # pre-serialised: the commonest event (values are plain identifiers)
                        add_event(
                            (
                                at,
                                actor,
                                "delivery.state",
                                event_case,
                                m.nachrichten_uuid,
                                did,
                                f'{{"from":{previous},"to":"{s}","recipient":'
                                f'"{d.recipient}","direction":"{m.direction}"}}',
                            )
                        )
                        previous = f'"{s}"'
                    stats.deliveries += 1
                    stats.attempts += len(d.attempts)
                    stats.dead += state == "dead"
                stats.messages += 1
            for x in case.expectations:
                rows["expectations"].append(
                    (
                        self.next_id("expectations"),
                        cid,
                        None,
                        x.message_type,
                        x.from_agency,
                        x.in_reply_to,
                        x.state,
                        x.reply_uuid,
                        ts(x.created_at),
                        ts(x.updated_at),
                        ts(x.expires_at),
                    )
                )
            for e in case.events:
                add_event((e.at, e.actor, e.kind, cid, e.nachrichten_uuid, None, e.detail))
            stats.cases += 1
            stats.expectations += len(case.expectations)
        events.sort(key=lambda e: e[0])
        rows["events"] = [
            (
                self.next_id("events"),
                ts(at),
                actor,
                kind,
                cid_,
                uuid_,
                did_,
                detail_ if isinstance(detail_, str) else js(detail_),
            )
            for at, actor, kind, cid_, uuid_, did_, detail_ in events
        ]
        stats.events = len(rows["events"])
        with self.engine.begin() as conn:
            for name in _COLUMNS:
                if not rows[name]:
                    continue
                if self.dialect == "postgresql" and self.copy:
                    self._copy(conn, name, rows[name])
                else:
                    conn.exec_driver_sql(self.sql[name], rows[name])
        return stats

    @staticmethod
    def _copy(conn: Any, table: str, rows: list[tuple[Any, ...]]) -> None:
        """PostgreSQL ``COPY … FROM STDIN`` on the transaction's own psycopg connection."""
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            with cursor.copy(f"COPY {table} ({', '.join(_COLUMNS[table])}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()

    def finish(self) -> None:
        """PostgreSQL: move the id sequences past the ids written here."""
        if self.dialect != "postgresql":
            return
        with self.engine.begin() as conn:
            for name in ("messages", "deliveries", "delivery_attempts", "events", "expectations"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {name}), false)"
                    )
                )


def _engine(url: str) -> Engine:
    """An engine on a migrated journal (created if need be)."""
    path = sqlite_file(url)
    if path is not None:
        prepare_sqlite_file(path)
    engine = create_journal_engine(url, JournalOptions(sqlite_synchronous="NORMAL"))
    upgrade(engine)
    return engine


def write_cases(
    target: str | Engine, cases: Iterable[SynthCase], *, now: datetime | None = None
) -> GeneratorStats:
    """Write hand-made timelines (e.g. for tests with exact dates) into a journal."""
    engine = _engine(target) if isinstance(target, str) else target
    try:
        writer = _Writer(engine, epoch(now or datetime.now(UTC)), None)
        stats = writer.write(list(cases))
        writer.finish()
        return stats
    finally:
        if isinstance(target, str):
            engine.dispose()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def generate(target: str | Engine, options: GeneratorOptions | None = None) -> GeneratorStats:
    """Fill the (empty) journal at ``target`` (URL or engine) with ``options.cases`` synthetic
    cases; deterministic for a given seed and ``now``. Returns what was written."""
    opts = options or GeneratorOptions()
    if opts.cases < 0:
        raise ValueError("cases must be >= 0")
    started = time.perf_counter()
    engine = _engine(target) if isinstance(target, str) else target
    try:
        with engine.connect() as conn:
            existing = conn.execute(select(func.count()).select_from(models.Case)).scalar()
        if existing:
            raise ValueError(f"the journal holds {existing} case(s) already; give an empty one")
        now_dt = (opts.now or datetime.now(UTC)).astimezone(UTC)
        now = round(epoch(now_dt), 3)
        sim = _Simulator(opts, now)
        writer = _Writer(engine, now, sim.codec)
        numbers: dict[int, int] = {}
        stats = GeneratorStats()
        times = sim.intake_times()
        for chunk in _chunks(times, max(1, opts.chunk)):
            cases = []
            for t0 in chunk:
                year = datetime.fromtimestamp(t0, BERLIN).year
                numbers[year] = numbers.get(year, 0) + 1
                case_id = f"05774032-{year}-{numbers[year]:06d}"
                cases.append(sim.case(case_id, t0))
            stats.add(writer.write(cases))
        writer.finish()
        stats.seconds = time.perf_counter() - started
        return stats
    finally:
        if isinstance(target, str):
            engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument(
        "--database-url",
        required=True,
        help="sqlite:///path or postgresql+psycopg://… (empty journal)",
    )
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args(argv)
    stats = generate(
        args.database_url, GeneratorOptions(cases=args.cases, seed=args.seed, days=args.days)
    )
    print(
        f"{stats.cases} cases, {stats.messages} messages, {stats.deliveries} deliveries "
        f"({stats.dead} dead), {stats.attempts} attempts, {stats.events} events, "
        f"{stats.expectations} expectations in {stats.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
