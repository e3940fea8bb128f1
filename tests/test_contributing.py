"""CONTRIBUTING.md's commands exist as written, and the lint that CI runs is the one the pre-commit hook runs."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRIBUTING = (ROOT / "CONTRIBUTING.md").read_text()


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text().replace("$(VENV)", ".venv")
    return set(re.findall(r"^([\w./-]+):", makefile, re.M))


def test_every_make_target_it_names_exists():
    named = set(re.findall(r"`?make ([\w./-]+)", CONTRIBUTING))
    assert {"test", "lint", "bench", ".venv/.installed"} <= named
    assert named <= make_targets(), named - make_targets()


def test_the_benchmark_parts_it_names_are_the_scripts():
    documented = re.search(r"--only ([\w|]+)", CONTRIBUTING).group(1).split("|")
    usage = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert usage.returncode == 0, usage.stderr
    choices = re.search(r"--only \{([\w,]+)\}", usage.stdout).group(1).split(",")
    assert documented == choices
    large = subprocess.run(
        [sys.executable, "benchmarks/large.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert large.returncode == 0 and "--keep" in large.stdout, large.stderr
    assert "benchmarks/large.py" in (ROOT / "Makefile").read_text()


PACKAGE_OF = {"ruff": "ruff", "lint-imports": "import-linter", "mypy": "mypy"}  # the lint extra's package per tool


def test_ci_the_makefile_and_the_hook_run_the_same_lint():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci.index("make lint") < ci.index("make test")  # the lint first, then the README's test command
    recipe = re.search(r"^lint:.*\n((?:\t.+\n)+)", (ROOT / "Makefile").read_text(), re.M).group(1).split("\n")
    commands = [line.strip().replace("$(BIN)/", ".venv/bin/") for line in recipe if line.strip()]
    assert commands[:2] == [".venv/bin/ruff check .", ".venv/bin/ruff format --check ."]
    hook = (ROOT / ".pre-commit-config.yaml").read_text()
    assert "repo: local" in hook and "entry: .venv/bin/ruff check --force-exclude" in hook
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = project["project"]["optional-dependencies"]["lint"]
    for command in commands:
        tool = command.split()[0].removeprefix(".venv/bin/")
        entry = " ".join(command.split()[:2] if tool == "ruff" else command.split()[:1])  # ruff check, ruff format
        assert f"entry: {entry}" in hook, f"{entry} runs in make lint but not in the pre-commit hook"
        assert PACKAGE_OF[tool] in extra, f"{tool} runs in make lint but the lint extra does not install it"
    assert "lint" in re.search(r"-e '\.\[([\w,-]+)\]'", (ROOT / "Makefile").read_text()).group(1).split(",")
    assert project["tool"]["ruff"]["line-length"] == 120
    skipped = [o["module"] for o in project["tool"]["mypy"]["overrides"] if o.get("ignore_errors")]
    assert not skipped, f"modules mypy skips: {skipped}"
