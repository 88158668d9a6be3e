"""xdomea 3.1.0 (AG xdomea des IT-Planungsrates): the official bundle ships with amtsbote.

Vendored unchanged under ``xoev/xdomea/schema/3.1.0/`` (source and licence: ``schema/README.md``);
it imports the XÖV ``Code`` type as ``../xoev/xoev-code.xsd``. 3.1.0 differs from 3.0.0 in message
0511 (``AktenplanBewertungType``) and in documentation only: the message types and every
``…CodeType`` (enumerations, fixed ``listURI``/``listVersionID``) are those of 3.0.0, so the message
types, code bindings and genericode codelists of :mod:`xoev.xdomea.v3_0_0` serve here too
(``tests/test_xdomea.py`` checks this against both bundles). The codelists are registered once,
by 3.0.0; the codelist registry keys them by (listURI, version), which both versions share.
"""

from __future__ import annotations

from pathlib import Path

from ..namespaces import XDOMEA_3_1_0
from ..standards import StandardVersion
from .v3_0_0 import CODE_BINDINGS, MESSAGE_TYPES

__all__ = ["CODE_BINDINGS", "MESSAGE_TYPES", "NAMESPACE", "SCHEMA_DIR", "SCHEMA_PATH", "VERSION"]

NAMESPACE = XDOMEA_3_1_0
"""``targetNamespace`` of ``xdomea.xsd`` 3.1.0."""
SCHEMA_DIR = Path(__file__).resolve().parent / "schema" / "3.1.0"
SCHEMA_PATH = SCHEMA_DIR / "xdomea.xsd"

VERSION = StandardVersion(
    standard="xdomea",
    version="3.1.0",
    namespace=NAMESPACE,
    schema=SCHEMA_PATH,
    entry_name="xdomea.xsd",
    message_types=MESSAGE_TYPES,
    code_bindings=CODE_BINDINGS,
)
