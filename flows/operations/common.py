"""What the operations modules share: names on the Prefect server, the error, the code
directory, the API client (:mod:`flows.operations`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import AmtsboteFlowError

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

    from .automations import AutomationChange
    from .limits import LimitChange

__all__ = [
    "AGENCY_LIMIT_PREFIX",
    "AUTOMATION_PREFIX",
    "ESCALATE_DEPLOYMENT",
    "RECOVER_DEPLOYMENT",
    "WORK_POOL",
    "OperationsError",
    "describe_changes",
    "project_root",
]

log = logging.getLogger("amtsbote.operations")

AGENCY_LIMIT_PREFIX = "agency-"
RATE_SUFFIX = "-rate"
#: Prefect's shortest lease on concurrency slots (seconds): the time a dead holder keeps a slot.
LEASE_SECONDS = 60.0
AUTOMATION_PREFIX = "amtsbote-"
WORK_POOL = "amtsbote-process"
RECOVER_DEPLOYMENT = "recover/recover"
ESCALATE_DEPLOYMENT = "escalate/escalate"
#: Tag of the procedure deployments (prefect.yaml) that the automations watch.
WATCHED_TAG = "amtsbote"
#: Tag of the operations deployments (not watched: a crashed recovery is not recovered).
OPERATIONS_TAG = "amtsbote-operations"


class OperationsError(AmtsboteFlowError):
    """An operations command cannot do its work: names what (work pool, deployment, server)
    and why. (Belongs into the tree of :mod:`flows.exceptions`.)"""

    def __init__(self, what: str, message: str) -> None:
        self.what, self.message = what, message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.what}: {self.message}"


def project_root() -> Path:
    """The code directory of this installation: ``AMTSBOTE_HOME``, else the checkout this module
    lives in (the directory holding ``prefect.yaml``)."""
    from connectors.settings import AmtsboteSettings

    home = AmtsboteSettings.from_environ(only=("home",)).home
    return home.resolve() if home else Path(__file__).resolve().parents[2]


@asynccontextmanager
async def _client(client: PrefectClient | None) -> AsyncIterator[PrefectClient]:
    if client is not None:
        yield client
        return
    from prefect.client.orchestration import get_client

    async with get_client() as c:
        yield c


def describe_changes(changes: Sequence[LimitChange | AutomationChange]) -> str:
    """One line per change, for the CLI."""
    return "\n".join(str(c) for c in changes)
