"""Throughput of ``xoev.validate()`` against bare baselines, and the cost of refusing hostile XML.

::

    .venv/bin/python bench/validate.py [--n 2000] [--files 10000] [--schema-path DIR]...

For each sample message (the KoSIT XGewerbeanzeige 2.2 valid message from ../shared, and the
bundled xdomea 3.0.0 sample when the xdomea bundle is on the schema path) one run measures, on the
same bytes:

* ``amtsbote``  — ``xoev.validate()``: hardened parse, namespace detection, XSD, codelists, rules;
* ``lxml``      — bare ``etree.fromstring()`` + ``XMLSchema.validate()``: the limit;
* ``xmlschema`` — ``xmlschema.XMLSchema(...).is_valid()`` (fewer rounds, it is slow).

and prints messages/s and the ratios (targets: amtsbote ≥ 0.5 × lxml, ≥ 20 × xmlschema).

**The whole CLI** (issue 13, point 6): ``--files`` copies of the samples (in turn) are written to a
temporary folder and checked by ``amtsbote validate`` as a subprocess — interpreter start, imports,
schema loading, reports on stdout included — once with its default ``--jobs`` (the CPU cores) and
once with ``--jobs 1``; beside it, in this process, plain lxml over the same files: read, parse
(``etree.fromstring``), XSD (the schemas compiled once, inside the timing), run before and after
the CLI and the faster of the two taken. Printed: seconds,
files/s, and CLI / lxml as throughput ratios (target ≥ 0.5). Then the Schematron cost per message
of KoSIT's example configuration (``bench/kosit.py``).

Then each
hostile input is refused by ``xoev.parsing.parse_xml`` and the time (median) and memory
(Python-heap peak via tracemalloc, growth of the process's max RSS) are printed.

The schema path defaults to ``../shared/xoev/schemata`` beside the project (plus
``AMTSBOTE_SCHEMA_PATH``). What is missing (a sample, a bundle) is said, not hidden.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import xmlschema  # noqa: E402
from lxml import etree  # noqa: E402

from xoev import SchemaRegistry, validate  # noqa: E402
from xoev.exceptions import UnusableInputError  # noqa: E402
from xoev.namespaces import XDOMEA_3_0_0, XGEWERBEANZEIGE_2_2  # noqa: E402
from xoev.parsing import parse_xml  # noqa: E402

SHARED = ROOT.parent / "shared" / "xoev"


def _rate(fn: Callable[[], object], n: int) -> tuple[float, float]:
    gc.collect()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    elapsed = time.perf_counter() - start
    return elapsed, n / elapsed


def _throughput(name: str, data: bytes, registry: SchemaRegistry, n: int) -> None:
    tree = parse_xml(data)
    sv = registry.detect(tree)
    compiled = registry.schema(sv)  # compile outside the timing, like the baselines
    report = validate(data, registry=registry, source=name)
    if not report.ok:
        print(f"  {name}: sample is not valid, skipped\n{report.to_text()}")
        return
    schema_path = compiled.path

    lxml_schema = etree.XMLSchema(etree.parse(schema_path))

    def raw_lxml() -> None:
        if not lxml_schema.validate(etree.fromstring(data)):
            raise AssertionError("lxml says invalid")

    def amtsbote() -> None:
        validate(data, registry=registry)

    print(f"\n{name}  ({len(data)} bytes, {sv.standard} {sv.version}, schema {schema_path})")
    rows: list[tuple[str, int, float, float]] = []
    for label, fn, rounds in (("lxml", raw_lxml, n), ("amtsbote", amtsbote, n)):
        elapsed, rate = _rate(fn, rounds)
        rows.append((label, rounds, elapsed, rate))
    t0 = time.perf_counter()
    xs = xmlschema.XMLSchema(schema_path, allow="local")
    compile_s = time.perf_counter() - t0
    text = data.decode("utf-8")
    if not xs.is_valid(text):
        print("  xmlschema: says the sample is invalid (differs from libxml2); rate anyway")
    rounds = max(5, n // 40)
    elapsed, rate = _rate(lambda: xs.is_valid(text), rounds)
    rows.append(("xmlschema", rounds, elapsed, rate))
    print(f"  (xmlschema compile {compile_s * 1000:.0f} ms, not timed below)")
    rates = {label: rate for label, _r, _e, rate in rows}
    print(f"  {'impl':<10} {'n':>7} {'seconds':>9} {'msg/s':>10} {'µs/msg':>9}")
    for label, rounds, elapsed, rate in rows:
        print(f"  {label:<10} {rounds:>7} {elapsed:>9.3f} {rate:>10.0f} {1e6 / rate:>9.1f}")
    vs_lxml = rates["amtsbote"] / rates["lxml"]
    print(
        f"  amtsbote / lxml      = {vs_lxml:6.2f}  (target ≥ 0.5: "
        f"{'ok' if vs_lxml >= 0.5 else 'MISSED'})"
    )
    if "xmlschema" in rates:
        vs_xs = rates["amtsbote"] / rates["xmlschema"]
        print(
            f"  amtsbote / xmlschema = {vs_xs:6.1f}  (target ≥ 20: "
            f"{'ok' if vs_xs >= 20 else 'MISSED'})"
        )
    stages: list[tuple[str, Callable[[], object]]] = [
        ("parse_xml (hardened)", lambda: parse_xml(data)),
        ("XSD", lambda: compiled.validate(tree)),
        ("codelists", lambda: registry.codelists.check(tree, code_bindings=sv.code_bindings)),
    ]
    if sv.rules is not None:
        rules = sv.rules
        stages.append(("business rules", lambda: rules(tree)))
    parts = []
    for label, stage in stages:
        _elapsed, rate = _rate(stage, max(50, n // 4))
        parts.append(f"{label} {1e6 / rate:.1f}")
    print(f"  amtsbote stages µs/msg: {', '.join(parts)}")


def _cli_batch(samples: list[tuple[str, Path]], registry: SchemaRegistry, files: int) -> None:
    import os
    import subprocess
    import tempfile

    print(f"\nthe whole CLI over {files} files (samples in turn) against plain lxml, same files")
    with tempfile.TemporaryDirectory(prefix="amtsbote-bench-validate-") as tmp:
        names = []
        contents = [path.read_bytes() for _name, path in samples]
        for i in range(files):
            name = os.path.join(tmp, f"m{i:05d}.xml")
            Path(name).write_bytes(contents[i % len(contents)])
            names.append(name)
        schema_files = {}
        for data in contents:
            sv = registry.detect(parse_xml(data))
            schema_files[sv.namespace] = str(registry.schema(sv).path)
        os.sync()  # the files written: no writeback during the timing

        def plain_lxml() -> float:
            gc.collect()
            start = time.perf_counter()
            schemas = {ns: etree.XMLSchema(etree.parse(p)) for ns, p in schema_files.items()}
            for name in names:
                with open(name, "rb") as fh:
                    root = etree.fromstring(fh.read())
                if not schemas[etree.QName(root).namespace].validate(root):
                    raise AssertionError(f"{name}: lxml says invalid")
            return time.perf_counter() - start

        first = plain_lxml()
        rows = []
        schema_args = [a for p in registry.schema_path for a in ("--schema-path", str(p))]
        for label, jobs in (("amtsbote validate", []), ("  … --jobs 1", ["--jobs", "1"])):
            command = [sys.executable, "-m", "flows.cli", "validate", *jobs, *schema_args]
            start = time.perf_counter()
            done = subprocess.run(
                [*command, *names], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            elapsed = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"{label}: exit {done.returncode}: {done.stderr[-500:]!r}")
            rows.append((label, elapsed))
        base = min(first, plain_lxml())  # before and after the CLI runs: the faster one
        rows.insert(0, ("lxml, one process", base))
    print(f"  {'':<20} {'seconds':>8} {'files/s':>8} {'× lxml':>7}")
    for label, seconds in rows:
        print(f"  {label:<20} {seconds:>8.2f} {files / seconds:>8.0f} {base / seconds:>7.2f}")
    ratio = base / rows[1][1]
    print(
        f"  CLI / lxml = {ratio:.2f} (target ≥ 0.5: {'ok' if ratio >= 0.5 else 'MISSED'}; "
        f"{os.cpu_count()} CPU cores; the CLI also checks codelists and business rules)"
    )


def _hostile_inputs() -> list[tuple[str, bytes]]:
    lol = [b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n  <!ENTITY lol "lol">\n']
    for i in range(1, 10):
        prev = b"&lol;" if i == 1 else b"&lol%d;" % (i - 1)
        lol.append(b'  <!ENTITY lol%d "%s">\n' % (i, prev * 10))
    lol.append(b"]>\n<lolz>&lol9;</lolz>\n")
    return [
        (
            "XXE (external entity)",
            b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
            b"<r>&x;</r>",
        ),
        ("billion laughs", b"".join(lol)),
        (
            "external DTD",
            b'<?xml version="1.0"?>\n<!DOCTYPE r SYSTEM "http://example.invalid/r.dtd">\n<r/>',
        ),
        ("not XML (1 MiB binary)", bytes(range(256)) * 4096),
        (
            "wrong encoding (Latin-1 as UTF-8)",
            '<?xml version="1.0" encoding="UTF-8"?>\n<r>Größe</r>'.encode("latin-1") * 1,
        ),
        ("bogus encoding name", b'<?xml version="1.0" encoding="X-NOPE"?>\n<r/>'),
        ("oversize (11 MiB)", b"<r>" + b"x" * (11 * 1024 * 1024) + b"</r>"),
        ("too deep (100 000 levels)", b"<a>" * 100_000 + b"</a>" * 100_000),
    ]


def _hostile(rounds: int) -> None:
    print(f"\nrefusing hostile input (parse_xml, median of {rounds})")
    print(f"  {'input':<36} {'exception':<24} {'median ms':>9} {'py peak KiB':>11} {'RSS +KiB':>8}")
    for label, data in _hostile_inputs():
        times = []
        name = "ACCEPTED (!)"
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        for _ in range(rounds):
            start = time.perf_counter()
            try:
                parse_xml(data, source=label)
            except UnusableInputError as exc:
                name = type(exc).__name__
            times.append(time.perf_counter() - start)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
        print(
            f"  {label:<36} {name:<24} {statistics.median(times) * 1000:>9.3f} "
            f"{peak / 1024:>11.1f} {rss_growth:>8}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="validations per implementation")
    parser.add_argument("--files", type=int, default=10_000, help="files for the CLI run (0: none)")
    parser.add_argument("--hostile-rounds", type=int, default=20)
    parser.add_argument("--schema-path", action="append", default=[], metavar="DIR")
    args = parser.parse_args(argv)

    schema_path = list(args.schema_path)
    if not schema_path and (SHARED / "schemata").is_dir():
        schema_path.append(str(SHARED / "schemata"))
    registry = SchemaRegistry(schema_path)
    print(f"schema path: {', '.join(str(p) for p in registry.schema_path) or '(empty)'}")
    for problem in registry.problems:
        print(f"note: {problem}")

    samples: list[tuple[str, Path]] = []
    missing: list[str] = []
    kosit = SHARED / "beispiele" / "xgewerbeanzeige-2.2" / "xgwa2.2-valid.xml"
    sv = registry.get(XGEWERBEANZEIGE_2_2)
    if sv is None:
        missing.append("XGewerbeanzeige 2.2 is not known to the registry (xoev.xgewerbeanzeige)")
    elif sv.schema is None:
        missing.append("XGewerbeanzeige 2.2 has no schema bundle")
    elif not kosit.is_file():
        missing.append(f"KoSIT sample {kosit} not found")
    else:
        samples.append(("KoSIT xgwa2.2-valid.xml", kosit))
    from xoev.xdomea import SAMPLES

    sv = registry.get(XDOMEA_3_0_0)
    if sv is None or sv.schema is None:
        missing.append("xdomea 3.0.0 bundle (xdomea.xsd) not on the schema path (--schema-path)")
    else:
        samples.append(("xdomea information-0101.xml", SAMPLES / "information-0101.xml"))
    for what in missing:
        print(f"skipped: {what}")

    for name, path in samples:
        _throughput(name, path.read_bytes(), registry, args.n)
    if not samples:
        print("no sample could be validated: throughput not measured")
    elif args.files:
        _cli_batch(samples, registry, args.files)
        import kosit  # bench/kosit.py: the Schematron cost per message

        print()
        kosit.main(["--n", str(max(50, args.n // 4))])
    _hostile(args.hostile_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
