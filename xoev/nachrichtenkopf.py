"""The XÖV Nachrichtenkopf (message header) as a typed model, for any XÖV standard.

The namespace is not fixed: :meth:`Nachrichtenkopf.from_element` takes it from the element it reads,
:meth:`Nachrichtenkopf.to_element` writes into the namespace it is given. Children of XÖV ``Code``
elements (``code``, ``name``) stay unqualified. Structure, as in XGewerbeanzeige 2.2::

    nachrichtenkopf
    ├── identifikation.nachricht
    │   ├── nachrichtenUUID
    │   ├── nachrichtentyp            Code
    │   └── erstellungszeitpunkt      xs:dateTime (without zone: German legal time)
    ├── leser                          Behoerde
    └── autor                          Behoerde
    Behoerde: behoerdenkennung (praefix Code, kennung Code), erreichbarkeit* (kanal Code, kennung),
              anschrift?, behoerdenname?

Reading is strict by default: an unknown or misplaced element, a missing required one or an
invalid value raises :class:`NachrichtenkopfError` naming element, line and XPath (never the value).
``strict=False`` skips unknown elements instead (their XPaths are appended to ``skipped``) but still
requires what is required. Writing and reading again gives the same XML (exact after
canonicalisation) for documents written in canonical lexical form (dates ``YYYY-MM-DD``, date-times
ISO 8601 with offset, UTC as ``+00:00``; a ``Z`` or fraction ``.0`` read is written back as the
equal canonical value).

This module also holds the small XML helpers the standard packages share: :func:`element_path`,
:class:`ChildReader`, the lexical converters for ``xs:date``/``xs:dateTime`` and :func:`read_code`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from lxml import etree

from .code import Code
from .exceptions import UnusableInputError

__all__ = [
    "Anschrift",
    "Behoerde",
    "Behoerdenkennung",
    "ChildReader",
    "Erreichbarkeit",
    "IdentifikationNachricht",
    "Nachrichtenkopf",
    "NachrichtenkopfError",
    "element_path",
    "format_date",
    "format_datetime",
    "parse_date",
    "parse_datetime",
    "read_code",
    "read_text",
    "write_code",
    "write_text",
]


class NachrichtenkopfError(UnusableInputError):
    """The Nachrichtenkopf (or, via the shared helpers, another part of a message) does not have the
    expected structure. Carries ``element`` (local name), ``xpath`` and ``line``; standard packages
    translate it into their own structure error at their boundary."""

    def __init__(
        self,
        reason: str,
        *,
        element: str,
        xpath: str | None = None,
        line: int | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(reason, source=source, line=line)
        self.element = element
        self.xpath = xpath

    def __str__(self) -> str:
        where = self.source or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        if self.xpath:
            where += f" {self.xpath}"
        return f"{where}: {self.reason}"


# --------------------------------------------------------------------------- XML helpers

ErrorFactory = Callable[[str, etree._Element], Exception]
"""Builds the exception for a reason and the element it is about."""


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def element_path(element: etree._Element) -> str:
    """Readable XPath of ``element``: prefixed XÖV names as in the document, with a position only
    where siblings share the name (``/xga:abh.gewerbemeldung.0500/xga:satz[2]/xga:anmeldung``)."""
    steps: list[str] = []
    el: etree._Element | None = element
    while el is not None:
        tag = el.tag
        if not isinstance(tag, str):  # comment or processing instruction
            steps.append("node()")
            el = el.getparent()
            continue
        name = _local(tag)
        if el.prefix:
            name = f"{el.prefix}:{name}"
        parent = el.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == tag]
            if len(same) > 1:
                name += f"[{same.index(el) + 1}]"
        steps.append(name)
        el = parent
    return "/" + "/".join(reversed(steps))


def _default_error(reason: str, element: etree._Element) -> Exception:
    return NachrichtenkopfError(
        reason,
        element=_local(element.tag) if isinstance(element.tag, str) else "node()",
        xpath=element_path(element),
        line=element.sourceline,
    )


class ChildReader:
    """Reads the element children of one parent in schema order.

    ``strict=True``: children must come in the order asked for; whatever is left at
    :meth:`finish` is an unexpected element (an error). ``strict=False``: children are looked up by
    name wherever they are; what is left at :meth:`finish` is skipped and its XPath appended to
    ``skipped``. Comments and processing instructions are ignored in both modes.
    """

    def __init__(
        self,
        parent: etree._Element,
        namespace: str | None,
        *,
        strict: bool = True,
        error: ErrorFactory = _default_error,
        skipped: list[str] | None = None,
    ) -> None:
        self.parent = parent
        self.namespace = namespace
        self.strict = strict
        self.error = error
        self.skipped = skipped
        self._children = [c for c in parent if isinstance(c.tag, str)]
        self._used = [False] * len(self._children)
        self._pos = 0

    def _tag(self, local: str, qualified: bool) -> str:
        return f"{{{self.namespace}}}{local}" if qualified and self.namespace else local

    def take_all(self, local: str, *, qualified: bool = True) -> list[etree._Element]:
        tag = self._tag(local, qualified)
        found: list[etree._Element] = []
        if self.strict:
            while self._pos < len(self._children) and self._children[self._pos].tag == tag:
                found.append(self._children[self._pos])
                self._used[self._pos] = True
                self._pos += 1
        else:
            for i, child in enumerate(self._children):
                if not self._used[i] and child.tag == tag:
                    self._used[i] = True
                    found.append(child)
        return found

    def take(self, local: str, *, qualified: bool = True) -> etree._Element | None:
        tag = self._tag(local, qualified)
        if self.strict:
            if self._pos < len(self._children) and self._children[self._pos].tag == tag:
                self._used[self._pos] = True
                self._pos += 1
                return self._children[self._pos - 1]
            return None
        for i, child in enumerate(self._children):
            if not self._used[i] and child.tag == tag:
                self._used[i] = True
                return child
        return None

    def require(self, local: str, *, qualified: bool = True) -> etree._Element:
        found = self.take(local, qualified=qualified)
        if found is not None:
            return found
        parent = _local(self.parent.tag)
        if self.strict and self._pos < len(self._children):
            nxt = self._children[self._pos]
            raise self.error(
                f"{self._describe(nxt)} in {parent} where required element {local} belongs",
                nxt,
            )
        raise self.error(f"required element {local} missing in {parent}", self.parent)

    def _describe(self, child: etree._Element) -> str:
        ns = child.tag[1:].partition("}")[0] if child.tag.startswith("{") else None
        name = _local(child.tag)
        if ns == self.namespace or (ns is None and name in ("code", "name")):
            return f"unexpected element {name}"
        where = f"namespace {ns}" if ns else "no namespace"
        return f"unknown element {name} ({where})"

    def finish(self) -> None:
        left = [c for c, used in zip(self._children, self._used, strict=True) if not used]
        if not left:
            return
        if self.strict:
            child = left[0]
            raise self.error(f"{self._describe(child)} in {_local(self.parent.tag)}", child)
        if self.skipped is not None:
            self.skipped.extend(element_path(c) for c in left)


def _no_attributes(element: etree._Element, strict: bool, error: ErrorFactory) -> None:
    if strict and element.attrib:
        name = next(iter(element.attrib))
        raise error(f"unexpected attribute {_local(name)} on {_local(element.tag)}", element)


def read_text(
    element: etree._Element, *, strict: bool = True, error: ErrorFactory = _default_error
) -> str:
    """The text of a simple element, stripped; children or attributes (strict) and an empty text
    are errors."""
    _no_attributes(element, strict, error)
    for child in element:
        if isinstance(child.tag, str):
            raise error(
                f"element {_local(element.tag)} holds text, not element {_local(child.tag)}",
                child,
            )
    text = "".join(element.itertext()).strip()
    if not text:
        raise error(f"element {_local(element.tag)} is empty", element)
    return text


def read_code(
    element: etree._Element, *, strict: bool = True, error: ErrorFactory = _default_error
) -> Code:
    """An XÖV ``Code``: attributes ``listURI``/``listVersionID``, unqualified ``code`` (required)
    and ``name``."""
    if strict:
        for name in element.attrib:
            if name not in ("listURI", "listVersionID"):
                raise error(
                    f"unexpected attribute {_local(name)} on code element {_local(element.tag)}",
                    element,
                )
    reader = ChildReader(element, None, strict=strict, error=error)
    code_el = reader.require("code", qualified=False)
    name_el = reader.take("name", qualified=False)
    reader.finish()
    return Code(
        code=read_text(code_el, strict=strict, error=error),
        name=read_text(name_el, strict=strict, error=error) if name_el is not None else None,
        list_uri=element.get("listURI"),
        list_version_id=element.get("listVersionID"),
    )


def write_code(parent: etree._Element, namespace: str, local: str, code: Code) -> etree._Element:
    element = etree.SubElement(parent, f"{{{namespace}}}{local}")
    code.fill(element)
    return element


def write_text(parent: etree._Element, namespace: str, local: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{namespace}}}{local}")
    element.text = text
    return element


_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(Z|[+-]\d{2}:\d{2})?")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")


def parse_date(text: str) -> date:
    """``xs:date``: ``YYYY-MM-DD``, a time zone (allowed by the type) is read and dropped."""
    match = _DATE.fullmatch(text)
    if not match:
        raise ValueError("not a date of the form YYYY-MM-DD[Z|±hh:mm]")
    return date.fromisoformat(match.group(1))


def format_date(value: date) -> str:
    return value.isoformat()


def parse_datetime(text: str, *, require_tz: bool = True) -> datetime:
    """``xs:dateTime``; with ``require_tz`` a time zone offset (or ``Z``) is required."""
    if not _DATETIME.fullmatch(text):
        raise ValueError("not an xs:dateTime (YYYY-MM-DDThh:mm:ss[.f][Z|±hh:mm])")
    value = datetime.fromisoformat(text)
    if require_tz and value.tzinfo is None:
        raise ValueError("xs:dateTime without time zone")
    return value


def format_datetime(value: datetime) -> str:
    """``xs:dateTime`` as ISO 8601; a value read without time zone is written back without one
    (new messages get one: :meth:`Nachrichtenkopf.neu` requires it)."""
    return value.isoformat()


def _value(
    element: etree._Element,
    convert: Callable[[str], object],
    what: str,
    strict: bool,
    error: ErrorFactory,
) -> object:
    text = read_text(element, strict=strict, error=error)
    try:
        return convert(text)
    except ValueError as exc:
        raise error(f"element {_local(element.tag)} is not a valid {what}: {exc}", element) from exc


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Behoerdenkennung:
    """``praefix`` + ``kennung``, both Codes (DVDV prefix, e.g. ``MELDID`` + AGS)."""

    praefix: Code
    kennung: Code

    def __str__(self) -> str:
        return f"{self.praefix.code}:{self.kennung.code}"

    @property
    def kennzeichen(self) -> str:
        """``"praefix:kennung"`` as used in the agency directory (``MELDID:05774032``)."""
        return str(self)

    @classmethod
    def from_string(
        cls,
        value: str,
        *,
        praefix_list_uri: str | None = None,
        praefix_list_version_id: str | None = None,
        kennung_list_uri: str | None = None,
        kennung_list_version_id: str | None = None,
    ) -> Behoerdenkennung:
        """``"MELDID:05774032"`` → Behoerdenkennung; the list attributes are optional."""
        praefix, sep, kennung = value.partition(":")
        if not sep or not praefix.strip() or not kennung.strip():
            raise ValueError(f"behoerdenkennung must be 'praefix:kennung', got {value!r}")
        return cls(
            Code(
                praefix.strip(), list_uri=praefix_list_uri, list_version_id=praefix_list_version_id
            ),
            Code(
                kennung.strip(), list_uri=kennung_list_uri, list_version_id=kennung_list_version_id
            ),
        )

    @classmethod
    def from_element(
        cls,
        element: etree._Element,
        *,
        strict: bool = True,
        error: ErrorFactory = _default_error,
        skipped: list[str] | None = None,
    ) -> Behoerdenkennung:
        _no_attributes(element, strict, error)
        ns = etree.QName(element).namespace
        r = ChildReader(element, ns, strict=strict, error=error, skipped=skipped)
        praefix = read_code(r.require("praefix"), strict=strict, error=error)
        kennung = read_code(r.require("kennung"), strict=strict, error=error)
        r.finish()
        return cls(praefix, kennung)

    def fill(self, element: etree._Element, namespace: str) -> etree._Element:
        write_code(element, namespace, "praefix", self.praefix)
        write_code(element, namespace, "kennung", self.kennung)
        return element


@dataclass(frozen=True, slots=True)
class Erreichbarkeit:
    """A communication channel: ``kanal`` (Code of list erreichbarkeit) and its ``kennung``."""

    kanal: Code
    kennung: str

    @classmethod
    def from_element(
        cls,
        element: etree._Element,
        *,
        strict: bool = True,
        error: ErrorFactory = _default_error,
        skipped: list[str] | None = None,
    ) -> Erreichbarkeit:
        _no_attributes(element, strict, error)
        ns = etree.QName(element).namespace
        r = ChildReader(element, ns, strict=strict, error=error, skipped=skipped)
        kanal = read_code(r.require("kanal"), strict=strict, error=error)
        kennung = read_text(r.require("kennung"), strict=strict, error=error)
        r.finish()
        return cls(kanal, kennung)

    def fill(self, element: etree._Element, namespace: str) -> etree._Element:
        write_code(element, namespace, "kanal", self.kanal)
        write_text(element, namespace, "kennung", self.kennung)
        return element


@dataclass(frozen=True, slots=True, kw_only=True)
class Anschrift:
    """A postal address (Behörde, Betriebsstätte or person). Only ``ort`` is required."""

    strasse: str | None = None
    strassenschluessel: str | None = None
    hausnummer: str | None = None
    hausnummer_von: str | None = None
    hausnummer_bis: str | None = None
    anschrift_zusatz: str | None = None
    postfach: str | None = None
    ort: str
    ortsteil: str | None = None
    plz: str | None = None
    nation_schluessel: Code | None = None

    XML: ClassVar[tuple[tuple[str, str], ...]] = (
        ("strasse", "strasse"),
        ("strassenschluessel", "strassenschluessel"),
        ("hausnummer", "hausNr"),
        ("hausnummer_von", "hausNrVon"),
        ("hausnummer_bis", "hausNrBis"),
        ("anschrift_zusatz", "anschriftZusatz"),
        ("postfach", "postfach"),
        ("ort", "ort"),
        ("ortsteil", "ortsteil"),
        ("plz", "plz"),
        ("nation_schluessel", "nationSchluessel"),
    )
    """Attribute → XÖV element name, in schema order."""

    @classmethod
    def from_element(
        cls,
        element: etree._Element,
        *,
        strict: bool = True,
        error: ErrorFactory = _default_error,
        skipped: list[str] | None = None,
    ) -> Anschrift:
        _no_attributes(element, strict, error)
        ns = etree.QName(element).namespace
        r = ChildReader(element, ns, strict=strict, error=error, skipped=skipped)
        values: dict[str, object] = {}
        for attr, local in cls.XML:
            if attr == "ort":
                values[attr] = read_text(r.require(local), strict=strict, error=error)
                continue
            child = r.take(local)
            if child is None:
                continue
            if attr == "nation_schluessel":
                values[attr] = read_code(child, strict=strict, error=error)
            else:
                values[attr] = read_text(child, strict=strict, error=error)
        r.finish()
        return cls(**values)  # type: ignore[arg-type]

    def fill(self, element: etree._Element, namespace: str) -> etree._Element:
        for attr, local in self.XML:
            value = getattr(self, attr)
            if value is None:
                continue
            if isinstance(value, Code):
                write_code(element, namespace, local, value)
            else:
                write_text(element, namespace, local, value)
        return element


@dataclass(frozen=True, slots=True, kw_only=True)
class Behoerde:
    """``leser`` or ``autor``: an authority with its Behördenkennung."""

    behoerdenkennung: Behoerdenkennung
    erreichbarkeit: tuple[Erreichbarkeit, ...] = ()
    anschrift: Anschrift | None = None
    behoerdenname: str | None = None

    def __str__(self) -> str:
        return str(self.behoerdenkennung)

    @classmethod
    def from_element(
        cls,
        element: etree._Element,
        *,
        strict: bool = True,
        error: ErrorFactory = _default_error,
        skipped: list[str] | None = None,
    ) -> Behoerde:
        _no_attributes(element, strict, error)
        ns = etree.QName(element).namespace
        r = ChildReader(element, ns, strict=strict, error=error, skipped=skipped)
        kw: dict[str, Any] = {"strict": strict, "error": error, "skipped": skipped}
        kennung = Behoerdenkennung.from_element(r.require("behoerdenkennung"), **kw)
        erreichbarkeit = tuple(
            Erreichbarkeit.from_element(e, **kw) for e in r.take_all("erreichbarkeit")
        )
        anschrift_el = r.take("anschrift")
        name_el = r.take("behoerdenname")
        r.finish()
        return cls(
            behoerdenkennung=kennung,
            erreichbarkeit=erreichbarkeit,
            anschrift=Anschrift.from_element(anschrift_el, **kw)
            if anschrift_el is not None
            else None,
            behoerdenname=read_text(name_el, strict=strict, error=error)
            if name_el is not None
            else None,
        )

    def fill(self, element: etree._Element, namespace: str) -> etree._Element:
        self.behoerdenkennung.fill(
            etree.SubElement(element, f"{{{namespace}}}behoerdenkennung"), namespace
        )
        for e in self.erreichbarkeit:
            e.fill(etree.SubElement(element, f"{{{namespace}}}erreichbarkeit"), namespace)
        if self.anschrift is not None:
            self.anschrift.fill(etree.SubElement(element, f"{{{namespace}}}anschrift"), namespace)
        if self.behoerdenname is not None:
            write_text(element, namespace, "behoerdenname", self.behoerdenname)
        return element


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _check_uuid(text: str) -> str:
    if not _UUID.fullmatch(text):
        raise ValueError("not a UUID (8-4-4-4-12 hex digits)")
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentifikationNachricht:
    """``identifikation.nachricht``. The UUID keeps its spelling (upper/lower case) as read."""

    nachrichten_uuid: str
    nachrichtentyp: Code
    erstellungszeitpunkt: datetime

    @classmethod
    def from_element(
        cls,
        element: etree._Element,
        *,
        strict: bool = True,
        error: ErrorFactory = _default_error,
        skipped: list[str] | None = None,
    ) -> IdentifikationNachricht:
        _no_attributes(element, strict, error)
        ns = etree.QName(element).namespace
        r = ChildReader(element, ns, strict=strict, error=error, skipped=skipped)
        uuid_el = r.require("nachrichtenUUID")
        typ_el = r.require("nachrichtentyp")
        zeit_el = r.require("erstellungszeitpunkt")
        r.finish()
        return cls(
            nachrichten_uuid=str(_value(uuid_el, _check_uuid, "UUID", strict, error)),
            nachrichtentyp=read_code(typ_el, strict=strict, error=error),
            erstellungszeitpunkt=_value(  # type: ignore[arg-type]
                zeit_el,
                lambda t: parse_datetime(t, require_tz=False),
                "xs:dateTime",
                strict,
                error,
            ),
        )

    def fill(self, element: etree._Element, namespace: str) -> etree._Element:
        write_text(element, namespace, "nachrichtenUUID", self.nachrichten_uuid)
        write_code(element, namespace, "nachrichtentyp", self.nachrichtentyp)
        write_text(
            element, namespace, "erstellungszeitpunkt", format_datetime(self.erstellungszeitpunkt)
        )
        return element


@dataclass(frozen=True, slots=True, kw_only=True)
class Nachrichtenkopf:
    """The XÖV message header: identification, reader (``leser``) and author (``autor``)."""

    identifikation: IdentifikationNachricht
    leser: Behoerde
    autor: Behoerde

    TAG: ClassVar[str] = "nachrichtenkopf"

    @property
    def nachrichten_uuid(self) -> str:
        return self.identifikation.nachrichten_uuid

    @property
    def nachrichtentyp(self) -> str:
        """The message type code (``0500``)."""
        return self.identifikation.nachrichtentyp.code

    @property
    def erstellungszeitpunkt(self) -> datetime:
        return self.identifikation.erstellungszeitpunkt

    @classmethod
    def neu(
        cls,
        *,
        nachrichtentyp: str | Code,
        leser: Behoerde,
        autor: Behoerde,
        nachrichten_uuid: str | None = None,
        erstellungszeitpunkt: datetime | None = None,
    ) -> Nachrichtenkopf:
        """A new header: a fresh UUID and the current UTC time (whole seconds) unless given."""
        typ = nachrichtentyp if isinstance(nachrichtentyp, Code) else Code(nachrichtentyp)
        zeit = erstellungszeitpunkt or datetime.now(UTC).replace(microsecond=0)
        if zeit.tzinfo is None:
            raise ValueError("erstellungszeitpunkt needs a time zone")
        return cls(
            identifikation=IdentifikationNachricht(
                nachrichten_uuid=nachrichten_uuid or str(uuid.uuid4()),
                nachrichtentyp=typ,
                erstellungszeitpunkt=zeit,
            ),
            leser=leser,
            autor=autor,
        )

    @classmethod
    def from_element(
        cls,
        element: etree._Element,
        *,
        strict: bool = True,
        error: ErrorFactory = _default_error,
        skipped: list[str] | None = None,
    ) -> Nachrichtenkopf:
        """Read a ``nachrichtenkopf`` element; its namespace is the standard's namespace."""
        if not isinstance(element.tag, str) or _local(element.tag) != cls.TAG:
            raise error(f"expected element {cls.TAG}", element)
        _no_attributes(element, strict, error)
        ns = etree.QName(element).namespace
        r = ChildReader(element, ns, strict=strict, error=error, skipped=skipped)
        kw: dict[str, Any] = {"strict": strict, "error": error, "skipped": skipped}
        ident = IdentifikationNachricht.from_element(r.require("identifikation.nachricht"), **kw)
        leser = Behoerde.from_element(r.require("leser"), **kw)
        autor = Behoerde.from_element(r.require("autor"), **kw)
        r.finish()
        return cls(identifikation=ident, leser=leser, autor=autor)

    def fill(self, element: etree._Element, namespace: str) -> etree._Element:
        self.identifikation.fill(
            etree.SubElement(element, f"{{{namespace}}}identifikation.nachricht"), namespace
        )
        self.leser.fill(etree.SubElement(element, f"{{{namespace}}}leser"), namespace)
        self.autor.fill(etree.SubElement(element, f"{{{namespace}}}autor"), namespace)
        return element

    def to_element(
        self,
        namespace: str,
        *,
        parent: etree._Element | None = None,
        nsmap: Mapping[str | None, str] | None = None,
    ) -> etree._Element:
        """Write as ``{namespace}nachrichtenkopf``: appended to ``parent`` if given, else a new
        root element (``nsmap`` chooses its prefix, e.g. ``{"xga": namespace}``)."""
        tag = f"{{{namespace}}}{self.TAG}"
        if parent is not None:
            element = etree.SubElement(parent, tag)
        else:
            element = etree.Element(tag, nsmap=dict(nsmap) if nsmap else None)
        return self.fill(element, namespace)
