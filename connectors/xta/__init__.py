"""XTA 2 (webservice 2.1.1) building blocks, without Prefect or FastAPI: the vendored official
WSDL/XSDs (``wsdl/``, :mod:`.schema`), namespaces and WS-Addressing actions (:mod:`.namespaces`),
SOAP 1.2 envelopes and faults (:mod:`.soap`), MTOM/XOP (:mod:`.mtom`), MessageMetaData
(:mod:`.metadata`) and the exceptions (:mod:`.exceptions`). The server ports on the inbox are
:mod:`connectors.inbox.xta`; the integrator's description is ``docs/xta.md``.
"""

from __future__ import annotations

from .exceptions import MetadataError, MtomError, SoapError, XtaError, XtaFault, XtaSchemaError
from .schema import WSDL_DIR, WSDL_PATH

__all__ = [
    "WSDL_DIR",
    "WSDL_PATH",
    "MetadataError",
    "MtomError",
    "SoapError",
    "XtaError",
    "XtaFault",
    "XtaSchemaError",
]
