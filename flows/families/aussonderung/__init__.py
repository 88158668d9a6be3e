"""The Aussonderung family: closed e-files of the Stadt Paderborn offered to and handed over to the
Landesarchiv NRW, Abteilung Ostwestfalen-Lippe (xdomea 3.0.0 / 3.1.0, AussonderungDurchfuehren).

``family.py`` declares it, ``facts.py`` holds what routing sees, ``build.py`` builds the xdomea
messages from the case (data-minimised: the 0503 carries only the records appraised
archivwürdig), ``export.py`` reads the DMS's export folder, ``procedures.py`` holds the flows
(four-stage ``aussonderung``, two-stage ``aussonderung-zweistufig``), ``archive_stub.py`` the
simulated Landesarchiv of demo and tests.
"""

from __future__ import annotations

__all__: list[str] = []
