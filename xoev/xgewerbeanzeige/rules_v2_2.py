"""Business rules of XGewerbeanzeige 2.2 beyond the XSD (what the standard's Schematron checks).

Each rule has an id; :data:`RULES` names them all. :func:`check_rules` works on the parsed
document (not the model), so it also runs on schema-invalid messages: a rule whose elements are
missing or malformed stays silent and leaves the defect to the schema check. Findings keep the XÖV
element names and never quote element values (personal data).

========  =======  ==============================================================================
id        level    rule
========  =======  ==============================================================================
XGWA-R01  error    ``nachrichtentyp`` in the header equals the code of the root element
XGWA-R02  error    ``betriebArt/handwerk`` = 1 needs a ``handwerkskarte`` (types carrying the
                   data group handwerkskarte)
XGWA-R03  error    a person whose nationalities are all outside DE/EU/EEA/CH needs an
                   ``aufenthaltstitel`` (types carrying aufenthaltstitel and person_merkmale)
XGWA-R04  error    an ``ummeldung`` names a ``gruendeUmmeldung/grundUmmeldungSchluessel``
XGWA-R05  error    an ``abmeldung`` names a ``grundAbmeldungSchluessel``
XGWA-R06  error    ``datumMeldung`` is not after the date of ``satzErstellung`` (a record cannot
                   be written before the notification arrived)
XGWA-R07  error    ``gueltigAb`` lies within [datumMeldung − 10 years, datumMeldung + 366 days]
                   (:class:`RuleConfig`): business start announced at most a year ahead, late
                   notifications accepted for ten years
XGWA-R08  error    within one message, an ``ummeldung``/``abmeldung`` of a ``gewerbebetriebID``
                   is not valid before the ``anmeldung`` of the same ``gewerbebetriebID``
XGWA-R09  warning  data minimisation: no data group the message type does not carry
                   (types_v2_2.yaml); a warning, as incoming messages are not ours to trim
XGWA-R10  error    ``geburtsdatum`` is a real calendar date (00 = unknown day/month; a known day
                   needs a known month) and not after ``datumMeldung``
XGWA-R11  error    ``betriebArt``: at least one of industrie, handwerk, handel, sonstiges is 1
========  =======  ==============================================================================
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from ..findings import Finding, Severity
from ..nachrichtenkopf import element_path
from .message_types import NAMESPACE, NachrichtenTyp, datengruppen, nachrichtentypen

__all__ = ["FREIZUEGIGKEIT_PATH", "RULES", "RuleConfig", "check_rules", "freizuegige_codes"]

RULES: Mapping[str, str] = {
    "XGWA-R01": "nachrichtentyp passt zum Wurzelelement",
    "XGWA-R02": "handwerk = 1 erfordert eine handwerkskarte",
    "XGWA-R03": "Staatsangehörigkeit außerhalb EU/EWR/Schweiz erfordert einen aufenthaltstitel",
    "XGWA-R04": "ummeldung erfordert gruendeUmmeldung",
    "XGWA-R05": "abmeldung erfordert grundAbmeldungSchluessel",
    "XGWA-R06": "datumMeldung nicht nach satzErstellung",
    "XGWA-R07": "gueltigAb plausibel zu datumMeldung",
    "XGWA-R08": "Um-/Abmeldung nicht vor der Anmeldung desselben Gewerbebetriebs gültig",
    "XGWA-R09": "Datensparsamkeit: nur Datengruppen, die der Nachrichtentyp trägt",
    "XGWA-R10": "geburtsdatum ist ein gültiges Datum und nicht nach datumMeldung",
    "XGWA-R11": "betriebArt: mindestens eine Art ist 1",
}

FREIZUEGIGKEIT_PATH = Path(__file__).with_name("staatsangehoerigkeiten_v2_2.yaml")
_NS = {"xga": NAMESPACE}
_MELDUNGEN = "xga:satz/*[self::xga:anmeldung or self::xga:ummeldung or self::xga:abmeldung]"

# Hot path (runs on every validated message): every XPath is compiled once here (el.xpath(...)
# compiles on each call), a Meldung's children are looked up by Clark name in one pass, and what
# derives from the tables (message type by root element, XGWA-R09 paths, which rules apply) is
# computed once per type (_TypPlan). Element paths are only computed for findings.
_Q = f"{{{NAMESPACE}}}"
_ANMELDUNG = f"{_Q}anmeldung"
_UMMELDUNG = f"{_Q}ummeldung"
_ABMELDUNG = f"{_Q}abmeldung"
_KIND = {_ANMELDUNG: "anmeldung", _UMMELDUNG: "ummeldung", _ABMELDUNG: "abmeldung"}
_GEWERBE = f"{_Q}gewerbe"
_HANDWERKSKARTE = f"{_Q}handwerkskarte"
_AUFENTHALTSTITEL = f"{_Q}aufenthaltstitel"
_GRUND_ABMELDUNG = f"{_Q}grundAbmeldungSchluessel"
_DATUM_MELDUNG = f"{_Q}datumMeldung"
_SATZ_ERSTELLUNG = f"{_Q}satzErstellung"
_GUELTIG_AB = f"{_Q}gueltigAb"
_BETRIEB_ID = f"{_Q}gewerbebetriebID"
_HANDWERK = f"{_Q}handwerk"
_BETRIEB_ARTEN = tuple(f"{_Q}{k}" for k in ("industrie", "handwerk", "handel", "sonstiges"))


def _xpath(path: str, namespaces: Mapping[str, str] = _NS) -> etree.XPath:
    """Compiled once; ``regexp=False``: no EXSLT regular-expression functions are registered
    on each evaluation (none of the paths uses them)."""
    return etree.XPath(path, namespaces=namespaces, regexp=False)


_XP_MELDUNGEN = _xpath(_MELDUNGEN)
_XP_NACHRICHTENTYP = _xpath("xga:nachrichtenkopf/xga:identifikation.nachricht/xga:nachrichtentyp")
_XP_HANDWERK = _xpath("xga:betriebArt/xga:handwerk")
_XP_PERSONEN = _xpath("xga:gewerbe/xga:beteiligtePerson")
_XP_STAATSANGEHOERIGKEITEN = _xpath("xga:staatangehoerigkeiten/xga:staatsangehoerigkeitSchluessel")
_XP_GRUND_UMMELDUNG = _xpath("xga:gruendeUmmeldung/xga:grundUmmeldungSchluessel")
_XP_GEBURTSDATUM = _xpath("xga:gewerbe/xga:beteiligtePerson/xga:geburtsdatum")
_XP_BETRIEB_ART = _xpath("xga:gewerbe/xga:betriebArt")


@cache
def freizuegige_codes() -> frozenset[str]:
    """Staatsangehörigkeitsschlüssel of DE, EU, EEA and CH (staatsangehoerigkeiten_v2_2.yaml)."""
    raw = yaml.safe_load(FREIZUEGIGKEIT_PATH.read_text(encoding="utf-8"))
    return frozenset(str(entry["code"]) for entry in raw["freizuegig"])


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """Limits of the plausibility rules."""

    gueltig_ab_max_vorlauf_tage: int = 366
    """XGWA-R07: gueltigAb at most this many days after datumMeldung."""
    gueltig_ab_max_nachmeldung_jahre: int = 10
    """XGWA-R07: gueltigAb at most this many years before datumMeldung."""
    freizuegig: frozenset[str] = field(default_factory=freizuegige_codes)
    """XGWA-R03: nationality codes that need no residence title."""


@cache
def _default_config() -> RuleConfig:
    return RuleConfig()


@dataclass(frozen=True, slots=True)
class _R09Pfad:
    """One path of a data group the type does not carry, with its finding message."""

    xpath: etree.XPath
    message: str


@dataclass(frozen=True, slots=True)
class _TypPlan:
    """What the rules need of one message type, computed once from the table."""

    typ: NachrichtenTyp
    r09: tuple[_R09Pfad, ...]
    """XGWA-R09: paths of the groups not carried, in table order (group, then path)."""
    r09_kinder: frozenset[str]
    """Those paths that are one step (a child of the Meldung), as Clark names."""
    r09_tiefer: etree.XPath | None
    """Union of the longer paths. No child in ``r09_kinder`` and an empty union: no XGWA-R09
    finding for the Meldung."""
    r02: bool
    """XGWA-R02 applies: the type carries handwerkskarte."""
    r03: bool
    """XGWA-R03 applies: the type carries aufenthaltstitel and person_merkmale."""


def _plan(typ: NachrichtenTyp) -> _TypPlan:
    pfade: list[_R09Pfad] = []
    kinder: set[str] = set()
    tiefer: list[str] = []
    for name, gruppe in datengruppen().items():
        if name in typ.datengruppen:
            continue
        for pfad in gruppe.pfade:
            xp = "/".join(f"xga:{step}" for step in pfad)
            if len(pfad) == 1:
                kinder.add(f"{_Q}{pfad[0]}")
            else:
                tiefer.append(xp)
            pfade.append(
                _R09Pfad(
                    _xpath(xp),
                    f"Nachrichtentyp {typ.root} trägt die Datengruppe {name} nicht: "
                    f"{pfad[-1]} ist nicht zu übermitteln",
                )
            )
    carried = typ.datengruppen
    return _TypPlan(
        typ=typ,
        r09=tuple(pfade),
        r09_kinder=frozenset(kinder),
        r09_tiefer=_xpath(" | ".join(tiefer)) if tiefer else None,
        r02="handwerkskarte" in carried,
        r03="aufenthaltstitel" in carried and "person_merkmale" in carried,
    )


_plans: dict[str, _TypPlan] | None = None
_plans_lock = threading.Lock()


def _plans_by_root() -> dict[str, _TypPlan]:
    """Plans by local name of the root element (built on first use; the table is static)."""
    global _plans
    plans = _plans
    if plans is None:
        with _plans_lock:
            if _plans is None:
                _plans = {t.root: _plan(t) for t in reversed(nachrichtentypen())}
            plans = _plans
    return plans


def _years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February
        return d.replace(year=d.year - years, day=28)


def _child(el: etree._Element, tag: str) -> etree._Element | None:
    """First child element with this Clark name (``xga:<name>`` as an XPath step)."""
    for child in el.iterchildren(tag):
        return child
    return None


def _children(el: etree._Element) -> dict[Any, etree._Element]:
    """Children by Clark name, the first of each name: one pass instead of a lookup per name
    (comments and processing instructions end up under their factory, never looked up)."""
    return {child.tag: child for child in reversed(el)}


def _code(el: etree._Element | None) -> str | None:
    """Text of the first unqualified ``code`` child, stripped (``findtext("code")``)."""
    if el is None:
        return None
    for child in el:  # the code is the first child: cheaper than a tag matcher
        if child.tag == "code":
            text = child.text
            return text.strip() if text is not None else ""
    return None


def _first(xpath: etree.XPath, el: etree._Element) -> etree._Element | None:
    found = xpath(el)
    return found[0] if found else None


def _date(el: etree._Element | None) -> date | None:
    if el is None:
        return None
    text = (el.text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _datetime_date(el: etree._Element | None) -> date | None:
    if el is None:
        return None
    try:
        return datetime.fromisoformat((el.text or "").strip()).date()
    except ValueError:
        return None


@dataclass(slots=True)
class _Doc:
    root: etree._Element
    local: str
    plan: _TypPlan | None
    config: RuleConfig
    meldungen: list[tuple[etree._Element, str, dict[Any, etree._Element]]]
    """Every Meldung with its local name (``anmeldung``, ``ummeldung``, ``abmeldung``) and its
    children by Clark name (:func:`_children`)."""
    findings: list[Finding] = field(default_factory=list)

    def add(
        self, rule: str, el: etree._Element, message: str, severity: Severity = Severity.ERROR
    ) -> None:
        self.findings.append(
            Finding(
                severity=severity,
                message=message,
                rule=rule,
                line=el.sourceline,
                xpath=element_path(el),
            )
        )


def _r01(doc: _Doc) -> None:
    local = doc.local
    if doc.plan is None:
        known = ", ".join(t.root for t in nachrichtentypen())
        doc.add(
            "XGWA-R01",
            doc.root,
            f"Wurzelelement {local} ist kein Nachrichtentyp von XGewerbeanzeige 2.2 ({known})",
        )
        return
    typ_el = _first(_XP_NACHRICHTENTYP, doc.root)
    code = _code(typ_el)
    expected = doc.plan.typ.code
    if typ_el is not None and code is not None and code != expected:
        doc.add(
            "XGWA-R01",
            typ_el,
            f"nachrichtentyp {code} passt nicht zum Wurzelelement {local} (erwartet {expected})",
        )


def _per_meldung(doc: _Doc) -> None:
    """XGWA-R02…R08, R10, R11 in one pass over the Meldungen (each Meldung's children are
    looked up once). The findings of each rule come in the same order as rule by rule, and
    :func:`check_rules` sorts by (line, rule), so the result is the same."""
    cfg = doc.config
    plan = doc.plan  # unknown type: treat as carrying everything (the rules still apply)
    r02 = plan is None or plan.r02
    r03 = plan is None or plan.r03
    frei = cfg.freizuegig
    vorlauf = cfg.gueltig_ab_max_vorlauf_tage
    nachmeldung = cfg.gueltig_ab_max_nachmeldung_jahre
    anmeldungen: dict[str, date] = {}
    spaeter: list[tuple[str, date, etree._Element, str]] = []
    for m, kind, kids in doc.meldungen:
        gewerbe = kids.get(_GEWERBE)
        art = _first(_XP_BETRIEB_ART, m)  # the first gewerbe/betriebArt
        arten = _children(art) if art is not None else {}

        # XGWA-R02 handwerk = 1 needs a handwerkskarte
        if r02 and gewerbe is not None:
            handwerk = arten.get(_HANDWERK)
            if handwerk is None or art is None or art.getparent() is not gewerbe:
                # not the first handwerk of the first betriebArt of this gewerbe: look it up
                handwerk = _first(_XP_HANDWERK, gewerbe)
            if _code(handwerk) == "1" and _child(gewerbe, _HANDWERKSKARTE) is None:
                doc.add(
                    "XGWA-R02",
                    handwerk if handwerk is not None else gewerbe,
                    "betriebArt/handwerk ist 1, aber gewerbe enthält keine handwerkskarte",
                )

        # XGWA-R03 nationalities outside DE/EU/EEA/CH need an aufenthaltstitel
        if r03:
            for person in _XP_PERSONEN(m):
                codes = [_code(c) for c in _XP_STAATSANGEHOERIGKEITEN(person)]
                codes = [c for c in codes if c]
                if not codes or any(c in frei for c in codes):
                    continue
                if _child(person, _AUFENTHALTSTITEL) is None:
                    doc.add(
                        "XGWA-R03",
                        person,
                        "beteiligtePerson hat nur Staatsangehörigkeiten außerhalb von "
                        "EU/EWR/Schweiz (staatsangehoerigkeitSchluessel), aber keinen "
                        "aufenthaltstitel",
                    )

        # XGWA-R04, R05 reasons of ummeldung and abmeldung
        if kind == "ummeldung" and not _XP_GRUND_UMMELDUNG(m):
            doc.add("XGWA-R04", m, "ummeldung ohne gruendeUmmeldung/grundUmmeldungSchluessel")
        if kind == "abmeldung" and _GRUND_ABMELDUNG not in kids:
            doc.add("XGWA-R05", m, "abmeldung ohne grundAbmeldungSchluessel")

        # XGWA-R06, R07 datumMeldung against satzErstellung and gueltigAb
        meldung_el = kids.get(_DATUM_MELDUNG)
        meldung = _date(meldung_el)
        ab_el = kids.get(_GUELTIG_AB)
        ab = _date(ab_el)
        if meldung is not None and meldung_el is not None:
            erstellt = _datetime_date(kids.get(_SATZ_ERSTELLUNG))
            if erstellt is not None and meldung > erstellt:
                doc.add(
                    "XGWA-R06", meldung_el, "datumMeldung liegt nach dem Datum von satzErstellung"
                )
            if ab is not None and ab_el is not None:
                if (ab - meldung).days > vorlauf:
                    doc.add(
                        "XGWA-R07",
                        ab_el,
                        f"gueltigAb liegt mehr als {vorlauf} Tage nach datumMeldung",
                    )
                elif ab < _years_before(meldung, nachmeldung):
                    doc.add(
                        "XGWA-R07",
                        ab_el,
                        f"gueltigAb liegt mehr als {nachmeldung} Jahre vor datumMeldung",
                    )

        # XGWA-R08 (collect; judged after the loop)
        id_el = kids.get(_BETRIEB_ID)
        betrieb_id = (id_el.text or "").strip() if id_el is not None else ""
        if betrieb_id and ab is not None and ab_el is not None:
            if kind == "anmeldung":
                anmeldungen[betrieb_id] = max(ab, anmeldungen.get(betrieb_id, ab))
            else:
                spaeter.append((betrieb_id, ab, ab_el, kind))

        # XGWA-R10 geburtsdatum a real date, not after datumMeldung
        for el in _XP_GEBURTSDATUM(m):
            _r10(doc, el, meldung)

        # XGWA-R11 betriebArt: at least one kind is 1
        if art is not None:
            werte = [_code(arten.get(k)) for k in _BETRIEB_ARTEN]
            if None not in werte and "1" not in werte:  # incomplete: the schema reports it
                doc.add(
                    "XGWA-R11",
                    art,
                    "betriebArt: keine der Arten industrie, handwerk, handel, sonstiges ist 1",
                )

    for betrieb_id, ab, ab_el, kind in spaeter:
        start = anmeldungen.get(betrieb_id)
        if start is not None and ab < start:
            doc.add(
                "XGWA-R08",
                ab_el,
                f"gueltigAb der {kind} liegt vor gueltigAb der anmeldung desselben "
                f"gewerbebetriebID in dieser Nachricht",
            )


def _r10(doc: _Doc, el: etree._Element, meldung: date | None) -> None:
    text = (el.text or "").strip()
    if len(text) != 8 or not text.isdigit():
        return  # the schema pattern reports it
    tag, monat, jahr = int(text[:2]), int(text[2:4]), int(text[4:])
    if tag and not monat:
        doc.add("XGWA-R10", el, "geburtsdatum nennt einen Tag, aber keinen Monat")
        return
    try:
        frueheste = date(jahr, monat or 1, tag or 1)
    except ValueError:
        doc.add("XGWA-R10", el, "geburtsdatum ist kein gültiges Kalenderdatum")
        return
    if meldung is not None and frueheste > meldung:
        doc.add("XGWA-R10", el, "geburtsdatum liegt nach datumMeldung")


def _r09_hit(plan: _TypPlan, m: etree._Element, kids: dict[Any, etree._Element]) -> bool:
    for tag in plan.r09_kinder:
        if tag in kids:
            return True
    tiefer = plan.r09_tiefer
    return tiefer is not None and bool(tiefer(m))


def _r09(doc: _Doc) -> None:
    plan = doc.plan
    if plan is None or not plan.r09:
        return
    if not any(_r09_hit(plan, m, kids) for m, _kind, kids in doc.meldungen):
        return  # nothing to report: the usual case
    for pfad in plan.r09:  # group by group, path by path, as the table lists them
        for m, _kind, _kids in doc.meldungen:
            for el in pfad.xpath(m):
                doc.add("XGWA-R09", el, pfad.message, Severity.WARNING)


_CHECKS = (_r01, _per_meldung, _r09)


def check_rules(tree: etree._ElementTree, *, config: RuleConfig | None = None) -> list[Finding]:
    """Run XGWA-R01…R11 on a parsed XGewerbeanzeige 2.2 document; findings in document order.
    A document outside the 2.2 namespace gives no findings (it is not ours to judge)."""
    root = tree.getroot()
    qname = etree.QName(root)
    if qname.namespace != NAMESPACE:
        return []
    local = qname.localname
    kinds = _KIND
    meldungen = [(m, kinds[m.tag], _children(m)) for m in _XP_MELDUNGEN(root)]
    doc = _Doc(
        root=root,
        local=local,
        plan=_plans_by_root().get(local),
        config=config or _default_config(),
        meldungen=meldungen,
    )
    for check in _CHECKS:
        check(doc)
    doc.findings.sort(key=lambda f: (f.line or 0, f.rule))
    return doc.findings
