"""The message-type table of XGewerbeanzeige 2.2 (``types_v2_2.yaml``), loaded and checked.

One entry per recipient type: code, root element ``<praefix>.gewerbemeldung.<code>``, recipient
roles, XSD profile, provenance and the data groups the type carries. See the table's header for the
meaning of each key and how to add a type.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from ..namespaces import XGEWERBEANZEIGE_2_2
from .exceptions import TableError, UnknownTableEntryError

__all__ = [
    "BELEGE",
    "NAMESPACE",
    "PROFILE",
    "TABLE_PATH",
    "Datengruppe",
    "NachrichtenTyp",
    "datengruppen",
    "for_role",
    "nachrichtentyp",
    "nachrichtentypen",
]

NAMESPACE = XGEWERBEANZEIGE_2_2
TABLE_PATH = Path(__file__).with_name("types_v2_2.yaml")
PROFILE = ("voll", "statistik")
BELEGE = ("kosit-beispiel", "vorgabe", "angenommen", "amtsbote")
_CODE = re.compile(r"\d{4}")
_PRAEFIX = re.compile(r"[a-z]{2,5}")


@dataclass(frozen=True, slots=True)
class Datengruppe:
    """An optional group of data; ``pfade`` are XÖV element paths relative to the Meldung."""

    name: str
    beschreibung: str
    pfade: tuple[tuple[str, ...], ...]

    def pfad_texte(self) -> tuple[str, ...]:
        return tuple("/".join(p) for p in self.pfade)


@dataclass(frozen=True, slots=True)
class NachrichtenTyp:
    """One message type of the table."""

    code: str
    praefix: str
    rollen: tuple[str, ...]
    beschreibung: str
    profil: str
    beleg: str
    datengruppen: frozenset[str]

    @property
    def root(self) -> str:
        """Local name of the root element, e.g. ``abh.gewerbemeldung.0500``."""
        return f"{self.praefix}.gewerbemeldung.{self.code}"

    @property
    def xsd_type(self) -> str:
        """Name of the root element's complex type in the XSD (by profile)."""
        return "Gewerbemeldung" if self.profil == "voll" else "Gewerbemeldung.Statistik"

    def carries(self, gruppe: str) -> bool:
        if gruppe not in datengruppen():
            raise UnknownTableEntryError("data group", gruppe, sorted(datengruppen()))
        return gruppe in self.datengruppen

    def __str__(self) -> str:
        return self.root


def _need(entry: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in entry or entry[key] in (None, ""):
        raise TableError(TABLE_PATH.name, where, f"missing key {key!r}")
    return entry[key]


@cache
def _load() -> tuple[Mapping[str, Datengruppe], tuple[NachrichtenTyp, ...]]:
    raw = yaml.safe_load(TABLE_PATH.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise TableError(TABLE_PATH.name, "top level", "not a mapping")
    groups: dict[str, Datengruppe] = {}
    for name, entry in (_need(raw, "datengruppen", "top level") or {}).items():
        where = f"datengruppen.{name}"
        pfade = tuple(tuple(str(p).split("/")) for p in _need(entry, "pfade", where))
        groups[str(name)] = Datengruppe(str(name), str(_need(entry, "beschreibung", where)), pfade)
    types: list[NachrichtenTyp] = []
    for i, entry in enumerate(_need(raw, "nachrichtentypen", "top level")):
        where = f"nachrichtentypen[{i}]"
        code = str(_need(entry, "code", where))
        praefix = str(_need(entry, "praefix", where))
        where = f"nachrichtentypen[{i}] ({praefix}.{code})"
        if not _CODE.fullmatch(code):
            raise TableError(TABLE_PATH.name, where, "code must be four digits (quote it)")
        if not _PRAEFIX.fullmatch(praefix):
            raise TableError(TABLE_PATH.name, where, "praefix must be 2-5 lower-case letters")
        profil = str(_need(entry, "profil", where))
        if profil not in PROFILE:
            raise TableError(TABLE_PATH.name, where, f"profil must be one of {PROFILE}")
        beleg = str(_need(entry, "beleg", where))
        if beleg not in BELEGE:
            raise TableError(TABLE_PATH.name, where, f"beleg must be one of {BELEGE}")
        carried = frozenset(str(g) for g in entry.get("datengruppen") or ())
        unknown = sorted(carried - groups.keys())
        if unknown:
            raise TableError(TABLE_PATH.name, where, f"unknown datengruppen {unknown}")
        types.append(
            NachrichtenTyp(
                code=code,
                praefix=praefix,
                rollen=tuple(str(r) for r in _need(entry, "rollen", where)),
                beschreibung=str(_need(entry, "beschreibung", where)),
                profil=profil,
                beleg=beleg,
                datengruppen=carried,
            )
        )
    for attr in ("code", "praefix"):
        seen: set[str] = set()
        for t in types:
            value = getattr(t, attr)
            if value in seen:
                raise TableError(TABLE_PATH.name, t.root, f"duplicate {attr} {value}")
            seen.add(value)
    return MappingProxyType(groups), tuple(types)


def datengruppen() -> Mapping[str, Datengruppe]:
    """All data groups by name."""
    return _load()[0]


def nachrichtentypen() -> tuple[NachrichtenTyp, ...]:
    """All message types, in table order."""
    return _load()[1]


def nachrichtentyp(key: str | NachrichtenTyp) -> NachrichtenTyp:
    """Look a type up by code (``0500``), root element name (``abh.gewerbemeldung.0500``) or
    prefix (``abh``)."""
    if isinstance(key, NachrichtenTyp):
        return key
    for t in nachrichtentypen():
        if key in (t.code, t.root, t.praefix):
            return t
    raise UnknownTableEntryError("message type", key, [t.root for t in nachrichtentypen()])


def for_role(rolle: str) -> tuple[NachrichtenTyp, ...]:
    """The message types serving a recipient role (``Lebensmittelüberwachung`` → lue 0290)."""
    return tuple(t for t in nachrichtentypen() if rolle in t.rollen)
