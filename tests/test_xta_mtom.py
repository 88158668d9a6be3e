"""MTOM reading without the server: a 20 MB attachment fed in network-sized chunks is spooled to
a file (not kept in memory), memory stays bounded, and the limits refuse oversized bodies; plus
the pure SOAP/metadata helpers."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import pytest
from lxml import etree
from xta_support import WSA, XGA, envelope, metadata_header, mtom_body

from connectors.xta.exceptions import MetadataError, MtomError, SoapError
from connectors.xta.metadata import check_consistent, read_metadata
from connectors.xta.mtom import MultipartParser, resolve_content
from connectors.xta.soap import parse_envelope
from xoev.message import MessageInfo

MiB = 1 << 20


def _feed(parser: MultipartParser, body: bytes, step: int = 64 * 1024) -> None:
    view = memoryview(body)
    for i in range(0, len(body), step):
        parser.feed(bytes(view[i : i + step]))


def test_large_attachment_is_spooled_to_disk_with_bounded_memory(tmp_path: Path) -> None:
    payload = bytes(range(256)) * (20 * MiB // 256)
    include = (
        '<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:big%40test"/>'
    )
    root = envelope("urn:a", f"<m>{include}</m>")
    content_type, body = mtom_body(root, {"big@test": payload})
    parser = MultipartParser(
        content_type, directory=tmp_path, limit=64 * MiB, root_limit=MiB, memory_threshold=MiB
    )
    tracemalloc.start()
    try:
        _feed(parser, body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB, peak  # the 20 MB never sits in memory
    root_part, attachments = parser.close()
    part = attachments["big@test"]
    assert part.on_disk and part.path is not None and part.path.parent == tmp_path
    assert part.size == len(payload)
    assert hashlib.sha256(part.read_bytes()).digest() == hashlib.sha256(payload).digest()
    env = parse_envelope(root_part.read_bytes(), max_bytes=MiB)
    content = resolve_content(env.body, attachments)
    assert content.part is part
    parser.discard()
    assert not part.path.exists()


def test_limits_and_broken_multipart(tmp_path: Path) -> None:
    root = envelope("urn:a", "<m>AA==</m>")
    content_type, body = mtom_body(root, {"x@t": b"y" * 5000})
    small = MultipartParser(content_type, directory=tmp_path, limit=4000, root_limit=MiB)
    with pytest.raises(MtomError) as too_large:
        _feed(small, body, 1000)
    assert too_large.value.too_large
    root_small = MultipartParser(content_type, directory=tmp_path, limit=MiB, root_limit=100)
    with pytest.raises(MtomError, match="part exceeds"):
        _feed(root_small, body)
    truncated = MultipartParser(content_type, directory=tmp_path, limit=MiB, root_limit=MiB)
    _feed(truncated, body[:-20])
    with pytest.raises(MtomError, match="closing boundary"):
        truncated.close()
    with pytest.raises(MtomError, match="boundary"):
        MultipartParser(
            'multipart/related; type="application/xop+xml"',
            directory=tmp_path,
            limit=1,
            root_limit=1,
        )
    assert list(tmp_path.iterdir()) == []


def test_envelope_parsing_is_hardened() -> None:
    with pytest.raises(SoapError, match=r"XXE|external"):
        parse_envelope(
            b'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><e>&x;</e>', max_bytes=MiB
        )
    with pytest.raises(SoapError) as big:
        parse_envelope(envelope("urn:a", "<m/>"), max_bytes=100)
    assert big.value.too_large
    env = parse_envelope(envelope("urn:a", "<m/>", message_id="urn:uuid:1"), max_bytes=MiB)
    assert (env.action, env.message_id, env.reply_to) == ("urn:a", "urn:uuid:1", WSA + "/anonymous")


def test_metadata_consistency() -> None:
    uid = "6f1c1b0e-1c9e-4a8e-9d5e-0c1f2a3b4c5d"
    element = etree.fromstring(
        envelope(
            "urn:a",
            headers=metadata_header(author="MELDID:1", reader="MELDID:2", nachrichten_uuid=uid),
        )
    ).find(".//{http://www.osci.eu/ws/2014/10/transport}MessageMetaData")
    meta = read_metadata(element)
    info = MessageInfo(
        namespace=XGA,
        standard="XGewerbeanzeige",
        version="2.2",
        root="abh.gewerbemeldung.0500",
        message_type="0500",
        nachrichten_uuid=uid,
        erstellungszeitpunkt=None,
        author="meldid:1",
        reader="MELDID:2",
    )
    check_consistent(meta, info)
    for change in (
        {"author": "MELDID:3"},
        {"reader": "MELDID:1"},
        {"nachrichten_uuid": "00000000-0000-0000-0000-000000000000"},
        {"namespace": "urn:x"},
        {"message_type": "0100", "root": "x.0100"},
    ):
        other = MessageInfo(**{**info.to_dict(), **change})
        with pytest.raises(MetadataError):
            check_consistent(meta, other)
