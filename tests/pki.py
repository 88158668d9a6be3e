"""The tests' throw-away PKI: :mod:`connectors.throwaway_pki` (shared with ``bench/xta.py``)."""

from __future__ import annotations

from connectors.throwaway_pki import Issued, Pki

__all__ = ["Issued", "Pki"]
