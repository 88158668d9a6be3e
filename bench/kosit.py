"""Cost of a KoSIT configuration check per message: Schematron beside XSD only.

Runs KoSIT's own example configuration (``../shared/kosit/examples/simple``) on its valid input
``simple.xml`` N times and prints, from the same run, the milliseconds per message of

* the whole check (:meth:`xoev.kosit.KositConfiguration.check`: parse, scenario, XSD, Schematron),
* the XSD step alone (the compiled lxml schema on the parsed tree),
* the Schematron step alone (the compiled stylesheet, hardened Saxon HE, plus reading the SVRL).

Compilation happens once, before the timing. Figures only, no assertions::

    .venv/bin/python bench/kosit.py [--n 500]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lxml import etree  # noqa: E402

from xoev.kosit import KositConfiguration  # noqa: E402
from xoev.kosit.svrl import findings_from_svrl  # noqa: E402
from xoev.parsing import parse_xml  # noqa: E402

SIMPLE = ROOT.parent / "shared" / "kosit" / "examples" / "simple"


def _ms_per_call(fn: Callable[[], object], n: int) -> float:
    fn()  # warm-up
    gc.collect()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) * 1000 / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500, help="messages per figure")
    parser.add_argument("--config", type=Path, default=SIMPLE, help="KoSIT example folder")
    args = parser.parse_args(argv)
    if not (args.config / "scenarios.xml").is_file():
        print(f"skipped: KoSIT example configuration not found at {args.config}")
        return 0
    t0 = time.perf_counter()
    config = KositConfiguration.load(args.config, repository=args.config / "repository")
    load_ms = (time.perf_counter() - t0) * 1000
    data = (args.config / "input" / "simple.xml").read_bytes()
    tree = parse_xml(data)
    text = etree.tostring(tree, encoding="unicode")
    (schema,) = config.schemas.values()
    (sheet,) = config.stylesheets.values()
    report = config.check(data)
    print(f"KoSIT configuration {args.config} (load + compile {load_ms:.0f} ms, once)")
    print(f"input simple.xml, {len(data)} bytes: {report.to_text().splitlines()[0]}")
    rows = [
        ("whole check", _ms_per_call(lambda: config.check(data), args.n)),
        ("XSD only", _ms_per_call(lambda: schema.findings(tree), args.n)),
        (
            "Schematron only",
            _ms_per_call(
                lambda: findings_from_svrl(sheet.transform(text), custom_levels={}, tree=tree),
                args.n,
            ),
        ),
    ]
    print(f"  {'step':<16} {'n':>6} {'ms/msg':>9}")
    for label, ms in rows:
        print(f"  {label:<16} {args.n:>6} {ms:>9.3f}")
    print(f"  Schematron / XSD = {rows[2][1] / rows[1][1]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
