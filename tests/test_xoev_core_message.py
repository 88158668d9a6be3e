"""MessageInfo from the XÖV nachrichtenkopf (KoSIT sample) and from odd inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from xoev import MessageInfo, SchemaRegistry, inspect_message, parse_xml
from xoev.exceptions import ExternalEntityError
from xoev.namespaces import XGEWERBEANZEIGE_2_2


def test_kosit_header(xgwa_samples: Path) -> None:
    data = (xgwa_samples / "xgwa2.2-valid.xml").read_bytes()
    # no standard packages: standard and version come from the root's XÖV attributes
    info = inspect_message(data, registry=SchemaRegistry(use_env=False, packages=()))
    assert info == MessageInfo(
        namespace=XGEWERBEANZEIGE_2_2,
        standard="XGewerbeanzeige",
        version="2.2",
        root="abh.gewerbemeldung.0500",
        message_type="0500",
        nachrichten_uuid="00000000-0000-0000-0000-000000000001",
        erstellungszeitpunkt="2019-10-24T00:00:00+02:00",
        author="MELDID:12052000",
        reader="azr:000100",
    )
    assert info.to_dict()["author"] == "MELDID:12052000"
    # the same from a parsed tree and from its root element
    tree = parse_xml(data)
    assert inspect_message(tree, registry=SchemaRegistry(use_env=False, packages=())) == info
    assert (
        inspect_message(tree.getroot(), registry=SchemaRegistry(use_env=False, packages=())) == info
    )


def test_headerless_documents() -> None:
    registry = SchemaRegistry(use_env=False, packages=())
    info = inspect_message(b"<xy/>", registry=registry)
    assert (info.namespace, info.root, info.standard, info.message_type) == (None, "xy", None, None)
    assert info.nachrichten_uuid is None and info.author is None and info.reader is None
    # message type from the root name when the header lacks it
    partial = inspect_message(
        b'<x:eine.nachricht.0701 xmlns:x="urn:x"><x:nachrichtenkopf><x:autor>'
        b"<x:behoerdenkennung><x:kennung><code>42</code></x:kennung></x:behoerdenkennung>"
        b"</x:autor></x:nachrichtenkopf></x:eine.nachricht.0701>",
        registry=registry,
    )
    assert partial.message_type == "0701"
    assert partial.author == ":42" and partial.reader is None


def test_hostile_bytes_are_refused() -> None:
    with pytest.raises(ExternalEntityError):
        inspect_message(b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
