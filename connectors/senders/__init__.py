"""Delivering messages to agencies, behind one interface.

:func:`sender_for` picks the sender for a recipient's channel (see :mod:`connectors.directory`):

=========  =======================  =====================================================
channel    sender                   delivery
=========  =======================  =====================================================
http       :class:`HttpSender`      POST to the recipient's inbox ``/v1/messages``
mailbox    :class:`MailboxSender`   POST to the mailbox host's inbox, ``X-Empfaenger``
file       :class:`FileDropSender`  ``<uuid>.xml`` written atomically into ``drop_dir``
=========  =======================  =====================================================

============  ==========================  ==================================================
channel       sender                      delivery (x-man layout, :mod:`connectors.transfer`)
============  ==========================  ==================================================
transfer-dir  :class:`TransferDirSender`  xdomea container into the root of ``transfer_dir``
webdav        :class:`WebDavSender`       the same on a WebDAV share: PUT ``.part``, MOVE
xta           :class:`XtaSender`          XTA 2 sendMessage + getTransportReport (``xta_url``)
============  ==========================  ==================================================

Each has ``send(message) -> Receipt`` and ``async asend(message) -> Receipt`` and raises
:class:`SendError` (:class:`TransientSendError` / :class:`PermanentSendError`); use
:func:`is_transient` or :func:`retry_condition` for Prefect retries. Create one sender per
recipient and reuse it (it pools connections); close it with ``close()``/``aclose()``.
"""

from __future__ import annotations

import httpx

from ..directory import Agency, Channel, Directory
from .base import (
    MESSAGES_PATH,
    OutgoingMessage,
    RateLimiter,
    Receipt,
    Sender,
    SenderConfig,
    parse_retry_after,
)
from .exceptions import (
    PermanentSendError,
    SenderConfigError,
    SendError,
    TransientSendError,
    is_transient,
    retry_condition,
)
from .filedrop import FileDropSender
from .http import RECIPIENT_HEADER, UUID_HEADER, HttpSender
from .mailbox import MailboxSender
from .transfer import TransferDirSender
from .webdav import WebDavSender
from .xta import XtaSender

__all__ = [
    "MESSAGES_PATH",
    "RECIPIENT_HEADER",
    "UUID_HEADER",
    "FileDropSender",
    "HttpSender",
    "MailboxSender",
    "OutgoingMessage",
    "PermanentSendError",
    "RateLimiter",
    "Receipt",
    "SendError",
    "Sender",
    "SenderConfig",
    "SenderConfigError",
    "TransferDirSender",
    "TransientSendError",
    "WebDavSender",
    "XtaSender",
    "is_transient",
    "parse_retry_after",
    "retry_condition",
    "sender_for",
]


def sender_for(
    agency: Agency | str,
    directory: Directory,
    *,
    client: httpx.Client | None = None,
    async_client: httpx.AsyncClient | None = None,
    config: SenderConfig | None = None,
) -> Sender:
    """The sender delivering to ``agency`` (an :class:`Agency` or its id) per its channel.
    ``client``/``async_client`` are used instead of owned pooled clients (not closed by the
    sender); file drop and transfer directories ignore them."""
    recipient = directory.get(agency) if isinstance(agency, str) else agency
    if recipient.channel == Channel.HTTP:
        return HttpSender(
            recipient, directory, client=client, async_client=async_client, config=config
        )
    if recipient.channel == Channel.MAILBOX:
        return MailboxSender(
            recipient, directory, client=client, async_client=async_client, config=config
        )
    if recipient.channel == Channel.TRANSFER_DIR:
        return TransferDirSender(recipient, directory, config=config)
    if recipient.channel == Channel.XTA:
        return XtaSender(recipient, directory, client=client, config=config)
    if recipient.channel == Channel.WEBDAV:
        return WebDavSender(
            recipient,
            directory,
            client=client,
            async_client=async_client,
            config=config,
            environ=directory._env(),
        )
    return FileDropSender(recipient, directory, config=config)
