"""A measured workaround for Prefect 3.8 behaviour that costs every flow run time.

**One TLS context for Prefect's API clients.** Prefect creates a new ``PrefectClient`` or
``SyncPrefectClient`` for many small jobs inside a flow run: each global-concurrency slot
(``concurrency()`` in ``send_delivery``) starts a lease-renewal thread with its own client, the
slot-acquisition service has one, events and results have theirs. Every client builds a fresh
``ssl.create_default_context(cafile=certifi.where())`` — parsing the whole CA bundle, ~20 ms of
CPU — even when the API is plain ``http://`` on loopback. Profiled on a process worker
(``py-spy record --subprocesses`` on ``bench/cluster.py``'s workers), that was half of the CPU a
flow-run process spent after its imports.

:func:`share_api_tls_context` makes ``prefect.client.orchestration`` create that verified context
once per CA file and process and hand the same context to every client. The context is not
changed afterwards by Prefect or httpx (httpcore sets the same ALPN list on it for every
connection: HTTP/2 is one setting, ``PREFECT_API_ENABLE_HTTP2``, for all clients). Verification
is unchanged: same CA file, ``CERT_REQUIRED``, hostname check. Only calls with ``cafile`` are
shared; the insecure path (``PREFECT_API_TLS_INSECURE_SKIP_VERIFY``), which modifies the
context it gets, still gets a new one each time.

Applied by :mod:`flows.runtime` on import (every flow-run process imports it). The pin
``prefect>=3.8,<3.9`` in ``pyproject.toml`` keeps the patched module the one tested
(``tests/test_prefect_patches.py``).
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

__all__ = ["share_api_tls_context"]

_lock = threading.Lock()
_contexts: dict[str, ssl.SSLContext] = {}


class _SharedContextSsl:
    """Stands in for the ``ssl`` module inside ``prefect.client.orchestration``: everything is the
    real module's, except that ``create_default_context(cafile=F)`` returns one context per F."""

    def __getattr__(self, name: str) -> Any:
        return getattr(ssl, name)

    @staticmethod
    def create_default_context(
        purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
        *,
        cafile: str | None = None,
        capath: str | None = None,
        cadata: str | bytes | None = None,
    ) -> ssl.SSLContext:
        if (
            cafile is None
            or capath is not None
            or cadata is not None
            or (purpose is not ssl.Purpose.SERVER_AUTH)
        ):
            return ssl.create_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)
        with _lock:
            context = _contexts.get(cafile)
            if context is None:
                context = _contexts[cafile] = ssl.create_default_context(cafile=cafile)
            return context


def share_api_tls_context() -> bool:
    """Apply the patch (idempotent). Returns False when Prefect's module no longer looks as
    expected (no module-level ``ssl``): then nothing is changed."""
    import prefect.client.orchestration as orchestration

    current = getattr(orchestration, "ssl", None)
    if isinstance(current, _SharedContextSsl):
        return True
    if current is not ssl:
        return False
    orchestration.ssl = _SharedContextSsl()  # type: ignore[assignment]
    return True
