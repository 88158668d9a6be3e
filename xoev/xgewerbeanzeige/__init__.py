"""XGewerbeanzeige support: the versions the registry knows (:data:`VERSIONS`) and our sample
messages (:func:`samples`, the intake notifications among them: :func:`notifications`).

Version 2.2 (namespace ``http://www.xgewerbeanzeige.de/spezifikation/2.2``):

* ``v2_2`` — typed model, ``parse``/``build``, data minimisation ``project``/``build_for``
* ``rules_v2_2`` — business rules XGWA-R01…R11 (``check_rules``)
* ``message_types`` — the message-type table ``types_v2_2.yaml``
* ``codelisten`` — the genericode lists in ``codelists/`` and the element bindings
* ``schema/2.2/xgewerbeanzeige.xsd`` — the schema we ship; ``samples/`` — fictitious Paderborn
  messages: outgoing ones (``<art>-<betrieb>-<praefix>-<code>.xml``, ``invalid-…`` deliberately
  invalid) and intake notifications from the portal to the Gewerbeamt (``notification-….xml``,
  ``gwa.gewerbemeldung.0010``, each a complete record from which every recipient type can be
  projected with ``v2_2.build_for``)

Importing this package is cheap (no XSD compilation, no xmlschema import): the registry reads
:data:`VERSIONS` only. The model lives in :mod:`xoev.xgewerbeanzeige.v2_2`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from ..parsing import parse_file
from ..standards import MessageType, StandardVersion
from .codelisten import code_bindings, codelist_paths
from .message_types import NAMESPACE, nachrichtentypen
from .rules_v2_2 import check_rules

__all__ = [
    "NOTIFICATION_PREFIX",
    "SAMPLES_DIR",
    "V2_2",
    "VERSIONS",
    "Sample",
    "notifications",
    "samples",
]

_HERE = Path(__file__).parent
SAMPLES_DIR = _HERE / "samples"
NOTIFICATION_PREFIX = "notification-"
"""File-name prefix of the intake notifications among the samples."""

V2_2 = StandardVersion(
    standard="XGewerbeanzeige",
    version="2.2",
    namespace=NAMESPACE,
    schema=_HERE / "schema" / "2.2" / "xgewerbeanzeige.xsd",
    message_types=tuple(
        MessageType(code=t.code, root=t.root, description=t.beschreibung)
        for t in nachrichtentypen()
    ),
    rules=check_rules,
    codelists=codelist_paths(),
    code_bindings=code_bindings(),
)

VERSIONS: tuple[StandardVersion, ...] = (V2_2,)


@dataclass(frozen=True, slots=True)
class Sample:
    """One of our sample messages. ``valid`` is False for the deliberately invalid ones (file
    name ``invalid-…``); ``description`` is the leading comment of the file."""

    name: str
    path: Path
    valid: bool
    root: str
    description: str

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    @property
    def is_notification(self) -> bool:
        """An intake notification (portal → Gewerbeamt, file name ``notification-…``)."""
        return self.name.startswith(NOTIFICATION_PREFIX)


def samples() -> tuple[Sample, ...]:
    """Our fictitious Paderborn sample messages (package data), sorted by file name: the outgoing
    messages and the intake notifications (:func:`notifications`)."""
    out: list[Sample] = []
    for path in sorted(SAMPLES_DIR.glob("*.xml")):
        tree = parse_file(path)
        root = tree.getroot()
        comment = root.getprevious()
        while comment is not None and not isinstance(comment, etree._Comment):
            comment = comment.getprevious()
        description = " ".join((comment.text or "").split()) if comment is not None else ""
        out.append(
            Sample(
                name=path.stem,
                path=path,
                valid=not path.stem.startswith("invalid"),
                root=etree.QName(root).localname,
                description=description,
            )
        )
    return tuple(out)


def notifications() -> tuple[Sample, ...]:
    """The intake notifications among :func:`samples`: complete records
    (``gwa.gewerbemeldung.0010``) that the Wirtschafts-Service-Portal.NRW (``PORTAL:05-wsp``)
    sends to the Gewerbeamt of the Stadt Paderborn (``MELDID:05774032``), sorted by file name."""
    return tuple(s for s in samples() if s.is_notification)
