"""A KoSIT validator configuration, loaded once and used for many documents.

::

    config = KositConfiguration.load("xgewerbeordnung-config/")   # or …/scenarios.xml
    report = config.check(data, source="anzeige.xml")
    report.scenario, report.accepted, report.findings

:meth:`KositConfiguration.load` reads and checks ``scenarios.xml`` (:mod:`xoev.kosit.scenarios`),
then compiles every XML Schema (lxml) and every Schematron stylesheet (hardened Saxon HE,
:mod:`xoev.kosit.xslt`) once; a stylesheet used by several scenarios is compiled once. Anything
broken is a :class:`~xoev.exceptions.KositConfigError` at load time, never during a check.

:meth:`KositConfiguration.check` never raises for bad input: not well-formed or hostile input
(``kosit:not-wellformed``), no or several matching scenarios (``kosit:no-scenario``), an XSLT
runtime error (``kosit:xslt-error``) and a rejecting ``acceptMatch`` (``kosit:rejected``) are
findings, and the report's :attr:`~xoev.findings.Report.accepted` is KoSIT's recommendation
(:mod:`xoev.kosit.acceptance`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from ..exceptions import KositConfigError, UnusableInputError
from ..findings import Finding, Report, Severity
from ..parsing import ParserConfig, parse_xml
from ..xsd import CompiledSchema
from .acceptance import StepResult, build_report, evaluate_accept_match
from .scenarios import Scenario, ScenarioFile, read_scenarios
from .schemas import compile_schema
from .selection import select_scenario
from .svrl import findings_from_svrl
from .xslt import CompiledStylesheet, XsltRunError, compile_stylesheet

__all__ = ["SCENARIOS_FILE", "UNUSABLE_RULES", "KositConfiguration"]

SCENARIOS_FILE = "scenarios.xml"
#: Finding rules that say the document could not be checked at all (the CLI's exit 2).
UNUSABLE_RULES = frozenset({"kosit:not-wellformed", "kosit:no-scenario"})


@dataclass(frozen=True, slots=True)
class _Steps:
    schemas: tuple[CompiledSchema, ...]
    schematrons: tuple[CompiledStylesheet, ...]


class KositConfiguration:
    """A loaded configuration: scenarios with compiled schemas and stylesheets."""

    def __init__(
        self,
        scenarios: ScenarioFile,
        *,
        parser_config: ParserConfig | None = None,
    ) -> None:
        self.file = scenarios
        self.parser_config = parser_config
        #: compiled stylesheets by file (each compiled once, shared by the scenarios using it)
        self.stylesheets: dict[Path, CompiledStylesheet] = {}
        self.schemas: dict[Path, CompiledSchema] = {}
        self._steps: dict[int, _Steps] = {}
        source = str(scenarios.path)
        for index, scenario in enumerate(scenarios.scenarios):
            schemas = tuple(
                self._schema(r.path, source=source, line=r.line) for r in scenario.schemas
            )
            sheets = tuple(
                self._stylesheet(r.path, source=source, line=r.line) for r in scenario.schematrons
            )
            self._steps[index] = _Steps(schemas, sheets)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        repository: str | os.PathLike[str] | None = None,
        parser_config: ParserConfig | None = None,
    ) -> KositConfiguration:
        """Load ``path``: a ``scenarios.xml`` or a folder holding one. Resource locations resolve
        in ``repository`` (KoSIT's ``-r``), by default the folder of the scenarios file."""
        p = Path(path)
        file = p / SCENARIOS_FILE if p.is_dir() else p
        if not file.is_file():
            raise KositConfigError(
                "no KoSIT scenarios file here (a scenarios.xml, or a folder holding one)",
                path=str(file),
            )
        repo = Path(repository) if repository is not None else file.parent
        return cls(read_scenarios(file, repository=repo), parser_config=parser_config)

    @property
    def name(self) -> str:
        return self.file.name

    @property
    def scenarios(self) -> tuple[Scenario, ...]:
        return self.file.scenarios

    def _schema(self, path: Path, *, source: str, line: int | None) -> CompiledSchema:
        if path not in self.schemas:
            self.schemas[path] = compile_schema(
                path, repository=self.file.repository, source=source, line=line
            )
        return self.schemas[path]

    def _stylesheet(self, path: Path, *, source: str, line: int | None) -> CompiledStylesheet:
        if path not in self.stylesheets:
            self.stylesheets[path] = compile_stylesheet(path, source=source, line=line)
        return self.stylesheets[path]

    # ----------------------------------------------------------------------------------------

    def check(self, data: bytes, *, source: str = "<bytes>") -> Report:
        """Check one document the way KoSIT's Prüftool does; the outcome as a :class:`Report`."""
        return self.check_with_report(data, source=source, build=False)[0]

    def check_with_report(
        self, data: bytes, *, source: str = "<bytes>", build: bool = True
    ) -> tuple[Report, etree._ElementTree | None]:
        """:meth:`check`, plus the VARL-shaped report ``acceptMatch`` is evaluated on
        (:mod:`xoev.kosit.acceptance`; None when no scenario was selected)."""
        report = Report(source=source, accepted=False)
        try:
            tree = parse_xml(data, config=self.parser_config, source=source)
        except UnusableInputError as exc:
            report.findings.append(
                Finding(
                    Severity.ERROR,
                    f"document is not usable XML: {exc.reason}",
                    "kosit:not-wellformed",
                    line=exc.line,
                )
            )
            return report, None
        selection = select_scenario(self.scenarios, tree)
        scenario = selection.scenario
        if scenario is None:
            report.findings.append(self._no_scenario(selection.matching, tree))
            return report, None
        report.scenario = scenario.name
        steps = self._steps[self.scenarios.index(scenario)]
        results: list[StepResult] = []
        schema_findings: list[Finding] = []
        for compiled in steps.schemas:
            schema_findings.extend(compiled.findings(tree))
        results.append(("xsd", schema_findings))
        report.findings.extend(schema_findings)
        schema_valid = not any(f.severity is Severity.ERROR for f in schema_findings)
        if schema_valid:  # KoSIT skips Schematron for schema-invalid documents
            text = etree.tostring(tree, encoding="unicode")
            for number, sheet in enumerate(steps.schematrons, 1):
                found = self._schematron(sheet, text, tree, scenario)
                results.append((f"schematron.{number}", found))
                report.findings.extend(found)
        varl = None
        if build or (schema_valid and scenario.accept_match is not None):
            varl = build_report(scenario.name, results, tree)
        report.accepted = self._accept(scenario, schema_valid, results, varl, report)
        return report, varl

    def _no_scenario(self, matching: tuple[Scenario, ...], tree: etree._ElementTree) -> Finding:
        root = tree.getroot()
        qname = etree.QName(root)
        if matching:
            names = ", ".join(s.name for s in matching)
            reason = f"{len(matching)} scenarios match ({names}); exactly one must"
        else:
            reason = "no scenario matches"
        ns = f"{{{qname.namespace}}}" if qname.namespace else ""
        return Finding(
            Severity.ERROR,
            f"{reason} the document (root element {ns}{qname.localname}) in the KoSIT "
            f"configuration {self.name!r}",
            "kosit:no-scenario",
            line=root.sourceline,
            xpath="/" + qname.localname,
        )

    def _schematron(
        self, sheet: CompiledStylesheet, text: str, tree: etree._ElementTree, scenario: Scenario
    ) -> list[Finding]:
        try:
            svrl = sheet.transform(text)
            return findings_from_svrl(svrl, custom_levels=scenario.custom_levels, tree=tree)
        except XsltRunError as exc:
            reason = f"Schematron stylesheet {sheet.path.name} failed at run time: {exc}"
        except etree.XMLSyntaxError as exc:
            reason = f"Schematron stylesheet {sheet.path.name} produced no readable SVRL: {exc}"
        return [Finding(Severity.ERROR, reason, "kosit:xslt-error")]

    @staticmethod
    def _accept(
        scenario: Scenario,
        schema_valid: bool,
        results: list[StepResult],
        varl: etree._ElementTree | None,
        report: Report,
    ) -> bool:
        if not schema_valid:
            return False
        if scenario.accept_match is None or varl is None:
            return not any(
                f.severity is Severity.ERROR for _step, found in results[1:] for f in found
            )
        try:
            accepted = evaluate_accept_match(scenario.accept_match, varl)
        except etree.XPathEvalError as exc:
            reason = f"acceptMatch {scenario.accept_match_text!r} cannot be evaluated: {exc}"
            report.findings.append(Finding(Severity.ERROR, reason, "kosit:rejected"))
            return False
        if not accepted:
            report.findings.append(
                Finding(
                    Severity.ERROR,
                    f"rejected by the scenario's acceptMatch {scenario.accept_match_text!r}",
                    "kosit:rejected",
                )
            )
        return accepted
