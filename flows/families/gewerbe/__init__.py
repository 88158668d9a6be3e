"""The Gewerbe family: Gewerbeanzeigen (XGewerbeanzeige 2.2) of the Stadt Paderborn passed on to
the agencies of the OWL region; consultations answered by Rückmeldung (amt.rueckmeldung.0900).

``family.py`` declares it (:data:`~flows.families.gewerbe.family.FAMILY`), ``facts.py`` holds the
facts routing sees, ``procedures.py`` the three flows.
"""

from __future__ import annotations

__all__: list[str] = []
