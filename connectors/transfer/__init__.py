"""Transfer areas shared with xdomea Aussonderung partners (archives running x-man).

x-man (Landesarchiv Thüringen's xdomea Aussonderungsmanager) exchanges xdomea containers
``{ProzessID}_{Nachrichtenname}.zip`` (:mod:`xoev.container`) through one "Transferverzeichnis"
per abgebende Stelle, on the file system or as a WebDAV share. It reads only the directory's
root, writes its own messages into the root or, if configured, into a folder per message type,
and tracks what it has read in its database (it deletes the files itself after archiving).
amtsbote follows that layout (directory channels ``transfer-dir`` and ``webdav``)::

    <root>/                                        the partner's transfer area
      <ProzessID>_Aussonderung.Anbieteverzeichnis.0501.zip   written by amtsbote (0501/0503/0505,
                                                   any type amtsbote sends): x-man reads the root
      <uuid>.xml                                   a non-xdomea message written by amtsbote
      .<name>.<random>.part                        an upload in progress (never read)
      <ProzessID>_Aussonderung.Bewertungsverzeichnis.0502.zip  written by the archive into the root
      Aussonderung.Bewertungsverzeichnis.0502/…    … or into a folder per type (x-man's Path0502…;
                                                   folder names: TransferLayout.type_folders)
      .done/<name>                                 read and accepted by amtsbote
      .rejected/<name>, .rejected/<name>.reason.txt  refused by amtsbote, with the reason

Writers publish atomically so a reader never sees half a file: on disk a hidden ``.….part``
then ``os.link`` (never replaces); on WebDAV ``PUT`` to ``.<name>.<random>.part`` then ``MOVE``
with ``Overwrite: F``. Senders: :class:`connectors.senders.TransferDirSender`,
:class:`connectors.senders.WebDavSender`; pollers: :class:`TransferDirPoller`,
:class:`WebDavPoller`. docs/transfer.md has the details.
"""

from __future__ import annotations

from .dav import DavClient, DavEntry
from .layout import (
    ARCHIVE_TYPES,
    Disposition,
    Refused,
    TransferError,
    TransferLayout,
    check_file_name,
)
from .poller import AcceptFn, PollResult, TransferDirPoller, WebDavPoller, refusal

__all__ = [
    "ARCHIVE_TYPES",
    "AcceptFn",
    "DavClient",
    "DavEntry",
    "Disposition",
    "PollResult",
    "Refused",
    "TransferDirPoller",
    "TransferError",
    "TransferLayout",
    "WebDavPoller",
    "check_file_name",
    "refusal",
]
