"""Time and peak memory of ``amtsbote report`` at 10 000 and 100 000 cases, SQLite and PostgreSQL,
beside a bare baseline in the same run.

::

    .venv/bin/python bench/report.py [--sizes 10000,100000] [--backends sqlite,postgresql]
        [--workdir var/bench] [--pg-admin postgresql://postgres@127.0.0.1:5432/postgres]
        [--repeat 3]

For each backend and size the journal is filled by ``bench/generate.py`` (SQLite files in
``--workdir`` are reused when they hold the right number of cases; PostgreSQL gets a fresh
database ``amtsbote_bench_<n>_<hex>`` that is dropped afterwards). Then, each in a fresh process
started by a small wrapper that reads ``resource.getrusage(RUSAGE_CHILDREN)`` (so every figure
is that one process's own peak RSS), ``--repeat`` times:

* ``baseline``  — ``pandas.read_sql("SELECT * FROM cases", engine)``: Python, pandas and
  SQLAlchemy start-up plus one plain read of the cases table — the floor of any report;
* ``report``    — ``amtsbote report --format table`` (all tables, no plots);
* ``report+html`` — ``amtsbote report --format html --plots DIR`` (tables, four PNG plots
  embedded and written).

Printed: median wall time, CPU time, peak RSS, and wall time and RSS as ratios to the
baseline, plus the machine's load average (wall times on a busy machine are not comparable).
Targets at 100 000 cases: < 5 s and < 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.generate import GeneratorOptions, generate  # noqa: E402

WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": done.returncode, "wall": wall, "maxrss_kb": usage.ru_maxrss,
                  "cpu": usage.ru_utime + usage.ru_stime,
                  "stderr": done.stderr.decode(errors="replace")[-500:]}))
"""

BASELINE = """
import sys
import pandas as pd
from sqlalchemy import create_engine
engine = create_engine(sys.argv[1])
frame = pd.read_sql("SELECT * FROM cases", engine)
print(len(frame))
"""

CLI = "import sys; from flows.cli import main; sys.exit(main())"


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd], capture_output=True, env=env, check=True, cwd=ROOT
    )
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"{cmd[3:]} failed ({result['rc']}): {result['stderr']}")
    return {"wall": result["wall"], "cpu": result["cpu"], "rss_mb": result["maxrss_kb"] / 1024}


def count_cases(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM cases")).scalar() or 0)
    except Exception:
        return -1
    finally:
        engine.dispose()


def run_size(
    backend: str, url: str, cases: int, repeat: int, env: dict[str, str], rows: list[list[str]]
) -> None:
    env = dict(env, AMTSBOTE_DATABASE_URL=url)
    env.pop("PREFECT_API_URL", None)
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "baseline": [sys.executable, "-c", BASELINE, url],
            "report": [sys.executable, "-c", CLI, "report", "--no-prefect", "--format", "table"],
            "report+html": [
                sys.executable,
                "-c",
                CLI,
                "report",
                "--no-prefect",
                "--format",
                "html",
                "--out",
                f"{tmp}/r.html",
                "--plots",
                f"{tmp}/plots",
            ],
        }
        figures: dict[str, dict[str, float]] = {}
        for name, cmd in commands.items():
            runs = [measure(cmd, env) for _ in range(repeat)]
            figures[name] = {
                "wall": statistics.median(r["wall"] for r in runs),
                "cpu": statistics.median(r["cpu"] for r in runs),
                "rss_mb": max(r["rss_mb"] for r in runs),
            }
    base = figures["baseline"]
    for name, f in figures.items():
        rows.append(
            [
                backend,
                f"{cases:,}",
                name,
                f"{f['wall']:.2f}",
                f"{f['cpu']:.2f}",
                f"{f['rss_mb']:.0f}",
                f"{f['wall'] / base['wall']:.2f}",
                f"{f['rss_mb'] / base['rss_mb']:.2f}",
            ]
        )
        print(
            f"  {backend} {cases:>7,} {name:<12} {f['wall']:6.2f} s (cpu {f['cpu']:.2f} s) "
            f"{f['rss_mb']:6.0f} MB",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument(
        "--pg-admin",
        default=os.environ.get(
            "AMTSBOTE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    env = dict(
        os.environ,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    rows: list[list[str]] = []
    for backend in backends:
        for n in sizes:
            if backend == "sqlite":
                args.workdir.mkdir(parents=True, exist_ok=True)
                url = f"sqlite:///{args.workdir / f'journal-{n}.sqlite'}"
                if count_cases(url) != n:
                    for suffix in ("", "-wal", "-shm"):
                        (args.workdir / f"journal-{n}.sqlite{suffix}").unlink(missing_ok=True)
                    _generate(url, n, args.seed)
                else:
                    print(f"reusing {url} ({n:,} cases)", flush=True)
                run_size(backend, url, n, args.repeat, env, rows)
            elif backend == "postgresql":
                import psycopg

                name = f"amtsbote_bench_{n}_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(args.pg_admin, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                base = args.pg_admin.rsplit("/", 1)[0]
                url = f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
                try:
                    _generate(url, n, args.seed)
                    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
                        conn.execute("VACUUM ANALYZE")
                    run_size(backend, url, n, args.repeat, env, rows)
                finally:
                    with psycopg.connect(args.pg_admin, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            else:
                parser.error(f"unknown backend {backend!r}")
    header = ["backend", "cases", "what", "wall s", "cpu s", "peak RSS MB", "× wall", "× RSS"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(
        "\n× = ratio to the baseline of the same backend and size "
        "(pandas.read_sql of the cases table in a fresh process); cpu = user + system time "
        "of the measured process (the client side; PostgreSQL's server time is not in it)"
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


def _generate(url: str, n: int, seed: int) -> None:
    started = time.perf_counter()
    stats = generate(url, GeneratorOptions(cases=n, seed=seed))
    print(
        f"generated {stats.cases:,} cases, {stats.messages:,} messages, "
        f"{stats.deliveries:,} deliveries, {stats.events:,} events in "
        f"{time.perf_counter() - started:.0f} s ({url.split('://')[0]})",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
