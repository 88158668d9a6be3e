"""KoSIT validator configurations (xoev.kosit), tested with KoSIT's own example configuration in
``../shared/kosit/`` and its inputs, plus hostile stylesheets of our own for the hardening."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lxml import etree

import xoev.kosit.configuration as configuration_module
from flows.cli import main
from xoev.exceptions import KositConfigError, XoevError
from xoev.findings import Report, Severity
from xoev.kosit import KositConfiguration

SCENARIOS_NS = "http://www.xoev.de/de/validator/framework/1/scenarios"
ASSERTIONS_NS = "http://www.xoev.de/de/validator/framework/1/assertions"


@pytest.fixture(scope="module")
def kosit_dir(shared_dir: Path) -> Path:
    path = shared_dir / "kosit"
    assert (path / "examples" / "simple" / "scenarios.xml").is_file(), f"{path} is incomplete"
    return path


@pytest.fixture(scope="module")
def simple(kosit_dir: Path) -> Path:
    return kosit_dir / "examples" / "simple"


@pytest.fixture(scope="module")
def config(simple: Path) -> KositConfiguration:
    return KositConfiguration.load(simple, repository=simple / "repository")


def _check(config: KositConfiguration, simple: Path, name: str) -> Report:
    return config.check((simple / "input" / name).read_bytes(), source=name)


def _rules(report: Report) -> list[str]:
    return [f.rule for f in report.findings]


# ---------------------------------------------------------------------------------------------
# the example configuration and each of its inputs

# input → (scenario, accepted, rules of the findings)
EXPECTED = {
    "simple.xml": ("Simple", True, []),
    # schema-invalid: XSD findings; Schematron is skipped (KoSIT), so no content-1
    "simple-schema-invalid.xml": ("Simple", False, ["xsd:SCHEMAV_ELEMENT_CONTENT"] * 2),
    # acceptMatch count(//test:rejected) = 0 decides, also over the failed assert (KoSIT)
    "simple-schematron-invalid.xml": ("Simple", True, ["content-1"]),
    "withManualReject.xml": ("Simple", False, ["kosit:rejected"]),
    "simple-not-wellformed.xml": (None, False, ["kosit:not-wellformed"]),
    "no-xml.file": (None, False, ["kosit:not-wellformed"]),
    "unknown.xml": (None, False, ["kosit:no-scenario"]),
    # NoAcceptMatch scenario: accepted iff no error-level Schematron finding
    "foo.xml": ("NoAcceptMatch", True, []),
    "foo-schematron-invalid.xml": ("NoAcceptMatch", False, ["content-2"]),
    "foo-custom-level-error.xml": ("NoAcceptMatch", False, ["content-2"]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_inputs(config: KositConfiguration, simple: Path, name: str) -> None:
    scenario, accepted, rules = EXPECTED[name]
    report = _check(config, simple, name)
    assert report.scenario == scenario
    assert report.accepted is accepted
    assert report.ok is accepted
    assert _rules(report) == rules
    assert all(f.severity is Severity.ERROR for f in report.findings)


def test_every_example_input_is_covered(simple: Path) -> None:
    assert sorted(p.name for p in (simple / "input").iterdir()) == sorted(EXPECTED)


def test_schematron_finding_carries_id_location_and_line(
    config: KositConfiguration, simple: Path
) -> None:
    (finding,) = _check(config, simple, "simple-schematron-invalid.xml").findings
    assert finding.rule == "content-1"
    assert finding.xpath == "/*:simple[namespace-uri()='http://validator.kosit.de/test-sample'][1]"
    assert finding.line == 19  # the root element's line in the input
    assert finding.message == "The element inner appears exactly once."


def test_not_wellformed_names_the_line(config: KositConfiguration, simple: Path) -> None:
    (finding,) = _check(config, simple, "simple-not-wellformed.xml").findings
    assert finding.line == 20
    assert "not well-formed" in finding.message


def test_no_scenario_names_the_root(config: KositConfiguration, simple: Path) -> None:
    (finding,) = _check(config, simple, "unknown.xml").findings
    assert "{http://validator.kosit.de/unbekannt}existiertNicht" in finding.message
    assert "no scenario matches" in finding.message


def test_assertions_xml_holds_for_the_report(
    kosit_dir: Path, config: KositConfiguration, simple: Path
) -> None:
    """KoSIT's assertions.xml (its yardstick for report documents) evaluated on the report
    amtsbote builds for a valid input."""
    assertions = etree.parse(str(simple / "assertions.xml"))
    ns = {
        el.get("prefix"): el.text.strip()
        for el in assertions.getroot().iterfind(f"{{{ASSERTIONS_NS}}}namespace")
    }
    tests = [a.get("test") for a in assertions.getroot().iterfind(f"{{{ASSERTIONS_NS}}}assertion")]
    assert tests
    _report, varl = config.check_with_report((simple / "input" / "simple.xml").read_bytes())
    assert varl is not None
    for test in tests:
        assert varl.xpath(f"boolean({test})", namespaces=ns) is True, test


def test_report_json_and_text(config: KositConfiguration, simple: Path) -> None:
    report = _check(config, simple, "withManualReject.xml")
    data = report.to_dict()
    assert data["scenario"] == "Simple" and data["accepted"] is False and data["valid"] is False
    assert "KoSIT scenario Simple: rejected" in report.to_text()
    plain = Report(source="x").to_dict()  # reports without KoSIT keep their shape
    assert "scenario" not in plain and "accepted" not in plain


# ---------------------------------------------------------------------------------------------
# the variants


def test_relative_paths_variant(simple: Path) -> None:
    config = KositConfiguration.load(simple / "scenarios-with-relative-paths.xml")
    assert config.file.repository == simple.resolve()
    assert _check(config, simple, "simple.xml").accepted is True
    assert _rules(_check(config, simple, "foo-schematron-invalid.xml")) == ["content-2"]


def test_other_scenarios_match_nothing(simple: Path) -> None:
    config = KositConfiguration.load(
        simple / "otherScenarios.xml", repository=simple / "repository"
    )
    for name in ("simple.xml", "foo.xml"):
        report = _check(config, simple, name)
        assert report.scenario is None and report.accepted is False
        assert _rules(report) == ["kosit:no-scenario"]


def test_scenarios_with_errors(simple: Path) -> None:
    """KoSIT's scenarios-with-errors.xml: a Schematron that calls error() for simple documents
    and a customLevel warning for content-2 in the foo scenario."""
    config = KositConfiguration.load(
        simple / "scenarios-with-errors.xml", repository=simple / "repository"
    )
    report = _check(config, simple, "simple.xml")
    assert _rules(report) == ["kosit:xslt-error"] and report.accepted is False
    assert "error()" in report.findings[0].message
    custom = _check(config, simple, "foo-custom-level-error.xml")
    assert [(f.rule, f.severity) for f in custom.findings] == [("content-2", Severity.WARNING)]
    assert custom.accepted is True  # acceptMatch holds; the lowered rule does not count
    assert _rules(_check(config, simple, "foo.xml")) == ["kosit:rejected"]


def test_xslt_runtime_error_is_a_finding(kosit_dir: Path) -> None:
    folder = kosit_dir / "examples" / "invalid" / "xslt-runtime-error"
    config = KositConfiguration.load(folder / "scenarios-with-xslt-runtime-error.xml")
    data = (folder / "input" / "simple-xslt-runtime-error.xml").read_bytes()
    report = config.check(data, source="rt.xml")
    assert report.scenario == "Simple" and report.accepted is False
    (finding,) = report.findings
    assert finding.rule == "kosit:xslt-error"
    assert "cast as" in finding.message
    assert config.check(data).accepted is False  # and the stylesheet stays usable


# ---------------------------------------------------------------------------------------------
# broken configurations: KositConfigError naming file and line


def _copy_config(simple: Path, tmp_path: Path, edit: tuple[str, str] | None = None) -> Path:
    text = (simple / "scenarios.xml").read_text(encoding="utf-8")
    if edit:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1], 1)
    path = tmp_path / "scenarios.xml"
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


@pytest.mark.parametrize(
    ("edit", "needle", "reason"),
    [
        (("<match>/test:simple</match>", ""), "<validateWithXmlSchema>", "scenario schema"),
        (("<match>/test:simple</match>", "<match>/test:simple[</match>"), "<match>", "XPath"),
        (("<match>/test:simple</match>", "<match>/nope:simple</match>"), "<match>", "XPath"),
        (
            ("<location>simple.xsd</location>", "<location>../../../etc/passwd</location>"),
            "etc/passwd",
            "leaves the repository",
        ),
        (
            ("<location>simple.xsd</location>", "<location>http://127.0.0.1/x.xsd</location>"),
            "x.xsd",
            "relative to the repository",
        ),
        (
            ("<location>simple.xsd</location>", "<location>missing.xsd</location>"),
            "missing.xsd",
            "not found",
        ),
        (("<date>2017-08-08</date>", "<date>8.8.2017</date>"), "<date>", "scenario schema"),
    ],
)
def test_broken_configuration(
    simple: Path, tmp_path: Path, edit: tuple[str, str], needle: str, reason: str
) -> None:
    path = _copy_config(simple, tmp_path, edit)
    with pytest.raises(KositConfigError) as info:
        KositConfiguration.load(path, repository=simple / "repository")
    error = info.value
    assert isinstance(error, XoevError)
    assert error.path == str(path)
    assert reason in error.reason
    # the first scenario's element, or (schema errors) where libxml2 noticed
    assert error.line == _line_of(path, needle)
    assert str(error).startswith(f"{path}:{error.line}: ")


def test_not_wellformed_configuration(tmp_path: Path) -> None:
    path = tmp_path / "scenarios.xml"
    path.write_text(f'<scenarios xmlns="{SCENARIOS_NS}">\n<name>x</name>\n', encoding="utf-8")
    with pytest.raises(KositConfigError, match=r"scenarios\.xml:3: not a readable"):
        KositConfiguration.load(tmp_path)


def test_default_repository_is_the_scenarios_folder(simple: Path) -> None:
    with pytest.raises(KositConfigError, match=r"'simple\.xsd' not found in the repository"):
        KositConfiguration.load(simple)  # scenarios.xml's locations are relative to repository/


# ---------------------------------------------------------------------------------------------
# hardening: no file reads, no URLs, no extension functions, no output files

_XSL = """<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:svrl="http://purl.oclc.org/dsdl/svrl" version="2.0">
  <xsl:template match="/">
    <svrl:schematron-output>
      <svrl:failed-assert id="leak" location="/">
        <svrl:text><xsl:value-of select="{expr}"/></svrl:text>
      </svrl:failed-assert>
    </svrl:schematron-output>
  </xsl:template>
</xsl:stylesheet>
"""


_RECORDER = """
import http.server, sys
log = open(sys.argv[1], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        log.write(self.path + "\\n")
        body = b"<secret>from the network</secret>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[tuple[int, Callable[[], list[str]]]]:
    """A real HTTP server on loopback that records every request. It runs in its own process:
    Saxon's native code holds the GIL while it transforms, an in-process server could not answer."""
    log = tmp_path / "requests.log"
    log.touch()
    proc = subprocess.Popen(
        [sys.executable, "-c", _RECORDER, str(log)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/alive", timeout=10) as answer:
            assert answer.status == 200
        assert log.read_text().splitlines() == ["/alive"]  # it records what reaches it
        yield port, lambda: [p for p in log.read_text().splitlines() if p != "/alive"]
    finally:
        proc.terminate()
        proc.wait(10)


def _hostile_config(simple: Path, tmp_path: Path, exprs: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "simple.xsd").write_bytes((simple / "repository" / "simple.xsd").read_bytes())
    steps = []
    for name, expr in exprs.items():
        (repo / f"{name}.xsl").write_text(_XSL.format(expr=expr), encoding="utf-8")
        steps.append(
            f"<validateWithSchematron><resource><name>{name}</name>"
            f"<location>{name}.xsl</location></resource></validateWithSchematron>"
        )
    (repo / "scenarios.xml").write_text(
        f"""<scenarios xmlns="{SCENARIOS_NS}" frameworkVersion="1.1.2">
  <name>hostile</name><date>2025-01-01</date><description><p>x</p></description>
  <scenario>
    <name>Hostile</name>
    <namespace prefix="test">http://validator.kosit.de/test-sample</namespace>
    <match>/test:simple</match>
    <validateWithXmlSchema><resource><name>xsd</name><location>simple.xsd</location>
    </resource></validateWithXmlSchema>
    {"".join(steps)}
  </scenario>
  <noScenarioReport><resource><name>r</name><location>simple.xsd</location></resource>
  </noScenarioReport>
</scenarios>
""",
        encoding="utf-8",
    )
    return repo


def test_stylesheets_cannot_read_files_or_urls(
    simple: Path, tmp_path: Path, recorder: tuple[int, Callable[[], list[str]]]
) -> None:
    port, hits = recorder
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT", encoding="utf-8")
    exprs = {
        "doc": "doc('file:///etc/passwd')",
        "unparsed": f"unparsed-text('{secret.as_uri()}')",
        "relative": "unparsed-text('simple.xsd')",
        "document": f"document('http://127.0.0.1:{port}/document')",
        "http": f"unparsed-text('http://127.0.0.1:{port}/text')",
        "httpdoc": f"doc('http://127.0.0.1:{port}/doc')",
    }
    config = KositConfiguration.load(_hostile_config(simple, tmp_path, exprs))
    report = config.check((simple / "input" / "simple.xml").read_bytes())
    assert _rules(report) == ["kosit:xslt-error"] * len(exprs)
    assert report.accepted is False
    text = report.to_text()
    assert "TOP-SECRET-CONTENT" not in text and "root:" not in text
    assert "from the network" not in text
    assert all("prohibited" in f.message for f in report.findings), text
    assert hits() == []  # the loopback server was never contacted


def test_availability_probes_see_nothing(
    simple: Path, tmp_path: Path, recorder: tuple[int, Callable[[], list[str]]]
) -> None:
    port, hits = recorder
    exprs = {
        "probe": f"string-join((string(doc-available('file:///etc/passwd')), "
        f"string(unparsed-text-available('http://127.0.0.1:{port}/p')), "
        "environment-variable('HOME')), ',')"
    }
    config = KositConfiguration.load(_hostile_config(simple, tmp_path, exprs))
    (finding,) = config.check((simple / "input" / "simple.xml").read_bytes()).findings
    assert finding.rule == "leak" and finding.message == "false,false,"  # no HOME
    assert hits() == []


_HEAD = '<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="2.0">'


@pytest.mark.parametrize(
    "stylesheet",
    [
        # writing a file
        _HEAD + '<xsl:template match="/"><xsl:result-document href="{out}"><x/>'
        "</xsl:result-document><r/></xsl:template></xsl:stylesheet>",
        # a reflexive (Java) extension function
        _HEAD + '<xsl:template match="/"><r><xsl:value-of '
        "select=\"Q{{java:java.lang.System}}getProperty('user.home')\"/></r></xsl:template>"
        "</xsl:stylesheet>",
        # another module from the file system (read at compile time)
        _HEAD + '<xsl:include href="{other}"/></xsl:stylesheet>',
    ],
)
def test_output_files_extensions_and_includes_do_not_compile(
    simple: Path, tmp_path: Path, stylesheet: str
) -> None:
    out = tmp_path / "written.xml"
    other = tmp_path / "other.xsl"
    other.write_text(_XSL.format(expr="2"), encoding="utf-8")
    repo = _hostile_config(simple, tmp_path, {"x": "1"})
    (repo / "x.xsl").write_text(
        stylesheet.format(out=out.as_uri(), other=other.as_uri()), encoding="utf-8"
    )
    with pytest.raises(KositConfigError, match="does not compile"):
        KositConfiguration.load(repo)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# compiled once


def test_stylesheets_and_schemas_compiled_once(
    simple: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[Path] = []
    real = configuration_module.compile_stylesheet

    def counting(path: Path, **kwargs: object) -> object:
        compiled.append(path)
        return real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(configuration_module, "compile_stylesheet", counting)
    config = KositConfiguration.load(simple, repository=simple / "repository")
    # both scenarios use simple.xsl and simple.xsd: one compilation each
    assert compiled == [(simple / "repository" / "simple.xsl").resolve()]
    assert list(config.schemas) == [(simple / "repository" / "simple.xsd").resolve()]
    (sheet,) = config.stylesheets.values()
    executable = sheet.executable
    for name in ("simple.xml", "foo.xml", "simple-schematron-invalid.xml", "foo.xml"):
        _check(config, simple, name)
    assert len(compiled) == 1
    assert sheet.runs == 4 and sheet.executable is executable
    assert config.stylesheets[sheet.path] is sheet


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_validate_kosit(
    simple: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["validate", "--kosit", str(simple), "--kosit-repository", str(simple / "repository")]
    inputs = simple / "input"
    assert main([*base, str(inputs / "simple.xml"), str(inputs / "foo.xml")]) == 0
    assert "KoSIT scenario Simple: accepted" in capsys.readouterr().out
    assert main([*base, str(inputs / "simple.xml"), str(inputs / "withManualReject.xml")]) == 1
    assert "kosit:rejected" in capsys.readouterr().out
    for name in ("unknown.xml", "no-xml.file", "simple-not-wellformed.xml"):
        assert main([*base, str(inputs / "withManualReject.xml"), str(inputs / name)]) == 2
        captured = capsys.readouterr()
        assert name in captured.err and "unusable input" in captured.err
    assert main([*base, str(tmp_path / "missing.xml")]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["validate", "--kosit", str(simple), str(inputs / "simple.xml")]) == 2
    assert "scenarios.xml:41" in capsys.readouterr().err
