"""The inbox API's request and response models (pydantic), used as the routes'
``response_model`` (:mod:`.routes`): FastAPI validates every answer against them, serialises it
(by alias: ``from``) and describes it in ``/openapi.json``. The service (:mod:`.service`,
:mod:`.mailbox`) builds the answers as plain dicts of exactly these fields."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "AckModel",
    "DeliveryModel",
    "ErrorModel",
    "FindingModel",
    "HealthModel",
    "MailboxEntryModel",
    "MailboxModel",
    "ReceiptModel",
    "StatusChangeModel",
    "StatusModel",
    "error_responses",
]


class ReceiptModel(BaseModel):
    """Acknowledgement of a delivered message."""

    nachrichtenUUID: str = Field(description="The message's nachrichtenUUID (lower case).")
    received_at: str = Field(description="When this inbox first stored it (ISO 8601, UTC).")
    sha512: str = Field(description="SHA-512 of the stored payload, 128 lower-case hex digits.")
    state: str = Field(description="Always `delivered`: stored, waiting for its recipient.")
    recipient: str = Field(description="Agency id of the recipient (inbox or hosted mailbox).")


class FindingModel(BaseModel):
    severity: str
    message: str
    rule: str
    line: int | None = None
    xpath: str | None = None


class ErrorModel(BaseModel):
    """Every refusal: a stable ``error`` code and a ``detail`` naming what and where; some
    errors add fields (``findings``, ``line``, ``column``, ``nachrichtenUUID``, ``limit``)."""

    model_config = {"extra": "allow"}

    error: str = Field(description="Machine-readable error code.")
    detail: str = Field(description="What is wrong and where.")
    findings: list[FindingModel] | None = Field(
        default=None, description="invalid_message: the validation findings."
    )


class MailboxEntryModel(BaseModel):
    nachrichtenUUID: str
    standard: str
    version: str
    message_type: str
    author: str | None = Field(description="Behördenkennung of the author (praefix:kennung).")
    sender: str | None = Field(description="Agency id that delivered the message.")
    received_at: str
    size: int = Field(description="Bytes of the XML payload.")
    sha512: str


class MailboxModel(BaseModel):
    agency: str
    count: int
    messages: list[MailboxEntryModel]


class AckModel(BaseModel):
    nachrichtenUUID: str
    recipient: str
    state: str = Field(description="`fetched`.")
    fetched_at: str


class DeliveryModel(BaseModel):
    recipient: str
    state: str
    updated_at: str


class StatusChangeModel(BaseModel):
    at: str
    direction: str
    recipient: str
    from_state: str | None = Field(alias="from")
    to: str
    actor: str


class StatusModel(BaseModel):
    nachrichtenUUID: str
    sender: str | None
    message_type: str
    received_at: str
    sha512: str
    state: str | None = Field(description="Current state of the (first) inbound delivery.")
    deliveries: list[DeliveryModel]
    history: list[StatusChangeModel]


class HealthModel(BaseModel):
    status: str
    agency: str
    mailboxes: list[str]
    journal: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of refusals: every status answered with :class:`ErrorModel`."""
    return {status: {"model": ErrorModel} for status in statuses}
