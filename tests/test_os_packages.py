"""scripts/os-packages.txt covers what the ELF files in .venv link against (no services needed).

pip installs compiled extensions and Playwright's node binary, not the shared libraries they need;
a minimal Debian lacks some (libatomic1 for Playwright's node). These tests reason from the list,
not from what this machine happens to have installed.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / ".venv/lib/python3.11/site-packages/playwright/driver/node"

pytestmark = pytest.mark.skipif(
    shutil.which("ldd") is None or shutil.which("dpkg-query") is None,
    reason="needs ldd and dpkg (Debian/Ubuntu)",
)


def load_os_packages():
    spec = importlib.util.spec_from_file_location("os_packages", ROOT / "scripts/os_packages.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["os_packages"] = module  # dataclasses look their module up
    # No scripts/__pycache__: tests/test_deploy.py reads every file of scripts/ as text.
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


os_packages = load_os_packages()


def test_every_library_of_every_elf_file_in_the_venv_is_covered_by_the_list():
    problems = os_packages.check()
    assert problems == [], "\n".join(problems)


def test_the_venv_holds_the_elf_files_the_list_is_about():
    """The scan sees compiled extensions, psycopg2's bundled libraries and Playwright's node."""
    names = {p.name for p in os_packages.venv_elf_files()}
    assert "node" in names
    assert any(n.startswith("_psycopg.") for n in names)


def test_a_needed_package_missing_from_the_list_fails_even_when_it_is_installed(tmp_path):
    """libatomic1 is installed here (ldd resolves libatomic.so.1), yet leaving it out of the list
    must fail: a fresh Debian does not have it."""
    assert NODE.exists()
    short = tmp_path / "os-packages.txt"
    short.write_text(
        "".join(
            line + "\n"
            for line in os_packages.LIST.read_text().splitlines()
            if not line.startswith("libatomic1")
        )
    )
    problems = os_packages.check(list_path=short)
    assert any(
        p.startswith("libatomic1 is not in") and "playwright/driver/node" in p for p in problems
    ), problems


def test_a_library_that_is_not_found_fails_and_names_the_listed_package(monkeypatch):
    """On a machine without libatomic1, ldd says `not found`: the check fails and says which
    package of the list provides it."""
    real_ldd = os_packages.ldd

    def ldd_without_libatomic(path):
        resolved, missing = real_ldd(path)
        if "libatomic.so.1" in resolved:
            del resolved["libatomic.so.1"]
            missing = [*missing, "libatomic.so.1"]
        return resolved, missing

    monkeypatch.setattr(os_packages, "ldd", ldd_without_libatomic)
    problems = os_packages.check()
    assert any(
        "playwright/driver/node: libatomic.so.1 not found" in p and "package libatomic1" in p
        for p in problems
    ), problems


def test_the_list_names_every_program_the_project_runs():
    listed = os_packages.read_list()
    for package in (
        "python3-venv",
        "chromium",
        "postgresql",
        "rabbitmq-server",
        "curl",
        "prometheus",
    ):
        assert package in listed


def test_ldd_parsing(tmp_path):
    """ldd's `not found` lines and resolved lines; a static or non-ELF file needs nothing."""
    resolved, missing = os_packages.ldd(Path(sys.executable).resolve())
    assert "libc.so.6" in resolved and missing == []
    text = tmp_path / "not-elf"
    text.write_text("hello")
    assert os_packages.ldd(text) == ({}, [])
