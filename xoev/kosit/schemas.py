"""The ``validateWithXmlSchema`` step: XSDs of a scenario compiled with lxml, kept inside the
repository.

The schema document and everything it imports or includes are read through a resolver that only
serves files inside the configuration's repository; a ``schemaLocation`` that is a URL or leaves the
repository makes the configuration unusable (:class:`~xoev.exceptions.KositConfigError`), network
access is off. Findings come from :class:`xoev.xsd.CompiledSchema`, like those of the built-in
registry (``rule='xsd:…'``, line, XPath).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lxml import etree

from ..exceptions import KositConfigError
from ..xsd import CompiledSchema

__all__ = ["compile_schema"]


class _RepositoryResolver(etree.Resolver):
    """Serves ``file:`` paths inside ``repository``; refuses everything else."""

    def __init__(self, repository: Path) -> None:
        super().__init__()
        self.repository = repository
        self.refused: list[str] = []

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        parsed = urlparse(system_url)
        if parsed.scheme not in ("", "file") or parsed.netloc:
            self.refused.append(system_url)
            return self.resolve_string("", context)
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(self.repository) or not path.is_file():
            self.refused.append(system_url)
            return self.resolve_string("", context)
        return self.resolve_filename(str(path), context)


def compile_schema(
    path: Path, *, repository: Path, source: str, line: int | None = None
) -> CompiledSchema:
    """Compile the XSD at ``path`` (inside ``repository``) and what it imports from there."""
    resolver = _RepositoryResolver(repository)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    parser.resolvers.add(resolver)  # huge_tree stays off (the default)
    try:
        schema = etree.XMLSchema(etree.parse(str(path), parser))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError, OSError) as exc:
        detail = " ".join(str(exc).split())
        if resolver.refused:
            detail += f" (refused, outside the repository {repository}: "
            detail += ", ".join(resolver.refused) + ")"
        raise KositConfigError(
            f"XML Schema {path} does not compile: {detail}", path=source, line=line
        ) from exc
    if resolver.refused:
        raise KositConfigError(
            f"XML Schema {path} refers to resources outside the repository {repository}: "
            + ", ".join(resolver.refused),
            path=source,
            line=line,
        )
    return CompiledSchema(schema, path=str(path), origin=f"KoSIT repository {repository}")
