"""Project contracts: the README's two commands, CI running the test command, atomic files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kpose.files import atomic_path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    printed = subprocess.run(["bash", str(REPO / ".ci" / "run"), "--print"], check=True,
                             capture_output=True, text=True).stdout.strip()
    readme = (REPO / "README.md").read_text()
    assert printed and printed in readme
    assert "pip install" in printed and "pytest" in printed and ".[dev]" in printed


def test_readme_has_a_main_command_before_the_test_command():
    readme = (REPO / "README.md").read_text()
    main, test = readme.find("<!-- main-command -->"), readme.find("<!-- test-command -->")
    assert 0 <= main < test


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "model.json"
    with atomic_path(target) as temporary:
        temporary.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["model.json"]


def test_atomic_path_gives_ordinary_file_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.json") as temporary:
            temporary.write_text("{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
