"""xdomea, the XÖV standard for exchanging records (Schriftgut) between document management
systems, archives and specialised procedures. Known versions: 3.0.0, whose XSD bundle comes from
the schema path (see :mod:`xoev.xdomea.v3_0_0`).

``SAMPLES`` holds two made-up, valid 3.0.0 messages (no personal data):
``information-0101.xml`` (one document for information) and ``empfangbestaetigen-0102.xml``
(header only).
"""

from __future__ import annotations

from pathlib import Path

from ..standards import StandardVersion
from .v3_0_0 import VERSION as V3_0_0

__all__ = ["SAMPLES", "V3_0_0", "VERSIONS"]

VERSIONS: tuple[StandardVersion, ...] = (V3_0_0,)

SAMPLES = Path(__file__).resolve().parent / "samples"
