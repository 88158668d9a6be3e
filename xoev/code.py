"""The XÖV datatype ``Code``: a value from a codelist, with the list's URI and version.

In XML the children ``code`` and ``name`` are unqualified (xoev-code.xsd, ``form="unqualified"``);
``listURI`` and ``listVersionID`` are attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

__all__ = ["Code"]


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    name: str | None = None
    list_uri: str | None = None
    list_version_id: str | None = None

    def __str__(self) -> str:
        return self.code

    @classmethod
    def from_element(cls, element: etree._Element) -> Code:
        code_el = element.find("code")
        if code_el is None or not (code_el.text or "").strip():
            raise ValueError(f"element {element.tag} has no <code> child")
        name_el = element.find("name")
        return cls(
            code=(code_el.text or "").strip(),
            name=(name_el.text or "").strip() if name_el is not None else None,
            list_uri=element.get("listURI"),
            list_version_id=element.get("listVersionID"),
        )

    def to_element(self, tag: str) -> etree._Element:
        element = etree.Element(tag)
        self.fill(element)
        return element

    def fill(self, element: etree._Element) -> etree._Element:
        """Write this code into ``element`` (attributes and unqualified children)."""
        if self.list_uri is not None:
            element.set("listURI", self.list_uri)
        if self.list_version_id is not None:
            element.set("listVersionID", self.list_version_id)
        etree.SubElement(element, "code").text = self.code
        if self.name is not None:
            etree.SubElement(element, "name").text = self.name
        return element
