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

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path

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


def _years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February
        return d.replace(year=d.year - years, day=28)


def _code(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    text = el.findtext("code")
    return text.strip() if text is not None else None


def _first(el: etree._Element, path: str) -> etree._Element | None:
    found = el.xpath(path, namespaces=_NS)
    return found[0] if found else None


def _date(el: etree._Element | None) -> date | None:
    if el is None or not (el.text or "").strip():
        return None
    try:
        return date.fromisoformat((el.text or "").strip())
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
    typ: NachrichtenTyp | None
    config: RuleConfig
    findings: list[Finding] = field(default_factory=list)

    def add(self, rule: str, el: etree._Element, message: str,
            severity: Severity = Severity.ERROR) -> None:
        self.findings.append(Finding(severity=severity, message=message, rule=rule,
                                     line=el.sourceline, xpath=element_path(el)))

    def carries(self, *gruppen: str) -> bool:
        """Unknown type: treat as carrying everything (the rules still apply)."""
        return self.typ is None or all(g in self.typ.datengruppen for g in gruppen)

    def meldungen(self) -> Iterator[etree._Element]:
        yield from self.root.xpath(_MELDUNGEN, namespaces=_NS)


def _r01(doc: _Doc) -> None:
    local = etree.QName(doc.root).localname
    typ_el = _first(doc.root, "xga:nachrichtenkopf/xga:identifikation.nachricht/xga:nachrichtentyp")
    if doc.typ is None:
        known = ", ".join(t.root for t in nachrichtentypen())
        doc.add("XGWA-R01", doc.root,
                f"Wurzelelement {local} ist kein Nachrichtentyp von XGewerbeanzeige 2.2 ({known})")
        return
    code = _code(typ_el)
    if typ_el is not None and code is not None and code != doc.typ.code:
        doc.add("XGWA-R01", typ_el,
                f"nachrichtentyp {code} passt nicht zum Wurzelelement {local} "
                f"(erwartet {doc.typ.code})")


def _r02(doc: _Doc) -> None:
    if not doc.carries("handwerkskarte"):
        return
    for m in doc.meldungen():
        gewerbe = _first(m, "xga:gewerbe")
        if gewerbe is None:
            continue
        handwerk = _first(gewerbe, "xga:betriebArt/xga:handwerk")
        if _code(handwerk) == "1" and _first(gewerbe, "xga:handwerkskarte") is None:
            doc.add("XGWA-R02", handwerk if handwerk is not None else gewerbe,
                    "betriebArt/handwerk ist 1, aber gewerbe enthält keine handwerkskarte")


def _r03(doc: _Doc) -> None:
    if not doc.carries("aufenthaltstitel", "person_merkmale"):
        return
    frei = doc.config.freizuegig
    for m in doc.meldungen():
        for person in m.xpath("xga:gewerbe/xga:beteiligtePerson", namespaces=_NS):
            codes = [_code(c) for c in person.xpath(
                "xga:staatangehoerigkeiten/xga:staatsangehoerigkeitSchluessel", namespaces=_NS)]
            codes = [c for c in codes if c]
            if not codes or any(c in frei for c in codes):
                continue
            if _first(person, "xga:aufenthaltstitel") is None:
                doc.add("XGWA-R03", person,
                        "beteiligtePerson hat nur Staatsangehörigkeiten außerhalb von "
                        "EU/EWR/Schweiz (staatsangehoerigkeitSchluessel), aber keinen "
                        "aufenthaltstitel")


def _r04_r05(doc: _Doc) -> None:
    for m in doc.meldungen():
        local = etree.QName(m).localname
        if local == "ummeldung" and not m.xpath(
            "xga:gruendeUmmeldung/xga:grundUmmeldungSchluessel", namespaces=_NS
        ):
            doc.add("XGWA-R04", m, "ummeldung ohne gruendeUmmeldung/grundUmmeldungSchluessel")
        if local == "abmeldung" and _first(m, "xga:grundAbmeldungSchluessel") is None:
            doc.add("XGWA-R05", m, "abmeldung ohne grundAbmeldungSchluessel")


def _r06_r07(doc: _Doc) -> None:
    cfg = doc.config
    for m in doc.meldungen():
        meldung_el = _first(m, "xga:datumMeldung")
        meldung = _date(meldung_el)
        if meldung is None or meldung_el is None:
            continue
        erstellt = _datetime_date(_first(m, "xga:satzErstellung"))
        if erstellt is not None and meldung > erstellt:
            doc.add("XGWA-R06", meldung_el,
                    "datumMeldung liegt nach dem Datum von satzErstellung")
        ab_el = _first(m, "xga:gueltigAb")
        ab = _date(ab_el)
        if ab is None or ab_el is None:
            continue
        if (ab - meldung).days > cfg.gueltig_ab_max_vorlauf_tage:
            doc.add("XGWA-R07", ab_el,
                    f"gueltigAb liegt mehr als {cfg.gueltig_ab_max_vorlauf_tage} Tage nach "
                    f"datumMeldung")
        elif ab < _years_before(meldung, cfg.gueltig_ab_max_nachmeldung_jahre):
            doc.add("XGWA-R07", ab_el,
                    f"gueltigAb liegt mehr als {cfg.gueltig_ab_max_nachmeldung_jahre} Jahre vor "
                    f"datumMeldung")


def _r08(doc: _Doc) -> None:
    anmeldungen: dict[str, date] = {}
    spaeter: list[tuple[str, date, etree._Element]] = []
    for m in doc.meldungen():
        betrieb_id = (m.findtext(f"{{{NAMESPACE}}}gewerbebetriebID") or "").strip()
        ab_el = _first(m, "xga:gueltigAb")
        ab = _date(ab_el)
        if not betrieb_id or ab is None or ab_el is None:
            continue
        if etree.QName(m).localname == "anmeldung":
            anmeldungen[betrieb_id] = max(ab, anmeldungen.get(betrieb_id, ab))
        else:
            spaeter.append((betrieb_id, ab, ab_el))
    for betrieb_id, ab, ab_el in spaeter:
        start = anmeldungen.get(betrieb_id)
        if start is not None and ab < start:
            kind = etree.QName(ab_el.getparent()).localname
            doc.add("XGWA-R08", ab_el,
                    f"gueltigAb der {kind} liegt vor gueltigAb der anmeldung desselben "
                    f"gewerbebetriebID in dieser Nachricht")


def _r09(doc: _Doc) -> None:
    if doc.typ is None:
        return
    for name, gruppe in datengruppen().items():
        if name in doc.typ.datengruppen:
            continue
        for pfad in gruppe.pfade:
            xp = "/".join(f"xga:{step}" for step in pfad)
            for m in doc.meldungen():
                for el in m.xpath(xp, namespaces=_NS):
                    doc.add("XGWA-R09", el,
                            f"Nachrichtentyp {doc.typ.root} trägt die Datengruppe {name} nicht: "
                            f"{pfad[-1]} ist nicht zu übermitteln", Severity.WARNING)


def _r10(doc: _Doc) -> None:
    for m in doc.meldungen():
        meldung = _date(_first(m, "xga:datumMeldung"))
        for el in m.xpath("xga:gewerbe/xga:beteiligtePerson/xga:geburtsdatum", namespaces=_NS):
            text = (el.text or "").strip()
            if len(text) != 8 or not text.isdigit():
                continue  # the schema pattern reports it
            tag, monat, jahr = int(text[:2]), int(text[2:4]), int(text[4:])
            if tag and not monat:
                doc.add("XGWA-R10", el,
                        "geburtsdatum nennt einen Tag, aber keinen Monat")
                continue
            try:
                frueheste = date(jahr, monat or 1, tag or 1)
            except ValueError:
                doc.add("XGWA-R10", el,
                        "geburtsdatum ist kein gültiges Kalenderdatum")
                continue
            if meldung is not None and frueheste > meldung:
                doc.add("XGWA-R10", el,
                        "geburtsdatum liegt nach datumMeldung")


def _r11(doc: _Doc) -> None:
    for m in doc.meldungen():
        art = _first(m, "xga:gewerbe/xga:betriebArt")
        if art is None:
            continue
        werte = [_code(_first(art, f"xga:{k}")) for k in
                 ("industrie", "handwerk", "handel", "sonstiges")]
        if None in werte:
            continue  # incomplete: the schema reports it
        if "1" not in werte:
            doc.add("XGWA-R11", art,
                    "betriebArt: keine der Arten industrie, handwerk, handel, sonstiges ist 1")


_CHECKS = (_r01, _r02, _r03, _r04_r05, _r06_r07, _r08, _r09, _r10, _r11)


def check_rules(
    tree: etree._ElementTree, *, config: RuleConfig | None = None
) -> list[Finding]:
    """Run XGWA-R01…R11 on a parsed XGewerbeanzeige 2.2 document; findings in document order.
    A document outside the 2.2 namespace gives no findings (it is not ours to judge)."""
    root = tree.getroot()
    qname = etree.QName(root)
    if qname.namespace != NAMESPACE:
        return []
    typ = next((t for t in nachrichtentypen() if t.root == qname.localname), None)
    doc = _Doc(root=root, typ=typ, config=config or RuleConfig())
    for check in _CHECKS:
        check(doc)
    doc.findings.sort(key=lambda f: (f.line or 0, f.rule))
    return doc.findings
