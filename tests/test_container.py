"""x-man containers: layout, streaming with SHA-512, and every hostile case refused."""

from __future__ import annotations

import hashlib
import os
import stat
import tracemalloc
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.xdomea_examples import PRIMARY_SOURCES, PROZESS, kopf, messages
from xoev.code import Code
from xoev.container import (
    ContainerLimits,
    container_name,
    parse_container_name,
    read_container,
    write_container,
    xml_member_name,
)
from xoev.exceptions import (
    ContainerError,
    ContainerFormatError,
    ContainerMismatchError,
    ContainerNameError,
    DuplicateMemberError,
    MissingMemberError,
    UnreferencedMemberError,
    UnsafeMemberError,
    UnusableInputError,
    ZipBombError,
)
from xoev.xdomea.aussonderung import Aussonderung, build
from xoev.xdomea.records import Dokument, Format, Version

ROOT_0503 = "Aussonderung.Aussonderung.0503"
ROOT_0501 = "Aussonderung.Anbieteverzeichnis.0501"


@pytest.fixture
def primary(shared_dir: Path) -> dict[str, Path]:
    folder = shared_dir / "xoev" / "beispiele" / "primaerdokumente"
    return {name: folder / source for name, source in PRIMARY_SOURCES.items()}


@pytest.fixture
def xml_0503() -> bytes:
    return build(messages()["0503"])


def _zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _hostile(
    tmp_path: Path,
    xml: bytes,
    primary: dict[str, Path],
    extra: list[tuple[str | zipfile.ZipInfo, bytes]] | None = None,
    *,
    drop: tuple[str, ...] = (),
    root: str = ROOT_0503,
    prozess: str = PROZESS,
) -> Path:
    members: list[tuple[str | zipfile.ZipInfo, bytes]] = [(xml_member_name(prozess, root), xml)]
    members += [(n, p.read_bytes()) for n, p in primary.items() if n not in drop]
    members += extra or []
    return _zip(tmp_path / container_name(prozess, root), members)


def _refused(
    path: Path, error: type[ContainerError], rule: str, member: str | None = None, **kwargs: object
) -> ContainerError:
    before = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(error) as info:
        read_container(path, **kwargs)  # type: ignore[arg-type]
    err = info.value
    assert isinstance(err, UnusableInputError)
    assert err.rule == rule and err.source == str(path)
    if member is not None:
        assert err.member == member and repr(member) in str(err)
    assert f"(rule {rule})" in str(err)
    assert sorted(p.name for p in path.parent.iterdir()) == before  # nothing extracted
    return err


# -- the layout ----------------------------------------------------------------------------------


def test_names() -> None:
    assert container_name(PROZESS, ROOT_0501) == f"{PROZESS}_{ROOT_0501}.zip"
    assert parse_container_name(f"{PROZESS}_{ROOT_0503}.zip") == (PROZESS, ROOT_0503, "0503")
    for bad in (
        "x.zip",
        f"{PROZESS}_{ROOT_0503}.xml",
        f"{PROZESS}_Aussonderung.Unbekannt.0599.zip",
        f"4711_{ROOT_0503}.zip",
    ):
        with pytest.raises(ContainerNameError):
            parse_container_name(bad)


def test_write_then_read_0503(tmp_path: Path, xml_0503: bytes, primary: dict[str, Path]) -> None:
    written = write_container(tmp_path, xml_0503, primary)
    path = tmp_path / f"{PROZESS}_{ROOT_0503}.zip"
    assert path.is_file() and sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == [f"{PROZESS}_{ROOT_0503}.xml", *primary]
    result = read_container(path)
    info, xml, files = result
    assert (info.process_id, info.message_type, info.version) == (PROZESS, "0503", "3.0.0")
    assert xml == xml_0503
    assert set(files) == set(primary)
    for name, source in primary.items():
        expected = hashlib.sha512(source.read_bytes()).hexdigest()
        assert files[name].sha512 == written[name].sha512 == expected
        assert files[name].size == source.stat().st_size
        with files[name].open() as stream:
            assert stream.read() == source.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    extracted = files[next(iter(primary))].extract_to(out)
    assert extracted.read_bytes() == next(iter(primary.values())).read_bytes()
    assert [p.name for p in out.iterdir()] == [extracted.name]  # no temporary file left
    with pytest.raises(FileExistsError):
        files[next(iter(primary))].extract_to(out)


def test_write_0501_to_a_named_file_and_3_1_0(tmp_path: Path) -> None:
    xml = build(messages("3.1.0")["0501"])
    target = tmp_path / container_name(PROZESS, ROOT_0501)
    written = write_container(target, xml, {})
    assert list(written) == [xml_member_name(PROZESS, ROOT_0501)]
    info, data, files = read_container(target)
    assert info.version == "3.1.0" and data == xml and files == {}
    with pytest.raises(ContainerNameError, match="needs the container name"):
        write_container(tmp_path / "anbietung.zip", xml, {})


def test_write_refuses_files_that_do_not_match_the_xml(
    tmp_path: Path, xml_0503: bytes, primary: dict[str, Path]
) -> None:
    first = next(iter(primary))
    with pytest.raises(MissingMemberError) as missing:
        write_container(tmp_path, xml_0503, {k: v for k, v in primary.items() if k != first})
    assert missing.value.member == first
    with pytest.raises(UnreferencedMemberError):
        write_container(tmp_path, xml_0503, {**primary, "extra.txt": primary[first]})
    with pytest.raises(UnsafeMemberError):
        write_container(tmp_path, xml_0503, {**primary, "../x.pdf": primary[first]})
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


def test_big_primary_file_is_streamed(tmp_path: Path) -> None:
    doc_id = str(uuid.uuid4())
    name = f"{doc_id}_gross.pdf"
    big = tmp_path / "gross.pdf"
    with big.open("wb") as out:
        for _ in range(24):
            out.write(os.urandom(1 << 20))  # incompressible, like a PDF/A
    doc = Dokument(
        id=doc_id,
        versionen=(
            Version(
                formate=(
                    Format(dateiname=name, name=Code("044", list_version_id="1.0"), version="1.0"),
                )
            ),
        ),
    )
    msg = Aussonderung(kopf=kopf(from_city=True), schriftgutobjekte=(doc,))
    xml = build(msg)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    tracemalloc.start()
    try:
        write_container(out_dir, xml, {name: big})
        _, _, files = read_container(out_dir / container_name(PROZESS, ROOT_0503))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert files[name].size == big.stat().st_size == 24 << 20
    assert files[name].sha512 == hashlib.sha512(big.read_bytes()).hexdigest()
    assert peak < 12 << 20, f"peak {peak} bytes: not streamed"


# -- hostile containers ---------------------------------------------------------------------------


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / container_name(PROZESS, ROOT_0503)
    path.write_bytes(b"PK\x03\x04 this is not a zip file at all")
    _refused(path, ContainerFormatError, "zip:format")


def test_wrong_file_name(tmp_path: Path, xml_0503: bytes, primary: dict[str, Path]) -> None:
    path = _hostile(tmp_path, xml_0503, primary)
    renamed = path.rename(tmp_path / "aussonderung.zip")
    _refused(renamed, ContainerNameError, "name")


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("../evil.pdf", "member:traversal"),
        ("a/../../evil.pdf", "member:traversal"),
        ("/etc/evil.pdf", "member:absolute"),
        ("\\evil.pdf", "member:absolute"),
        ("C:evil.pdf", "member:absolute"),
        ("sub/evil.pdf", "member:not-flat"),
        ("sub/", "member:not-flat"),
    ],
)
def test_unsafe_member_names(
    tmp_path: Path, xml_0503: bytes, primary: dict[str, Path], name: str, rule: str
) -> None:
    path = _hostile(tmp_path, xml_0503, primary, [(name, b"x")])
    _refused(path, UnsafeMemberError, rule, name)


def test_duplicate_names(tmp_path: Path, xml_0503: bytes, primary: dict[str, Path]) -> None:
    first, source = next(iter(primary.items()))
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = _hostile(tmp_path, xml_0503, primary, [(first, source.read_bytes())])
    _refused(path, DuplicateMemberError, "member:duplicate", first)
    path.unlink()
    path = _hostile(tmp_path, xml_0503, primary, [(first.upper(), b"x")])
    err = _refused(path, DuplicateMemberError, "member:duplicate", first.upper())
    assert "in case only" in str(err)


@pytest.mark.parametrize(
    ("mode", "rule"),
    [(stat.S_IFLNK | 0o777, "member:symlink"), (stat.S_IFIFO | 0o644, "member:special")],
)
def test_symlinks_and_special_files(
    tmp_path: Path, xml_0503: bytes, primary: dict[str, Path], mode: int, rule: str
) -> None:
    link = zipfile.ZipInfo("link.pdf")
    link.create_system = 3
    link.external_attr = mode << 16
    path = _hostile(tmp_path, xml_0503, primary, [(link, b"/etc/passwd")])
    _refused(path, UnsafeMemberError, rule, "link.pdf")


def test_zip_bomb_by_ratio(tmp_path: Path, xml_0503: bytes, primary: dict[str, Path]) -> None:
    path = _hostile(tmp_path, xml_0503, primary, [("zeros.bin", bytes(20 << 20))])
    err = _refused(path, ZipBombError, "zip-bomb:ratio", "zeros.bin")
    assert "ratio above the limit of 100" in str(err)


def test_zip_bomb_by_sizes_and_count(
    tmp_path: Path, xml_0503: bytes, primary: dict[str, Path]
) -> None:
    path = _hostile(tmp_path, xml_0503, primary)
    largest = max(p.stat().st_size for p in primary.values())
    _refused(
        path, ZipBombError, "zip-bomb:member", limits=ContainerLimits(max_member_bytes=largest - 1)
    )
    _refused(
        path,
        ZipBombError,
        "zip-bomb:total",
        limits=ContainerLimits(max_total_bytes=sum(p.stat().st_size for p in primary.values())),
    )
    _refused(path, ZipBombError, "zip-bomb:members", limits=ContainerLimits(max_members=3))
    _refused(
        path, ZipBombError, "zip-bomb:xml", limits=ContainerLimits(max_xml_bytes=len(xml_0503) - 1)
    )
    assert read_container(path).info.message_type == "0503"  # the defaults accept it


def _patch_central(path: Path, member: str, offset: int, value: bytes) -> None:
    """Overwrite bytes of ``member``'s central directory entry (what zipfile trusts)."""
    data = bytearray(path.read_bytes())
    entry = data.find(b"PK\x01\x02")
    name = member.encode()
    while entry != -1 and data[entry + 46 : entry + 46 + len(name)] != name:
        entry = data.find(b"PK\x01\x02", entry + 4)
    assert entry != -1, member
    data[entry + offset : entry + offset + len(value)] = value
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("delta", [-1000, 1000])
def test_sizes_that_lie(
    tmp_path: Path, xml_0503: bytes, primary: dict[str, Path], delta: int
) -> None:
    path = _hostile(tmp_path, xml_0503, primary)
    member, source = next(iter(primary.items()))
    declared = source.stat().st_size + delta
    _patch_central(path, member, 24, declared.to_bytes(4, "little"))  # uncompressed size
    # too small: zipfile stops at the declared size and the CRC fails; too large: short
    err = _refused(path, ContainerFormatError, "zip:format" if delta < 0 else "zip:size")
    assert err.member == member


def test_encrypted_member(tmp_path: Path, xml_0503: bytes, primary: dict[str, Path]) -> None:
    path = _hostile(tmp_path, xml_0503, primary)
    member = next(iter(primary))
    _patch_central(path, member, 8, b"\x01\x00")  # general purpose flag: encrypted
    _refused(path, ContainerFormatError, "zip:encrypted", member)


def test_xml_missing(tmp_path: Path, primary: dict[str, Path]) -> None:
    path = _zip(
        tmp_path / container_name(PROZESS, ROOT_0503),
        [(n, p.read_bytes()) for n, p in primary.items()],
    )
    _refused(path, MissingMemberError, "xml:missing", xml_member_name(PROZESS, ROOT_0503))


def test_primary_file_missing(tmp_path: Path, xml_0503: bytes, primary: dict[str, Path]) -> None:
    first = next(iter(primary))
    path = _hostile(tmp_path, xml_0503, primary, drop=(first,))
    _refused(path, MissingMemberError, "files:missing", first)


def test_primary_file_not_referenced(
    tmp_path: Path, xml_0503: bytes, primary: dict[str, Path]
) -> None:
    stray = f"{uuid.uuid4()}_untergeschoben.pdf"
    path = _hostile(tmp_path, xml_0503, primary, [(stray, b"%PDF-1.4")])
    _refused(path, UnreferencedMemberError, "files:unreferenced", stray)


def test_xml_of_another_process(tmp_path: Path, xml_0503: bytes, primary: dict[str, Path]) -> None:
    other = str(uuid.uuid4())
    path = _hostile(tmp_path, xml_0503, primary, prozess=other)
    _refused(path, ContainerMismatchError, "xml:prozessid", xml_member_name(other, ROOT_0503))


def test_xml_of_another_type(tmp_path: Path, primary: dict[str, Path]) -> None:
    anbietung = build(messages()["0501"])
    path = _hostile(tmp_path, anbietung, {})
    _refused(path, ContainerMismatchError, "xml:root")
    path.unlink()
    # right root, wrong Nachrichtentyp code
    relabelled = build(messages()["0503"]).replace(b"<code>0503</code>", b"<code>0501</code>")
    path = _hostile(tmp_path, relabelled, primary)
    _refused(path, ContainerMismatchError, "xml:type")


def test_xml_that_is_not_usable(tmp_path: Path, primary: dict[str, Path]) -> None:
    xxe = b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    path = _hostile(tmp_path, xxe, {})
    err = _refused(path, ContainerFormatError, "xml:unusable")
    assert isinstance(err.__cause__, UnusableInputError) and "entity" in str(err).lower()


def test_0506_with_files_is_refused(tmp_path: Path, primary: dict[str, Path]) -> None:
    msg = messages()["0506"]
    root = type(msg).ROOT
    path = _hostile(tmp_path, build(msg), primary, root=root)
    _refused(path, UnreferencedMemberError, "files:unreferenced")
