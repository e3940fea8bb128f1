"""Every `actstore ...` line of the README names a real command with real options (they run for real, on tiny
models, in the other test modules)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from actstore.cli.app import app
from helpers import invoke

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```[a-z]*\n(.*?)^```", README.read_text(), re.S | re.M)
EXAMPLES = [line.split("  #")[0].strip() for block in BLOCKS
            for line in block.replace("\\\n", " ").splitlines() if line.startswith("actstore ")]


def test_the_readme_documents_every_command():
    documented = {shlex.split(line)[1] for line in EXAMPLES}
    assert documented == set(typer.main.get_command(app).commands)


@pytest.mark.parametrize("line", EXAMPLES)
def test_readme_example_parses(line):
    """click parses every token before it acts on --help: an unknown command or option fails here."""
    result = invoke(*shlex.split(line)[1:], "--help")
    assert result.exit_code == 0 and "Usage:" in result.output, result.output
