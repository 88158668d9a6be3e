"""Hardened XML intake: every hostile input is refused with its own exception type."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from xoev.exceptions import (
    EntityDeclarationError,
    ExternalDTDError,
    ExternalEntityError,
    ForbiddenDoctypeError,
    InputEncodingError,
    InputTooLargeError,
    NestingTooDeepError,
    NotXMLError,
    TooMuchMarkupError,
    UnusableInputError,
)
from xoev.parsing import LIBXML2_MAX_DEPTH, ParserConfig, parse_file, parse_xml, read_input


def _billion_laughs() -> bytes:
    parts = [b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n  <!ENTITY lol "lol">\n']
    for i in range(1, 10):
        prev = b"&lol;" if i == 1 else b"&lol%d;" % (i - 1)
        parts.append(b'  <!ENTITY lol%d "%s">\n' % (i, prev * 10))
    parts.append(b"]>\n<lolz>&lol9;</lolz>\n")
    return b"".join(parts)


HOSTILE = {
    "xxe": (
        b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<r>&x;</r>',
        ExternalEntityError,
    ),
    "xxe-parameter-entity": (
        b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://example.invalid/p.dtd"> %p;]><r/>',
        ExternalEntityError,
    ),
    "xxe-public": (
        b'<!DOCTYPE r [<!ENTITY x PUBLIC "-//X//EN" "http://example.invalid/x">]><r>&x;</r>',
        ExternalEntityError,
    ),
    "billion-laughs": (_billion_laughs(), EntityDeclarationError),
    "quadratic-blowup": (
        b'<!DOCTYPE r [<!ENTITY a "' + b"x" * 10_000 + b'">]><r>' + b"&a;" * 1000 + b"</r>",
        EntityDeclarationError,
    ),
    "external-dtd": (
        b'<?xml version="1.0"?>\n<!DOCTYPE r SYSTEM "http://example.invalid/r.dtd">\n<r/>',
        ExternalDTDError,
    ),
    "external-dtd-public": (
        b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
        b'"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd"><html/>',
        ExternalDTDError,
    ),
    "bare-doctype": (b"<!-- before --><?pi x?>\n<!DOCTYPE r>\n<r/>", ForbiddenDoctypeError),
    "not-xml-text": (b"hello, world", NotXMLError),
    "not-xml-json": (b'{"nachricht": 1}', NotXMLError),
    "not-xml-binary": (bytes(range(256)) * 16, NotXMLError),
    "truncated": (b"<a>\n  <b>\n</a>", NotXMLError),
    "empty": (b"", NotXMLError),
    "blank": (b" \n\t ", NotXMLError),
    "latin1-claiming-utf8": (
        '<?xml version="1.0" encoding="UTF-8"?>\n<r>Größe</r>'.encode("latin-1"),
        InputEncodingError,
    ),
    "latin1-undeclared": ("<r>Größe</r>".encode("latin-1"), InputEncodingError),
    "bogus-encoding-name": (b'<?xml version="1.0" encoding="X-NOPE-99"?><r/>', InputEncodingError),
    "utf7-declared": (b'<?xml version="1.0" encoding="UTF-7"?><r/>', InputEncodingError),
    "utf16-claiming-utf8": (
        '<?xml version="1.0" encoding="UTF-8"?><r>x</r>'.encode("utf-16"),
        InputEncodingError,
    ),
    "utf8-claiming-utf16": (b'<?xml version="1.0" encoding="UTF-16"?><r>x</r>', InputEncodingError),
    "too-deep": (b"<a>" * 300 + b"</a>" * 300, NestingTooDeepError),
    "very-deep": (b"<a>" * 100_000 + b"</a>" * 100_000, NestingTooDeepError),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_gets_its_own_exception(name: str) -> None:
    data, expected = HOSTILE[name]
    with pytest.raises(expected) as info:
        parse_xml(data, source=f"{name}.xml")
    assert type(info.value) is expected
    assert isinstance(info.value, UnusableInputError)
    assert str(info.value).startswith(f"{name}.xml")


def test_doctype_is_refused_in_utf16_too() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'
    with pytest.raises(EntityDeclarationError):
        parse_xml(data.encode("utf-16"))


def test_oversize_is_refused_before_parsing() -> None:
    # garbage that would be a NotXMLError if it were parsed
    with pytest.raises(InputTooLargeError) as info:
        parse_xml(b"\x00garbage" * 20, config=ParserConfig(max_bytes=100))
    assert info.value.size == 160 and info.value.limit == 100
    with pytest.raises(InputTooLargeError):
        parse_xml(b"<r>" + b"x" * (10 * 1024 * 1024) + b"</r>")


def test_an_element_bomb_is_refused_before_a_tree_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 10 MB body of empty elements would cost libxml2 a tree of about a gigabyte: the budget
    of tags and attribute assignments refuses it on two byte counts, the parser never runs."""
    import xoev.parsing as parsing

    def no_parse(*_: object) -> None:
        raise AssertionError("the parser ran")

    monkeypatch.setattr(parsing.etree, "fromstring", no_parse)
    bomb = b"<r>" + b"<a/>" * 2_600_000 + b"</r>"  # ~10 MB
    assert len(bomb) < ParserConfig().max_bytes
    with pytest.raises(TooMuchMarkupError) as info:
        parse_xml(bomb, source="bomb.xml")
    assert info.value.what == "tags" and info.value.limit == ParserConfig().max_tags
    assert "ParserConfig.max_tags" in str(info.value) and "bomb.xml" in str(info.value)
    attributes = b"<r " + b" ".join(b"a%d='1'" % i for i in range(2_000)) + b"/>"
    with pytest.raises(TooMuchMarkupError, match="max_attributes"):
        parse_xml(attributes, config=ParserConfig(max_attributes=1_000))


def test_the_markup_budget_is_configurable_and_lets_real_messages_through() -> None:
    data = b"<r>" + b"<a x='1'/>" * 10 + b"</r>"  # 12 tags, 10 attributes
    assert len(parse_xml(data, config=ParserConfig(max_tags=12)).getroot()) == 10
    with pytest.raises(TooMuchMarkupError):
        parse_xml(data, config=ParserConfig(max_tags=11))
    with pytest.raises(TooMuchMarkupError):
        parse_xml(data, config=ParserConfig(max_attributes=9))
    with pytest.raises(ValueError, match="max_tags"):
        ParserConfig(max_tags=0)


def test_depth_limit_is_configurable() -> None:
    data = b"<a><b><c/></b></a>"
    assert parse_xml(data, config=ParserConfig(max_depth=3)).getroot().tag == "a"
    with pytest.raises(NestingTooDeepError) as info:
        parse_xml(data, config=ParserConfig(max_depth=2))
    assert info.value.limit == 2
    assert info.value.line == 1
    ok = b"<a>" * LIBXML2_MAX_DEPTH + b"</a>" * LIBXML2_MAX_DEPTH
    assert parse_xml(ok).getroot().tag == "a"


def test_parser_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        ParserConfig(max_depth=LIBXML2_MAX_DEPTH + 1)
    with pytest.raises(ValueError, match="max_bytes"):
        ParserConfig(max_bytes=0)


def test_parse_errors_carry_line_and_column() -> None:
    with pytest.raises(NotXMLError) as info:
        parse_xml(b"<a>\n  <b>\n</a>", source="m.xml")
    assert info.value.line == 3
    assert info.value.column is not None
    assert "m.xml:3:" in str(info.value)
    assert "mismatch" in str(info.value)

    with pytest.raises(InputEncodingError) as enc:
        parse_xml('<?xml version="1.0"?>\n<r>\n<x>ä</x></r>'.encode("latin-1"))
    assert enc.value.line == 3


def test_doctype_position_is_reported() -> None:
    with pytest.raises(ExternalDTDError) as info:
        parse_xml(b'<?xml version="1.0"?>\n\n<!DOCTYPE r SYSTEM "r.dtd"><r/>')
    assert info.value.line == 3 and info.value.column == 1


def test_non_strict_tolerates_a_bare_doctype_but_never_entities() -> None:
    lax = ParserConfig(strict=False)
    assert parse_xml(b"<!DOCTYPE r><r>x</r>", config=lax).getroot().text == "x"
    with pytest.raises(ExternalEntityError):
        parse_xml(HOSTILE["xxe"][0], config=lax)
    with pytest.raises(EntityDeclarationError):
        parse_xml(HOSTILE["billion-laughs"][0], config=lax)
    with pytest.raises(ExternalDTDError):
        parse_xml(HOSTILE["external-dtd"][0], config=lax)


def test_legitimate_documents_parse() -> None:
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><r>Straße</r>'.encode("utf-16")
    assert parse_xml(utf16).getroot().text == "Straße"
    latin1 = '<?xml version="1.0" encoding="ISO-8859-1"?><r>Größe</r>'.encode("latin-1")
    assert parse_xml(latin1).getroot().text == "Größe"
    bom = b"\xef\xbb\xbf" + '<?xml version="1.0" encoding="UTF-8"?><r>ä</r>'.encode()
    assert parse_xml(bom).getroot().text == "ä"
    # DOCTYPE-like text inside the body is content, not a DOCTYPE
    body = b"<r><!-- <!DOCTYPE x [<!ENTITY y 'z'>]> --><![CDATA[<!DOCTYPE q>]]></r>"
    assert parse_xml(body).getroot()[0].tail == "<!DOCTYPE q>"
    # predefined entities and character references are fine
    assert parse_xml(b"<r>&lt;&amp;&#228;</r>").getroot().text == "<&ä"
    assert parse_xml(bytearray(b"<r/>")).getroot().tag == "r"


def test_undefined_entity_reference_is_not_xml() -> None:
    with pytest.raises(NotXMLError, match="foo"):
        parse_xml(b"<r>&foo;</r>")


def test_parse_xml_wants_bytes() -> None:
    with pytest.raises(TypeError):
        parse_xml("<r/>")  # type: ignore[arg-type]


def test_parse_file_checks_size_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.xml"
    with big.open("wb") as fh:  # sparse: large on stat, nothing written
        fh.truncate(50 * 1024 * 1024)
    with pytest.raises(InputTooLargeError) as info:
        parse_file(big)
    assert str(big) in str(info.value)

    small = tmp_path / "m.xml"
    small.write_bytes(b"<r><x/></r>")
    assert parse_file(small).getroot()[0].tag == "x"
    with pytest.raises(InputTooLargeError):
        read_input(small, config=ParserConfig(max_bytes=5))


def test_parse_file_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnusableInputError, match="file not found") as info:
        parse_file(tmp_path / "missing.xml")
    assert str(tmp_path / "missing.xml") in str(info.value)
    with pytest.raises(UnusableInputError, match="regular file"):
        parse_file(tmp_path)
    hostile = tmp_path / "xxe.xml"
    hostile.write_bytes(HOSTILE["xxe"][0])
    with pytest.raises(ExternalEntityError) as xxe:
        parse_file(hostile)
    assert str(hostile) in str(xxe.value)


def test_parsing_from_several_threads() -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(50):
                tree = parse_xml(b"<r n='%d'><c>%d</c></r>" % (i, j))
                assert tree.getroot().get("n") == str(i)
                with pytest.raises(ExternalEntityError):
                    parse_xml(HOSTILE["xxe"][0])
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def _utf7(text: str) -> bytes:
    """UTF-7 with markup characters base64-encoded: the prolog scan cannot see them."""
    escapes = {"<": "+ADw-", ">": "+AD4-", "[": "+AFs-", "]": "+AF0-", '"': "+ACI-", "&": "+ACY-"}
    return b'<?xml version="1.0" encoding="UTF-7"?>' + "".join(
        escapes.get(c, c) for c in text
    ).encode("ascii")


def test_doctype_hidden_by_an_exotic_encoding_is_still_refused() -> None:
    lax = ParserConfig(strict=False)
    hidden_entities = _utf7('<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>')
    hidden_dtd = _utf7('<!DOCTYPE r SYSTEM "http://example.invalid/r.dtd"><r/>')
    # refused after parsing (nothing expanded or loaded), or the encoding is unknown to libxml2
    with pytest.raises((EntityDeclarationError, InputEncodingError)):
        parse_xml(hidden_entities, config=lax)
    with pytest.raises((ExternalDTDError, InputEncodingError)):
        parse_xml(hidden_dtd, config=lax)
    # strict intake does not accept such encodings at all
    with pytest.raises(InputEncodingError, match="UTF-7"):
        parse_xml(hidden_entities)
    ebcdic = '<?xml version="1.0" encoding="IBM037"?><r/>'.encode("cp037")
    with pytest.raises(InputEncodingError, match="EBCDIC"):
        parse_xml(ebcdic)
