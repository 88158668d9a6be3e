"""Declarative binding between the frozen model dataclasses and XÖV XML.

A model class declares each XML child with :func:`xml` (``field`` metadata ``xml`` = the XÖV local
name); the field order is the schema's sequence order and the annotation says how to read and write:

====================================  ===================================================
annotation                            XML
====================================  ===================================================
``str`` / ``int``                     simple element (text; ``xs:nonNegativeInteger``)
``date`` / ``datetime``               ``xs:date`` ``YYYY-MM-DD`` / ``xs:dateTime`` with offset
``Code``                              XÖV Code (unqualified ``code``/``name``)
class with ``from_text``/``__str__``  simple element with its own lexical form (Geburtsdatum)
class with ``from_element``/``fill``  an element read/written by that class (Nachrichtenkopf parts)
bound dataclass                       complex element, recursively
``A | B | C`` of bound dataclasses    choice; the element name is the class's ``XML_TAG``
``X | None``                          optional (``minOccurs=0``)
``tuple[X, ...]``                     repeated (``minOccurs`` from ``xml(..., min=n)``, default 0)
====================================  ===================================================
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from datetime import date, datetime
from typing import Any

from lxml import etree

from ..code import Code
from ..nachrichtenkopf import (
    ChildReader,
    ErrorFactory,
    format_date,
    format_datetime,
    parse_date,
    parse_datetime,
    read_code,
    read_text,
    write_code,
    write_text,
)

__all__ = ["Context", "Spec", "is_bound", "read_fields", "specs", "write_fields", "xml"]


def xml(name: str, default: Any = MISSING, *, min: int = 0) -> Any:
    """Declare a model field bound to the XÖV child element ``name``."""
    meta = {"xml": name, "min": min}
    if default is MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class Spec:
    attr: str
    xml: str
    kind: str
    """text | int | date | datetime | code | value | external | node | choice"""
    typ: Any
    """The item class, or for ``choice`` a tuple of classes."""
    optional: bool
    repeated: bool
    min: int

    @property
    def required(self) -> bool:
        return not self.optional and (not self.repeated or self.min > 0)


@dataclass(slots=True)
class Context:
    namespace: str
    strict: bool
    error: ErrorFactory
    skipped: list[str]


def is_bound(cls: Any) -> bool:
    return dataclasses.is_dataclass(cls) and any(
        "xml" in f.metadata for f in dataclasses.fields(cls)
    )


def _kind(typ: Any) -> str:
    if typ is Code:
        return "code"
    if typ is str:
        return "text"
    if typ is int:
        return "int"
    if typ is datetime:
        return "datetime"
    if typ is date:
        return "date"
    if is_bound(typ):
        return "node"
    if hasattr(typ, "from_element") and hasattr(typ, "fill"):
        return "external"
    if hasattr(typ, "from_text"):
        return "value"
    raise TypeError(f"no XML binding for type {typ!r}")


_SPECS: dict[Any, tuple[Spec, ...]] = {}


def specs(cls: Any) -> tuple[Spec, ...]:
    """The bound fields of a model class, in schema order (computed once per class)."""
    found = _SPECS.get(cls)
    if found is None:
        found = _SPECS[cls] = _specs(cls)
    return found


def _specs(cls: Any) -> tuple[Spec, ...]:
    hints = typing.get_type_hints(cls)
    out: list[Spec] = []
    for f in dataclasses.fields(cls):
        if "xml" not in f.metadata:
            continue
        typ = hints[f.name]
        optional = repeated = False
        origin = typing.get_origin(typ)
        if origin in (types.UnionType, typing.Union):
            args = [a for a in typing.get_args(typ) if a is not type(None)]
            optional = len(args) < len(typing.get_args(typ))
            if len(args) > 1:
                out.append(
                    Spec(f.name, f.metadata["xml"], "choice", tuple(args), optional, False, 0)
                )
                continue
            typ = args[0]
            origin = typing.get_origin(typ)
        if origin is tuple:
            repeated = True
            typ = typing.get_args(typ)[0]
        out.append(
            Spec(
                f.name,
                f.metadata["xml"],
                _kind(typ),
                typ,
                optional,
                repeated,
                int(f.metadata.get("min", 0)),
            )
        )
    return tuple(out)


def _local(tag: Any) -> str:
    return str(tag).rpartition("}")[2]


def _convert(el: etree._Element, ctx: Context, fn: Callable[[str], Any], what: str) -> Any:
    text = read_text(el, strict=ctx.strict, error=ctx.error)
    try:
        return fn(text)
    except ValueError as exc:
        raise ctx.error(f"element {_local(el.tag)} is not a valid {what}: {exc}", el) from exc


def _nonneg(text: str) -> int:
    if not text.isdigit():
        raise ValueError("expected a non-negative integer")
    return int(text)


def _read_value(spec: Spec, typ: Any, el: etree._Element, ctx: Context) -> Any:
    kind = spec.kind if spec.kind != "choice" else "node"
    if kind == "text":
        return read_text(el, strict=ctx.strict, error=ctx.error)
    if kind == "code":
        return read_code(el, strict=ctx.strict, error=ctx.error)
    if kind == "int":
        return _convert(el, ctx, _nonneg, "xs:nonNegativeInteger")
    if kind == "date":
        return _convert(el, ctx, parse_date, "xs:date")
    if kind == "datetime":
        return _convert(
            el,
            ctx,
            lambda t: parse_datetime(t, require_tz=False),
            "xs:dateTime",
        )
    if kind == "value":
        return _convert(el, ctx, typ.from_text, typ.__name__)
    if kind == "external":
        return typ.from_element(el, strict=ctx.strict, error=ctx.error, skipped=ctx.skipped)
    if ctx.strict and el.attrib:
        raise ctx.error(
            f"unexpected attribute {_local(next(iter(el.attrib)))} on {_local(el.tag)}", el
        )
    return typ(**read_fields(typ, el, ctx))


def read_fields(cls: type, el: etree._Element, ctx: Context) -> dict[str, Any]:
    """Read the children of ``el`` into constructor arguments of ``cls``."""
    reader = ChildReader(el, ctx.namespace, strict=ctx.strict, error=ctx.error, skipped=ctx.skipped)
    values: dict[str, Any] = {}
    for spec in specs(cls):
        if spec.kind == "choice":
            found = None
            for option in spec.typ:
                child = reader.take(option.XML_TAG)
                if child is not None:
                    found = (option, child)
                    break
            if found is None:
                names = ", ".join(o.XML_TAG for o in spec.typ)
                if spec.optional:
                    continue
                raise ctx.error(f"one of {names} required in {_local(el.tag)}", el)
            values[spec.attr] = _read_value(spec, found[0], found[1], ctx)
        elif spec.repeated:
            children = reader.take_all(spec.xml)
            if len(children) < spec.min:
                raise ctx.error(f"required element {spec.xml} missing in {_local(el.tag)}", el)
            values[spec.attr] = tuple(_read_value(spec, spec.typ, c, ctx) for c in children)
        else:
            child = reader.take(spec.xml) if spec.optional else reader.require(spec.xml)
            if child is not None:
                values[spec.attr] = _read_value(spec, spec.typ, child, ctx)
    reader.finish()
    return values


def _write_value(spec: Spec, value: Any, parent: etree._Element, ns: str) -> None:
    kind = spec.kind
    if kind == "choice":
        child = etree.SubElement(parent, f"{{{ns}}}{value.XML_TAG}")
        write_fields(value, child, ns)
    elif kind == "text":
        write_text(parent, ns, spec.xml, value)
    elif kind == "code":
        write_code(parent, ns, spec.xml, value)
    elif kind == "int":
        write_text(parent, ns, spec.xml, str(int(value)))
    elif kind == "date":
        write_text(parent, ns, spec.xml, format_date(value))
    elif kind == "datetime":
        write_text(parent, ns, spec.xml, format_datetime(value))
    elif kind == "value":
        write_text(parent, ns, spec.xml, str(value))
    elif kind == "external":
        value.fill(etree.SubElement(parent, f"{{{ns}}}{spec.xml}"), ns)
    else:
        write_fields(value, etree.SubElement(parent, f"{{{ns}}}{spec.xml}"), ns)


def write_fields(obj: Any, el: etree._Element, ns: str) -> etree._Element:
    """Append the bound fields of ``obj`` to ``el`` as children, in schema order. ``None`` and
    empty tuples write nothing (a missing required element is left to validation)."""
    for spec in specs(type(obj)):
        value = getattr(obj, spec.attr)
        if value is None:
            continue
        for item in value if spec.repeated else (value,):
            _write_value(spec, item, el, ns)
    return el
