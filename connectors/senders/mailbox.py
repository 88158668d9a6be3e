"""Pull delivery (XTA-2 style): deposit into the recipient's mailbox on its host's inbox.

A mailbox agency runs no inbox service of its own. Its directory entry names ``mailbox_host``, an
http agency whose inbox service keeps mailboxes; the message is POSTed to the HOST's
``/v1/messages`` exactly like a push, with ``X-Empfaenger`` naming the mailbox agency, and the
sending agency's bearer token. The host answers with a receipt whose ``state`` tells that the
message waits in the mailbox (e.g. ``delivered``) until the agency fetches it. Limits
(``rate_limit``, ``concurrency``) are those of the mailbox agency.
"""

from __future__ import annotations

from typing import Any

from ..directory import Agency, Channel, Directory, DirectoryError
from .exceptions import SenderConfigError
from .http import HttpSender

__all__ = ["MailboxSender"]


class MailboxSender(HttpSender):
    """Deposits messages for the mailbox agency ``recipient`` on its host's inbox."""

    def __init__(self, recipient: Agency, directory: Directory, **options: Any) -> None:
        if recipient.channel != Channel.MAILBOX or not recipient.mailbox_host:
            raise SenderConfigError(recipient.id, "channel", "not a mailbox agency")
        try:
            host = directory.get(recipient.mailbox_host)
        except DirectoryError as exc:
            raise SenderConfigError(recipient.id, "mailbox_host", str(exc)) from exc
        if not host.endpoint:
            raise SenderConfigError(
                recipient.id, "mailbox_host", f"host {host.id!r} has no endpoint"
            )
        self.host = host
        super().__init__(recipient, directory, endpoint=host.endpoint, **options)

    @property
    def tls_peer(self) -> Agency:
        """The mailbox host: the TLS connection goes to its inbox."""
        return self.host

    def __repr__(self) -> str:
        return f"MailboxSender({self.recipient.id} in mailbox on {self.host.id} via {self.url})"
