"""xdomea, the XÖV standard for exchanging records (Schriftgut) between document management
systems, archives and specialised procedures. Known versions: 3.0.0 and 3.1.0, both with their
official XSD bundles shipped in ``schema/`` (see :mod:`xoev.xdomea.v3_0_0`,
:mod:`xoev.xdomea.v3_1_0`). The version of a message is read from its root namespace
(``urn:xoev-de:xdomea:schema:<version>``): :func:`version_for_namespace`.

``SAMPLES`` holds two made-up, valid 3.0.0 messages (no personal data):
``information-0101.xml`` (one document for information) and ``empfangbestaetigen-0102.xml``
(header only).
"""

from __future__ import annotations

from pathlib import Path

from ..standards import StandardVersion
from .v3_0_0 import VERSION as V3_0_0
from .v3_1_0 import VERSION as V3_1_0

__all__ = ["SAMPLES", "V3_0_0", "V3_1_0", "VERSIONS", "version_for_namespace"]

VERSIONS: tuple[StandardVersion, ...] = (V3_0_0, V3_1_0)

SAMPLES = Path(__file__).resolve().parent / "samples"

_BY_NAMESPACE = {sv.namespace: sv for sv in VERSIONS}


def version_for_namespace(namespace: str | None) -> StandardVersion | None:
    """The xdomea version whose root namespace this is, or None (not xdomea, or unknown)."""
    return _BY_NAMESPACE.get(namespace) if namespace else None
