"""connectors.yamlfile: reading, composing, positions, duplicate keys, problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import yamlfile
from connectors.directory import DirectoryProblem
from connectors.exceptions import ConnectorError
from connectors.yamlfile import YamlProblem, YamlReadError, YamlSyntaxError

TEXT = """\
version: 1
agencies:
  - id: a
    channel: http
  - id: b
    channel: smtp
    channel: file
"""


def test_read_text_names_missing_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    good = tmp_path / "a.yaml"
    good.write_text("k: ü\n", encoding="utf-8")
    assert yamlfile.read_text(good) == "k: ü\n"
    with pytest.raises(YamlReadError) as info:
        yamlfile.read_text(tmp_path / "missing.yaml")
    assert str(info.value) == f"{tmp_path / 'missing.yaml'}: cannot read: No such file or directory"
    assert isinstance(info.value.cause, FileNotFoundError)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("k: \xfc\n".encode("latin-1"))
    with pytest.raises(
        YamlReadError,
        match=r"latin.yaml: not UTF-8 text: invalid start byte at "
        r"byte 3",
    ):
        yamlfile.read_text(latin)
    with pytest.raises(YamlReadError, match="cannot read"):
        yamlfile.read_text(tmp_path)  # a directory
    assert isinstance(info.value, ConnectorError) and isinstance(info.value, ValueError)


def test_compose_gives_nodes_or_a_positioned_syntax_error() -> None:
    assert yamlfile.compose("") is None
    root = yamlfile.compose(TEXT, file="f.yaml")
    assert yamlfile.line_of(root, ("agencies", 1, "channel")) == 7  # the last one given wins
    assert yamlfile.position(yamlfile.find(root, ("agencies", 1)))[0] == 5
    assert yamlfile.find(root, ("agencies", 5)) is None
    assert yamlfile.find(root, ("version", "x")) is None
    assert yamlfile.line_of(root, ("nope",)) is None
    assert yamlfile.value(yamlfile.find(root, ("version",))) == 1
    with pytest.raises(YamlSyntaxError) as info:
        yamlfile.compose("a: [1, 2\nb: 3\n", file="f.yaml")
    assert (info.value.line, info.value.column) == (2, 2)
    assert str(info.value).startswith("f.yaml:2:2: not valid YAML: ")
    with pytest.raises(YamlSyntaxError, match="another document"):
        yamlfile.compose("a: 1\n---\nb: 2\n")


def test_value_is_safe() -> None:
    node = yamlfile.compose("!!python/object:os.system x\n")
    assert node is not None
    with pytest.raises(Exception, match="python/object"):
        yamlfile.value(node)


def test_duplicate_keys_anywhere_in_the_tree() -> None:
    found = [str(p) for p in yamlfile.duplicate_keys(yamlfile.compose(TEXT), file="f.yaml")]
    assert found == ["f.yaml:7:5: agencies[1].channel: duplicate key (first at line 6)"]
    assert list(yamlfile.duplicate_keys(None)) == []


def test_problem_text() -> None:
    assert str(YamlProblem("f", 3, 4, "x.y", "bad")) == "f:3:4: x.y: bad"
    assert str(YamlProblem(None, 3, None, "", "bad")) == "<yaml>:3: bad"
    assert str(DirectoryProblem(None, None, None, "id", "bad")) == "<agencies>: id: bad"
    assert isinstance(DirectoryProblem("f", 1, 1, "", "m"), YamlProblem)
