"""Where files go in a transfer area, what a file's name means, and the transfer exceptions.

The layout follows x-man (the Landesarchiv Thüringen's xdomea Aussonderungsmanager), the archive
software on the other side; see :mod:`connectors.transfer` for the whole picture. In short:

* one transfer area per partner (x-man: one "Transferverzeichnis" per abgebende Stelle);
* amtsbote writes what the partner receives into the **root** (x-man reads only the root, flat);
* the partner writes into the root, or into a folder per message type when x-man is configured
  so (its ``Path0502`` … ``Path0507`` settings); amtsbote reads the root and one folder per
  receivable type, named by default after the Nachrichtenname
  (``Aussonderung.Bewertungsverzeichnis.0502/`` …);
* the root is shared by both directions: a file's direction is its message type. In the root,
  amtsbote reads only the types it receives (:attr:`TransferLayout.receive_types`) and leaves the
  types it sends (and ``<uuid>.xml``) alone;
* names starting with ``.`` are never read: uploads in progress (``.<name>.<random>.part``) and
  the folders ``.done/`` (processed) and ``.rejected/`` (refused, with ``<name>.reason.txt``).

Exceptions (both below :class:`connectors.exceptions.ConnectorError`)::

    ConnectorError
    ├── Refused (also ValueError)   raised by an accept callback: the file is refused for good,
    │                               the poller moves it to .rejected/ with the reason
    └── TransferError               a transfer area cannot be listed, read or written;
                                    .url .status_code .transient (senders translate it into
                                    Transient-/PermanentSendError)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from xoev.container import parse_container_name
from xoev.exceptions import ContainerNameError
from xoev.xdomea.v3_0_0 import MESSAGE_TYPES

from ..exceptions import ConnectorError

__all__ = [
    "ARCHIVE_TYPES",
    "DONE",
    "REASON_SUFFIX",
    "REJECTED",
    "Disposition",
    "Refused",
    "TransferError",
    "TransferLayout",
    "check_file_name",
]

#: What an archive (x-man) sends to the abgebende Stelle: the types amtsbote receives.
ARCHIVE_TYPES = frozenset({"0502", "0504", "0506", "0507", "0512", "0514", "0515"})
DONE = ".done"
REJECTED = ".rejected"
REASON_SUFFIX = ".reason.txt"
_ROOTS = {mt.code: mt.root for mt in MESSAGE_TYPES}
_UUID_XML = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\.xml")


class Refused(ConnectorError, ValueError):
    """An accept callback refuses a file for good (bad content, wrong sender, …)."""


class TransferError(ConnectorError):
    """A transfer area failed. ``transient`` says whether trying again later may help."""

    def __init__(
        self,
        reason: str,
        *,
        url: str | None = None,
        status_code: int | None = None,
        transient: bool = False,
    ) -> None:
        self.reason, self.url, self.status_code, self.transient = (
            reason,
            url,
            status_code,
            transient,
        )
        super().__init__(reason)

    def __str__(self) -> str:
        kind = "transient" if self.transient else "permanent"
        parts = [f"transfer area {self.url or '?'} failed ({kind})"]
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        return ", ".join(parts) + f": {self.reason}"


class Disposition(StrEnum):
    RECEIVE = "receive"
    """A file for amtsbote: hand it to the accept callback."""
    IGNORE = "ignore"
    """In progress, hidden, a folder, or a file amtsbote wrote for the partner."""
    REJECT = "reject"
    """Not a message of the layout: move to ``.rejected/`` without calling back."""


def check_file_name(name: str) -> str | None:
    """Why ``name`` cannot be a file of the transfer area (None when it can)."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        return f"{name!r} is not a plain file name"
    if name.startswith("."):
        return f"{name!r} starts with '.', which marks files in progress"
    if any(ord(c) < 32 for c in name):
        return f"{name!r} has control characters"
    return None


@dataclass(frozen=True, slots=True)
class TransferLayout:
    """Folder names of one transfer area (relative to its root, ``""`` = the root itself)."""

    send_folder: str = ""
    """Where amtsbote writes (x-man reads only the root)."""
    receive_types: frozenset[str] = ARCHIVE_TYPES
    """Type codes amtsbote reads; in the shared root the other types are the partner's to read."""
    type_folders: Mapping[str, str] = field(default_factory=dict)
    """Type code → folder the partner writes that type into; default: the Nachrichtenname."""
    done: str | None = DONE
    """Processed files are moved here (None: deleted, which x-man tolerates too)."""
    rejected: str = REJECTED

    def folder_for(self, type_code: str) -> str:
        return self.type_folders.get(type_code) or _ROOTS.get(type_code, type_code)

    def receive_folders(self) -> tuple[str, ...]:
        """The root and each receivable type's folder, without duplicates, in a stable order."""
        folders = [""] + [self.folder_for(code) for code in sorted(self.receive_types)]
        return tuple(dict.fromkeys(folders))

    def disposition(self, folder: str, name: str) -> tuple[Disposition, str]:
        """What to do with file ``name`` found in ``folder``, and why."""
        if name.startswith(".") or not name:
            return Disposition.IGNORE, "hidden or in progress"
        if why := check_file_name(name):
            return Disposition.REJECT, why
        try:
            _, _, code = parse_container_name(name)
        except ContainerNameError as exc:
            if folder == self.send_folder and _UUID_XML.fullmatch(name):
                return Disposition.IGNORE, "a non-xdomea message amtsbote wrote for the partner"
            return Disposition.REJECT, str(exc)
        if code in self.receive_types:
            if folder in ("", self.folder_for(code)):
                return Disposition.RECEIVE, f"type {code}"
            return Disposition.REJECT, f"type {code} does not belong in folder {folder!r}"
        if folder == self.send_folder:
            return Disposition.IGNORE, f"type {code} is amtsbote's, for the partner to read"
        return Disposition.REJECT, f"type {code} is not received from the partner"
