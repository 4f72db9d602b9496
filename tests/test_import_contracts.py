"""The layer contracts of `.importlinter` (run by `make lint`): kept by the tree, and each one
fails when a copy of the tree is given the import it forbids."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("webapp", "models", "tasks", "pacer")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},  # one line per contract
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages, the contracts and their contract type (sources only)."""
    for name in PACKAGES:
        shutil.copytree(
            ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "static")
        )
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "import_contracts.py", tmp_path / "scripts")
    shutil.copy(ROOT / ".importlinter", tmp_path)
    return tmp_path


def add_import(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}\n")


def test_the_tree_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_copy_keeps_them_too(tree):
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("models/auth.py", "import webapp.config", "models/ imports nothing from webapp/"),
        ("pacer/producer.py", "import models", "pacer/ (the consumer SDK"),
        # another area's routes (the blueprint's views), CLI and private helpers
        (
            "webapp/errors_view/routes.py",
            "from ..stats import routes",
            "Feature areas (every package in webapp/)",
        ),
        (
            "webapp/stalled/queries.py",
            "from ..actions.targets import shown",
            "Feature areas (every package in webapp/)",
        ),
        (
            "webapp/alerts/services.py",
            "from ..investigations import cli",
            "Feature areas (every package in webapp/)",
        ),
        # inside one area, a read must not reach up to the writes
        (
            "webapp/messages/queries.py",
            "from . import routes",
            "Inside an area: routes and cli over services",
        ),
    ],
)
def test_a_forbidden_import_fails_lint(tree, module, line, contract):
    add_import(tree / module, line)
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if " BROKEN" in row]
    assert any(row.startswith(contract) for row in broken), result.stdout
