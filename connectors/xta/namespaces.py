"""Namespace URIs of XTA 2 (webservice 2.1.1), defined once; the WS-Addressing actions of the
WSDL's operations (input and output action are the same URI for every XTA operation).

All names are as written in the vendored ``wsdl/XTA.wsdl`` and its XSDs.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ACTIONS",
    "FINDINGS_NS",
    "NSMAP",
    "OSCI",
    "OSCIMETA",
    "SOAP12",
    "WSA",
    "WSA_ANONYMOUS",
    "XMIME",
    "XOP",
    "XTA",
    "XTA_ERROR_CODE_LIST",
    "q",
]

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
"""SOAP 1.2 envelope (the WSDL binds every port with SOAP 1.2)."""
WSA = "http://www.w3.org/2005/08/addressing"
"""WS-Addressing 1.0 (2005/08), required by the WSDL's policy."""
WSA_ANONYMOUS = WSA + "/anonymous"
XOP = "http://www.w3.org/2004/08/xop/include"
XMIME = "http://www.w3.org/2005/05/xmlmime"
XTA = "http://xoev.de/transport/xta/211"
"""XTA webservice 2.1.1: GenericContentContainer, TransportReport, LookupService*, exceptions."""
OSCIMETA = "http://www.osci.eu/ws/2014/10/transport"
"""OSCI MessageMetaData 2.02 (Author, Reader, MessageMetaData)."""
OSCI = "http://www.osci.eu/ws/2008/05/transport"
"""OSCI Transport 2.02 (MsgBox requests, MsgStatusList, MsgBoxResponse)."""
FINDINGS_NS = "urn:amtsbote:xta:1"
"""Our own elements in fault details (the XÖV findings of a MessageSchemaViolation)."""
XTA_ERROR_CODE_LIST = "urn:de:xta:webservice:codeliste:fehlernummer"
"""listURI of ``Code.Fehlernummer`` (fixed in XTA-Webservice-Datentypen.xsd, version 1.0)."""

NSMAP: Mapping[str, str] = {
    "s12": SOAP12,
    "wsa": WSA,
    "xop": XOP,
    "xta": XTA,
    "oscimeta": OSCIMETA,
    "osci": OSCI,
}

_XTA_ACTION = "http://www.xta.de/XTA/"
_MSGBOX_ACTION = "http://www.osci.eu/ws/2008/05/transport/urn/messageTypes/"

#: (port, operation) → wsa:Action of input and output (wsam:Action in the WSDL's portTypes).
ACTIONS: Mapping[tuple[str, str], str] = {
    ("ManagementPort", "checkAccountActive"): _XTA_ACTION + "CheckAccountActive",
    ("ManagementPort", "lookupService"): _XTA_ACTION + "IsServiceAvailable",
    ("ManagementPort", "getTransportReport"): _XTA_ACTION + "GetTransportReport",
    ("ManagementPort", "cancelMessage"): _XTA_ACTION + "CancelMessage",
    ("ManagementPort", "createMessageId"): _XTA_ACTION + "CreateMessageID",
    ("SendXtaPort", "sendMessage"): _XTA_ACTION + "SendMessage",
    ("SendXtaPort", "sendMessageSync"): _XTA_ACTION + "SendMessageSync",
    ("MsgBoxPort", "getMessage"): _MSGBOX_ACTION + "MsgBoxFetchRequest",
    ("MsgBoxPort", "getStatusList"): _MSGBOX_ACTION + "MsgBoxStatusListRequest",
    ("MsgBoxPort", "getNextMessage"): _MSGBOX_ACTION + "MsgBoxGetNextMsgRequest",
    ("MsgBoxPort", "getNextStatusList"): _MSGBOX_ACTION + "MsgBoxGetNextListRequest",
    ("MsgBoxPort", "close"): _MSGBOX_ACTION + "MsgBoxCloseRequest",
}


def q(namespace: str, local: str) -> str:
    """``{namespace}local`` (Clark notation, as lxml spells tags)."""
    return f"{{{namespace}}}{local}"
