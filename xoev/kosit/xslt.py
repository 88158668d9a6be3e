"""Compiled Schematron (XSLT 2.0 producing SVRL) run with Saxon HE (saxonche), hardened.

One :class:`saxonche.PySaxonProcessor` per process is configured before anything is compiled:

* ``http://saxon.sf.net/feature/allowedProtocols`` = ``""``: Saxon refuses *every* external
  resource — ``doc()``, ``document()``, ``unparsed-text()``, ``collection()``, ``json-doc()``,
  ``xsl:source-document``, ``xsl:include``/``xsl:import`` — for ``file:``, ``http:`` and every other
  scheme, before opening anything (``*-available()`` answer false);
* ``http://saxon.sf.net/feature/allow-external-functions`` = ``false``: no extension functions;
  Saxon then also refuses ``xsl:result-document`` at compile time (nothing can be written) and
  ``environment-variable()`` sees no variables.

Stylesheets are read by Python (inside the configuration's repository, see
:mod:`xoev.kosit.scenarios`) and compiled from their text, so compiling needs no file access either;
a stylesheet that includes or imports other modules therefore does not compile (the official KoSIT
configurations ship each Schematron as one compiled XSLT). The input document is handed over as
text of the tree the hardened parser (:mod:`xoev.parsing`) built: no DOCTYPE, nothing to resolve.

A :class:`CompiledStylesheet` is compiled once and reused; Saxon executables are not thread-safe,
so each one transforms under its own lock. A dynamic error (``error()``, ``xsl:message
terminate="yes"``, a refused ``doc()``) comes back as :class:`XsltRunError`, which the caller turns
into a finding.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from ..exceptions import KositConfigError, UnusableInputError, XoevError
from ..parsing import ParserConfig, parse_xml, read_input

__all__ = [
    "HARDENING",
    "CompiledStylesheet",
    "XsltRunError",
    "compile_stylesheet",
    "processor",
]

#: The Saxon configuration properties set on the process-wide processor (see the module text).
HARDENING: dict[str, str] = {
    "http://saxon.sf.net/feature/allowedProtocols": "",
    "http://saxon.sf.net/feature/allow-external-functions": "false",
}
_STYLESHEET_PARSER = ParserConfig(max_bytes=64 * 1024 * 1024, max_tags=5_000_000)

_lock = threading.Lock()
_processor: Any = None


def processor() -> Any:
    """The hardened :class:`saxonche.PySaxonProcessor` (created on first use)."""
    global _processor
    with _lock:
        if _processor is None:
            from saxonche import PySaxonProcessor

            proc = PySaxonProcessor(license=False)
            for name, value in HARDENING.items():
                proc.set_configuration_property(name, value)
            _processor = proc
        return _processor


class XsltRunError(XoevError):
    """A dynamic XSLT error while transforming (internal: :mod:`xoev.kosit` turns it into a
    finding, it never reaches the caller)."""


@dataclass(slots=True)
class CompiledStylesheet:
    """A compiled stylesheet and the file it came from; :attr:`runs` counts transformations."""

    path: Path
    executable: Any
    runs: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def transform(self, document_text: str) -> str:
        """Run on a document given as XML text; the result serialised (SVRL)."""
        from saxonche import PySaxonApiError

        proc = processor()
        with self._lock:
            self.runs += 1
            try:
                node = proc.parse_xml(xml_text=document_text)
                result = self.executable.transform_to_string(xdm_node=node)
            except PySaxonApiError as exc:
                raise XsltRunError(_clean(str(exc))) from exc
        if result is None:
            raise XsltRunError("the stylesheet produced no result")
        return str(result)


def _clean(message: str) -> str:
    return " ".join(message.split()) or "XSLT dynamic error"


def compile_stylesheet(path: Path, *, source: str, line: int | None = None) -> CompiledStylesheet:
    """Compile the XSLT at ``path`` (already resolved inside the repository) from its text."""
    from saxonche import PySaxonApiError

    try:  # the hardened intake: no DOCTYPE, any declared encoding, then text for Saxon
        tree = parse_xml(read_input(path, config=_STYLESHEET_PARSER), source=str(path))
    except UnusableInputError as exc:
        raise KositConfigError(
            f"stylesheet {path} is not usable: {exc.reason}", path=source, line=line
        ) from exc
    text = etree.tostring(tree, encoding="unicode")
    xslt = processor().new_xslt30_processor()
    try:
        executable = xslt.compile_stylesheet(stylesheet_text=text)
    except PySaxonApiError as exc:
        raise KositConfigError(
            f"stylesheet {path} does not compile (hardened Saxon HE: no file or URL access, "
            f"no extension functions): {_clean(str(exc))}",
            path=source,
            line=line,
        ) from exc
    if executable is None:
        raise KositConfigError(f"stylesheet {path} does not compile", path=source, line=line)
    return CompiledStylesheet(path=path, executable=executable)
