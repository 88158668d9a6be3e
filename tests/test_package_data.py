"""The OWL default data files are package data (``deployments.owl``): found with
importlib.resources, shipped in the wheel, and their relative paths usable when installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest

from connectors.directory import DEFAULT_PATH, Directory
from connectors.journal.retention import DEFAULT_RETENTION_PATH
from connectors.settings import data_file, installed_var_dir
from flows.routing import DEFAULT_ROUTING_PATH

ROOT = Path(__file__).resolve().parents[1]
OWL_FILES = ("agencies.yaml", "routing.yaml", "retention.yaml")


def test_defaults_come_from_the_package() -> None:
    owl = Path(str(files("deployments.owl")))
    assert owl / "agencies.yaml" == DEFAULT_PATH
    assert owl / "routing.yaml" == DEFAULT_ROUTING_PATH
    assert owl / "retention.yaml" == DEFAULT_RETENTION_PATH
    for name in OWL_FILES:
        assert data_file(name).is_file()
    assert data_file("/etc/x.yaml") == Path("/etc/x.yaml")


def _fake_site(tmp_path: Path, *, checkout: bool) -> Path:
    site = tmp_path / "site-packages"
    (site / "deployments" / "owl").mkdir(parents=True)
    shutil.copy(ROOT / "deployments" / "__init__.py", site / "deployments")
    for name in ("__init__.py", *OWL_FILES):
        shutil.copy(ROOT / "deployments" / "owl" / name, site / "deployments" / "owl")
    if checkout:
        (site / "pyproject.toml").write_text("[project]\nname='x'\n")
    return site / "deployments" / "owl" / "agencies.yaml"


def test_relative_paths_of_an_installed_directory_go_to_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    installed = _fake_site(tmp_path / "wheel", checkout=False)
    assert installed_var_dir(installed) == (tmp_path / "wheel" / "site-packages" / "var")
    directory = Directory.load(installed, environ={"AMTSBOTE_DATA_DIR": str(data)})
    drops = {a.id: a.drop_dir for a in directory if a.drop_dir is not None}
    assert drops["finanzamt-paderborn"] == data / "drop" / "finanzamt-paderborn"


def test_relative_paths_of_a_checkout_stay_relative_to_the_file(tmp_path: Path) -> None:
    checkout = _fake_site(tmp_path / "repo", checkout=True)
    assert installed_var_dir(checkout) is None
    assert installed_var_dir(DEFAULT_PATH) is None  # this repository
    directory = Directory.load(checkout, environ={"AMTSBOTE_DATA_DIR": str(tmp_path / "d")})
    drop = directory.get("finanzamt-paderborn").drop_dir
    assert drop == tmp_path / "repo" / "site-packages" / "var" / "drop" / "finanzamt-paderborn"
    assert Directory.load(DEFAULT_PATH, environ={}).get("finanzamt-paderborn").drop_dir == (
        ROOT / "var" / "drop" / "finanzamt-paderborn"
    )


@pytest.mark.slow
def test_the_wheel_ships_the_owl_data_files(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = out.glob("amtsbote-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("__init__.py", *OWL_FILES):
        assert f"deployments/owl/{name}" in names
    assert "deployments/__init__.py" in names
    assert "connectors/settings.py" in names and "connectors/yamlfile.py" in names
    assert not any(n.startswith(("deployments/kubernetes", "deployments/systemd")) for n in names)
