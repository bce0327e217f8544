"""Project contracts: the README's two commands, CI running the test command, atomic files,
the import layers."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_import_contracts_hold_and_catch_an_upward_import(tmp_path):
    """The layers in .importlinter hold for the package as it is; the same contracts on a
    copy where the data layer imports training are reported broken."""
    import shutil

    linter = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
              "lint_imports_command()"]
    kept = subprocess.run(linter, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert kept.returncode == 0, kept.stdout[-2000:]
    for name in ("kpose", "export", ".importlinter"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    targets = tmp_path / "kpose" / "data" / "targets.py"
    targets.write_text(targets.read_text() + "\nfrom kpose.training import train  # wrong\n")
    broken = subprocess.run(linter, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert broken.returncode != 0
    assert "BROKEN" in broken.stdout and "kpose.data.targets -> kpose.training" in broken.stdout


def test_no_import_cycle_among_kpose_modules():
    import grimp

    graph = grimp.build_graph("kpose")
    cycles = {tuple(sorted((module, imported))) for module in graph.modules
              for imported in graph.find_modules_directly_imported_by(module)
              if graph.chain_exists(importer=imported, imported=module)}
    assert cycles == set()
