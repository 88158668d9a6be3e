"""Cost of the sealed journal per append: N ``log_event`` calls and N ``record_inbound`` calls
on a fresh SQLite file (and PostgreSQL with ``--pg URL``), printed as µs per call.

Run it from a checkout before and after the seal to compare::

    .venv/bin/python bench/seal_overhead.py [-n 2000] [--pg postgresql+psycopg://…/db]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from connectors.journal import Journal, MessageMeta


def _meta() -> MessageMeta:
    return MessageMeta(
        nachrichten_uuid=str(uuid.uuid4()),
        standard="XGewerbeanzeige",
        version="2.2",
        message_type="0500",
        author="MELDID:12052000",
        reader="azr:000100",
        created_at=datetime(2026, 3, 1, tzinfo=UTC),
    )


def run(url: str, n: int) -> dict[str, float]:
    out = {}
    with Journal(url, create=True) as j:
        for _ in range(20):  # warm up
            j.log_event("bench.warm", actor="bench")
        t = time.perf_counter()
        for i in range(n):
            j.log_event("bench.note", actor="bench", detail={"i": i})
        out["log_event"] = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        for i in range(n):
            j.record_inbound(f"<m>{i}</m>".encode(), _meta(), sender_agency="MELDID:12052000")
        out["record_inbound"] = (time.perf_counter() - t) / n * 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--pg", help="URL of an empty PostgreSQL database/schema")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = run(f"sqlite:///{Path(tmp) / 'j.sqlite'}", args.n)
    print("sqlite     " + "  ".join(f"{k} {v:8.1f} µs" for k, v in sqlite.items()))
    if args.pg:
        pg = run(args.pg, args.n)
        print("postgresql " + "  ".join(f"{k} {v:8.1f} µs" for k, v in pg.items()))


if __name__ == "__main__":
    main()
