"""The official XTA 2.1.1 XSDs as one lxml :class:`~lxml.etree.XMLSchema`, compiled once and
offline, to validate what the server answers (bodies, faults, whole envelopes).

The entry is the WSDL's own ``types`` schema (the XTA namespace including the global elements
and the exceptions, importing the OSCI schemas) plus the SOAP 1.2 envelope. Every
``schemaLocation`` resolves inside ``wsdl/``: ``OSCI2_02.xsd``'s ``".xsd"`` goes to our
``amtsbote-soap12-envelope.xsd`` (see ``wsdl/README.md``), anything else outside the folder is
refused, the network is never used.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from lxml import etree

from .exceptions import XtaSchemaError
from .namespaces import OSCI, OSCIMETA, SOAP12, WSA, XOP, XTA, q

__all__ = ["WSDL_DIR", "WSDL_PATH", "assert_valid", "schema", "validation_errors"]

WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
WSDL_PATH = WSDL_DIR / "XTA.wsdl"
SOAP12_SCHEMA = WSDL_DIR / "amtsbote-soap12-envelope.xsd"

_ENTRY = f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="{XTA}"
           elementFormDefault="qualified">
  <xs:import namespace="{SOAP12}" schemaLocation="amtsbote-soap12-envelope.xsd"/>
  <xs:import namespace="{OSCIMETA}" schemaLocation="OSCI_MessageMetaData_V2.02.xsd"/>
  <xs:import namespace="{OSCI}" schemaLocation="OSCI2_02.xsd"/>
  <xs:import namespace="{WSA}" schemaLocation="ws-addr.xsd"/>
  <xs:include schemaLocation="XTA-Webservice-Globale-Elemente.xsd"/>
  <xs:include schemaLocation="XTA-Webservice-Exceptions.xsd"/>
</xs:schema>
""".encode()


class _WsdlDirResolver(etree.Resolver):
    """Schema locations inside ``wsdl/`` only; ``.xsd`` (OSCI2_02's SOAP 1.2 import) → ours."""

    def resolve(self, system_url: str | None, public_id: str | None, context: object) -> object:
        if not system_url:
            return None
        path = Path(system_url.removeprefix("file://"))
        if path.name == ".xsd":
            return self.resolve_filename(str(SOAP12_SCHEMA), context)
        try:
            resolved = path.resolve()
        except OSError:
            resolved = path
        if resolved.parent == WSDL_DIR and resolved.is_file():
            return self.resolve_filename(str(resolved), context)
        # an unresolvable location: an empty string stops libxml2 from trying the network
        return self.resolve_string("", context)


_lock = threading.Lock()


@functools.cache
def schema() -> etree.XMLSchema:
    """The compiled schema (first call ~0.2 s; thread-safe, cached for the process)."""
    with _lock:
        parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
        parser.resolvers.add(_WsdlDirResolver())
        doc = etree.fromstring(_ENTRY, parser, base_url=str(WSDL_DIR / "amtsbote-entry.xsd"))
        return etree.XMLSchema(doc.getroottree())


def validation_errors(element: etree._Element | etree._ElementTree) -> list[str]:
    """Why ``element`` (a global element of the XTA/OSCI/WSA/SOAP 1.2 namespaces, e.g. a
    response body child or a whole envelope) is not valid; empty when it is. ``xop:Include``
    is read as the base64 content it stands for (MTOM)."""
    root = element.getroot() if isinstance(element, etree._ElementTree) else element
    # validate a copy as its own document: lxml validates the tree the element is in otherwise
    doc = etree.fromstring(etree.tostring(root))
    # the XOP infoset: an xop:Include stands for base64 content of its parent
    for include in doc.iter(q(XOP, "Include")):
        parent = include.getparent()
        if parent is not None:
            parent.remove(include)
            parent.text = "AA=="
    compiled = schema()
    with _lock:  # an XMLSchema object keeps its error log: one validation at a time
        if compiled.validate(doc):
            return []
        return [f"line {e.line}: {e.message}" for e in compiled.error_log]


def assert_valid(element: etree._Element | etree._ElementTree) -> None:
    """Raise :class:`XtaSchemaError` unless ``element`` is valid."""
    errors = validation_errors(element)
    if errors:
        root = element.getroot() if isinstance(element, etree._ElementTree) else element
        raise XtaSchemaError(etree.QName(root).localname, errors)
