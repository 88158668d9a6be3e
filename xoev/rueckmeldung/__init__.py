"""amtsbote Rückmeldung — the reply a consulted agency sends back (our own small standard).

XGewerbeanzeige 2.2 has no reply message; consultations (e.g. of the Ausländerbehörde) need one.
It follows the XÖV conventions and is registered like any standard (:data:`VERSIONS`).
"""

from __future__ import annotations

from ..standards import MessageType, StandardVersion
from .v1_0 import CODELIST_PATH, ERGEBNIS_LIST_URI, MESSAGE_TYPE, NAMESPACE, ROOT, SCHEMA_PATH

__all__ = ["V1_0", "VERSIONS"]

V1_0 = StandardVersion(
    standard="amtsbote-Rueckmeldung",
    version="1.0",
    namespace=NAMESPACE,
    schema=SCHEMA_PATH,
    message_types=(
        MessageType(
            code=MESSAGE_TYPE, root=ROOT, description="Rückmeldung einer beteiligten Behörde"
        ),
    ),
    codelists=(CODELIST_PATH,),
    code_bindings={"ergebnis": ERGEBNIS_LIST_URI},
    in_reply_to_element="bezug",
)

VERSIONS: tuple[StandardVersion, ...] = (V1_0,)
