"""The standard-neutral building blocks of every procedure: one small task per step where an
operator gains from seeing it, composed by a family's flows.

========================  ==================================================================
block                     what it does
========================  ==================================================================
:func:`intake`            validate the start message, check it with the family, open its case
:func:`check`             the family's routing applied to the facts → plan
:func:`approve`           human step: wait for a clerk's decision (Prefect form or CLI)
:func:`consult`           send to an agency and wait for its reply (read by the family)
:func:`exchange`          send and wait for several replies in order (multi-round)
:func:`distribute`        one message per recipient (built by the family), sent concurrently
:func:`await_receipts`    wait until every delivery is acknowledged (mailbox: fetched)
:func:`close`             summary, artifacts, final case status
========================  ==================================================================

None of them knows a standard: they ask the case's family (:mod:`flows.families`). Idempotency
is ours, not Prefect's: every block asks the journal first; message keys are derived by the
family from (case, rule). No Prefect cache policy is used (``NO_CACHE``) and no result is
persisted: parameters, results, logs and artifacts carry case ids, keys, agency ids and the
family's non-personal facts only — payloads stay in the journal.
"""

from __future__ import annotations

from .approve import approve, keep_comment, record_decision, recorded_decision
from .check import check
from .close import (
    await_receipts,
    close,
    delivery_rows,
    finish_case,
    publish_case_artifacts,
    timeline_markdown,
)
from .common import (
    ACKNOWLEDGED,
    FLOW_OPTIONS,
    ApprovalInput,
    CaseRef,
    Decision,
    DeliveryOutcome,
    Plan,
    ReplyInput,
    wait_for_input,
)
from .consult import Reply, consult, exchange, record_reply
from .intake import intake
from .send import (
    distribute,
    prepare_messages,
    send_all,
    send_deliveries,
    send_delivery,
)

__all__ = [
    "ACKNOWLEDGED",
    "FLOW_OPTIONS",
    "ApprovalInput",
    "CaseRef",
    "Decision",
    "DeliveryOutcome",
    "Plan",
    "Reply",
    "ReplyInput",
    "approve",
    "await_receipts",
    "check",
    "close",
    "consult",
    "delivery_rows",
    "distribute",
    "exchange",
    "finish_case",
    "intake",
    "keep_comment",
    "prepare_messages",
    "publish_case_artifacts",
    "record_decision",
    "record_reply",
    "recorded_decision",
    "send_all",
    "send_deliveries",
    "send_delivery",
    "timeline_markdown",
    "wait_for_input",
]
