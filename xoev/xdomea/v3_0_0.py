"""xdomea 3.0.0 (AG xdomea des IT-Planungsrates): the official bundle ships with amtsbote.

The XSD bundle and its 48 genericode codelists are vendored unchanged under
``xoev/xdomea/schema/3.0.0/`` (source and licence: ``schema/README.md``); the XÖV ``Code`` type it
imports as ``../xoev/code/1_0/xoev-code.xsd`` lies beside it. A bundle on the schema path
(``--schema-path DIR`` or ``AMTSBOTE_SCHEMA_PATH``) with the same entry name ``xdomea.xsd`` and
namespace overrides the vendored one.

The message types and code bindings below were read from the official 3.0.0 bundle: every global
element of the ``xdomea-Nachrichten-*.xsd`` files, and every element typed with one of the 48
``…CodeType`` types together with the ``kennung`` (listURI) of its codelist.
"""

from __future__ import annotations

from pathlib import Path

from ..namespaces import XDOMEA_3_0_0
from ..standards import MessageType, StandardVersion

__all__ = [
    "CODELISTS",
    "CODE_BINDINGS",
    "MESSAGE_TYPES",
    "NAMESPACE",
    "SCHEMA_DIR",
    "SCHEMA_PATH",
    "VERSION",
]

NAMESPACE = XDOMEA_3_0_0
"""``targetNamespace`` of ``xdomea.xsd`` 3.0.0."""
SCHEMA_DIR = Path(__file__).resolve().parent / "schema" / "3.0.0"
SCHEMA_PATH = SCHEMA_DIR / "xdomea.xsd"
CODELISTS: tuple[Path, ...] = tuple(sorted((SCHEMA_DIR / "code_lists").glob("*.xml")))
"""The genericode codelists of the bundle; 3.1.0 uses the same lists (same listURI/version)."""


def _message_type(root: str) -> MessageType:
    """``Abgabe.Abgabe.0401`` → code ``0401``, description ``Abgabe.Abgabe``."""
    description, _, code = root.rpartition(".")
    return MessageType(code=code, root=root, description=description)


MESSAGE_TYPES: tuple[MessageType, ...] = tuple(
    _message_type(root)
    for root in (
        "Abgabe.Abgabe.0401",
        "Abgabe.ImportBestaetigen.0402",
        "Abgabe.EmpfangBestaetigen.0403",
        "Aktenplan.Aktenplan.0301",
        "Aktenplan.EmpfangBestaetigen.0302",
        "Aussonderung.Anbieteverzeichnis.0501",
        "Aussonderung.Bewertungsverzeichnis.0502",
        "Aussonderung.Aussonderung.0503",
        "Aussonderung.AnbietungEmpfangBestaetigen.0504",
        "Aussonderung.BewertungEmpfangBestaetigen.0505",
        "Aussonderung.AussonderungImportBestaetigen.0506",
        "Aussonderung.AussonderungEmpfangBestaetigen.0507",
        "Aussonderung.AktenplanZurBewertung.0511",
        "Aussonderung.AktenplanZurBewertungEmpfangBestaetigen.0512",
        "Aussonderung.Bewertungskatalog.0513",
        "Aussonderung.BewertungskatalogImportBestaetigen.0514",
        "Aussonderung.BewerteterAktenplanEmpfangBestaetigen.0515",
        "FVDaten.DokumentAktualisieren.0601",
        "FVDaten.SGOAnsehen.0602",
        "FVDaten.SGOBearbeiten.0603",
        "FVDaten.SGOErstellen.0604",
        "FVDaten.SGOAblegen.0605",
        "FVDaten.SGODrucken.0606",
        "FVDaten.ProtokolleintragErstellen.0607",
        "FVDaten.SGOSuchen.0608",
        "FVDaten.MetadatenAnlegen.0609",
        "FVDaten.MetadatenAktualisieren.0610",
        "FVDaten.MetadatenAnsehen.0611",
        "FVDaten.MetadatenLoeschen.0612",
        "FVDaten.SGOLoeschenMarkieren.0613",
        "FVDaten.SGOLoeschmarkierungAufheben.0614",
        "FVDaten.SGOEndgueltigLoeschen.0615",
        "FVDaten.SGOLoeschstatusAbfragen.0616",
        "FVDaten.SGOUngueltigKennzeichnen.0617",
        "FVDaten.DatensatzLoeschen.0618",
        "FVDaten.BenachrichtigungAbrufen.0619",
        "FVDaten.VertretungAktivierenOderDeaktivieren.0620",
        "FVDaten.VertretungsstatusAbfragen.0621",
        "FVDaten.ZustaendigkeitAendern.0622",
        "FVDaten.GesamtprotokollAblegen.0623",
        "FVDaten.SGOZDAVerfuegen.0624",
        "FVDaten.SystemstatusAbfragen.0625",
        "FVDaten.KonfigurationsparameterErstellen.0626",
        "FVDaten.KonfigurationsparameterAktualisieren.0627",
        "FVDaten.KonfigurationsparameterAbrufen.0628",
        "FVDaten.EmpfangBestaetigen.0629",
        "FVDaten.ImportBestaetigen.0630",
        "FVDaten.PrimaerdokumentExportieren.0631",
        "FVDaten.SGOZDAAufheben.0632",
        "Geschaeftsgang.Geschaeftsgang.0201",
        "Geschaeftsgang.EmpfangBestaetigen.0202",
        "Geschaeftsgang.GeaendertenLaufwegMitteilen.0203",
        "Information.Information.0101",
        "Information.EmpfangBestaetigen.0102",
        "Zwischenarchivierung.Auslagerung.0701",
        "Zwischenarchivierung.AuslagerungEmpfangBestaetigen.0702",
        "Zwischenarchivierung.AuslagerungImportBestaetigen.0703",
        "Zwischenarchivierung.RueckleiheAnforderung.0711",
        "Zwischenarchivierung.RueckleiheUebergabe.0712",
        "Zwischenarchivierung.RueckleiheEmpfangBestaetigen.0713",
        "Zwischenarchivierung.RueckuebertragungAnforderung.0721",
        "Zwischenarchivierung.RueckuebertragungUebergabe.0722",
        "Zwischenarchivierung.RueckuebertragungImportBestaetigen.0723",
        "Zwischenarchivierung.RueckuebertragungEmpfangBestaetigen.0724",
    )
)
CODE_BINDINGS: dict[str, str] = {
    "AllgemeineRueckmeldung": "urn:xoev-de:xdomea:codeliste:allgemeinerueckmeldung",
    "Aussonderungsart": "urn:xoev-de:xdomea:codeliste:aussonderungsart",
    "Bewertungsvorschlag": "urn:xoev-de:xdomea:codeliste:bewertungsvorschlag",
    "Datenaustauschart": "urn:xoev-de:xdomea:codeliste:datenaustauschart",
    "Datentyp": "urn:xoev-de:xdomea:codeliste:datentyp",
    "Gruppe": "urn:xoev-de:xdomea:codeliste:konfigurationsparametergruppe",
    "Kanal": "urn:de:xoev:codeliste:erreichbarkeit",
    "Kompressionsverfahren": "urn:xoev-de:xdomea:codeliste:kompressionsverfahren",
    "Medium": "urn:xoev-de:xdomea:codeliste:medium",
    "Nachrichtentyp": "urn:xoev-de:xdomea:codeliste:nachrichtentyp",
    "Name": "urn:xoev-de:xdomea:codeliste:dateiformat",
    "Parameter": "urn:xoev-de:xdomea:codeliste:konfigurationsparameter",
    "SGOTyp": "urn:xoev-de:xdomea:codeliste:schriftgutobjekttyp",
    "SpezifischeFehlermeldung0601": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0601",
    "SpezifischeFehlermeldung0602": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0602",
    "SpezifischeFehlermeldung0603": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0603",
    "SpezifischeFehlermeldung0604": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0604",
    "SpezifischeFehlermeldung0605": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0605",
    "SpezifischeFehlermeldung0606": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0606",
    "SpezifischeFehlermeldung0607": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0607",
    "SpezifischeFehlermeldung0608": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0608",
    "SpezifischeFehlermeldung0609": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0609",
    "SpezifischeFehlermeldung0610": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0610",
    "SpezifischeFehlermeldung0611": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0611",
    "SpezifischeFehlermeldung0612": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0612",
    "SpezifischeFehlermeldung0613": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0613",
    "SpezifischeFehlermeldung0614": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0614",
    "SpezifischeFehlermeldung0615": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0615",
    "SpezifischeFehlermeldung0616": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0616",
    "SpezifischeFehlermeldung0617": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0617",
    "SpezifischeFehlermeldung0618": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0618",
    "SpezifischeFehlermeldung0619": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0619",
    "SpezifischeFehlermeldung0620": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0620",
    "SpezifischeFehlermeldung0621": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0621",
    "SpezifischeFehlermeldung0622": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0622",
    "SpezifischeFehlermeldung0623": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0623",
    "SpezifischeFehlermeldung0624": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0624",
    "SpezifischeFehlermeldung0625": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0625",
    "SpezifischeFehlermeldung0626": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0626",
    "SpezifischeFehlermeldung0627": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0627",
    "SpezifischeFehlermeldung0628": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0628",
    "SpezifischeFehlermeldung0631": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0631",
    "SpezifischeFehlermeldung0632": "urn:xoev-de:xdomea:codeliste:spezifischefehlermeldung0632",
    "Staat": "urn:xoev-de:kosit:codeliste:country-codes",
    "Status": "urn:xoev-de:xdomea:codeliste:beteiligungsstatus",
    "Transportweg": "urn:xoev-de:xdomea:codeliste:transportweg",
    "Typ": "urn:xoev-de:xdomea:codeliste:anschriftstyp",
    "Vertraulichkeitsstufe": "urn:xoev-de:xdomea:codeliste:vertraulichkeitsstufe",
}

VERSION = StandardVersion(
    standard="xdomea",
    version="3.0.0",
    namespace=NAMESPACE,
    schema=SCHEMA_PATH,
    entry_name="xdomea.xsd",
    message_types=MESSAGE_TYPES,
    codelists=CODELISTS,
    code_bindings=CODE_BINDINGS,
)
