"""Small helpers shared by the CLI modules (not a command: the leading underscore hides it)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

__all__ = ["error", "prefect_api_missing", "print_json", "table"]


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(h) for h in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return str(value)


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=_default))


def error(command: str, message: str) -> None:
    print(f"amtsbote {command}: {message}", file=sys.stderr)


EXPORT_HINT = "export PREFECT_API_URL=http://127.0.0.1:4200/api"


def prefect_api_missing() -> str | None:
    """Why this process has no Prefect server to talk to, or ``None`` when it has one.

    Without ``PREFECT_API_URL`` (in the environment or the active Prefect profile) Prefect starts
    a temporary server of its own for the process and forgets it on exit: a limit synced there,
    an approval resumed there or a redeliver run there would report success and change nothing
    an operator can see. Commands that talk to Prefect refuse instead (``needs_prefect``)."""
    import os

    if os.environ.get("PREFECT_API_URL", "").strip():
        return None
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return None
    return (
        "PREFECT_API_URL is not set: Prefect would start a temporary server for this command "
        "alone and forget everything when it exits. Point it at the installation's server — "
        f"`amtsbote serve` prints the line, e.g. `{EXPORT_HINT}`"
    )
