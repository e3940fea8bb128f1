"""Every command and code block of the README and of the documentation site (docs/**/*.md) runs, and the tutorial
notebook executes.

What each fenced block's language means here:

- ``sh``: every line that calls ``actstore`` (after ``VAR=value`` assignments or a launcher such as torchrun)
  parses with the real CLI; a block after the line ``<!-- test: runs -->`` runs for real, in bash, in a copy of the
  repository's root that holds a small demo store (``runs/demo.zarr``: MiniLM on Rotten Tomatoes, as ``make demo``
  makes it, only smaller) and ``../shared/data`` beside it.
- ``python``: runs against that store, warnings raised as errors ("no warning" is a claim of the docs); a block
  after ``<!-- test: skip (why) -->`` does not run, saying why.
- ``text``: output, layouts and other text; never run.

A block without a language fails, so every block says which it is.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import typer

from actstore.cli.app import app
from helpers import invoke

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: a fence, the marker line before it if any, its language and its body
FENCE = re.compile(r"(?:^<!-- test: (?P<mark>[^\n]*?) -->\n)?^```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$", re.S | re.M)
LANGUAGES = {"sh", "python", "text"}
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def blocks(lang: str | None = None) -> list[tuple[str, str | None, str]]:
    """(where, marker, body) of every fenced block of every page, of one language or of all."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            if lang is None or match["lang"] == lang:
                line = text.count("\n", 0, match.start("body"))
                found.append((f"{page.relative_to(ROOT)}:{line}", match["mark"], match["body"]))
    return found


def actstore_lines() -> list[tuple[str, list[str]]]:
    """(where, the arguments after ``actstore``) of every command line of the sh blocks."""
    lines = []
    for where, _, body in blocks("sh"):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split("  #")[0])
            if "actstore" in words:
                start = words.index("actstore")
                if all(ASSIGNMENT.match(w) for w in words[:start]) or words[0] in {"torchrun", "srun"}:
                    lines.append((where, words[start + 1 :]))
    return lines


LINES = actstore_lines()


def test_every_block_says_what_it_is():
    languages = {(where, lang) for page in PAGES for where, lang in _fences(page)}
    assert {lang for _, lang in languages} <= LANGUAGES, sorted(languages)
    marks = {mark for _, mark, _ in blocks()} - {None}
    assert all(mark == "runs" or mark.startswith("skip (") for mark in marks), marks


def _fences(page: Path):
    text = page.read_text()
    for match in FENCE.finditer(text):
        yield f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, match.start())}", match["lang"]
    assert text.count("\n```") % 2 == 0, f"{page}: a fence is not closed"


def test_the_docs_document_every_command():
    documented = {args[0] for _, args in LINES}
    assert documented == set(typer.main.get_command(app).commands)


def test_the_readme_starts_with_the_two_set_up_commands_and_stays_short():
    readme = (ROOT / "README.md").read_text()
    first = FENCE.search(readme)
    assert [line.split("#")[0].strip() for line in first["body"].splitlines()] == ["make demo", "make test"]
    assert len(readme.splitlines()) <= 200
    assert re.search(r"^#+ The demo$", readme, re.M), "the tour keeps a paragraph about the demo"


@pytest.mark.parametrize("where, args", LINES, ids=[f"{w} {' '.join(a[:2])}" for w, a in LINES])
def test_example_parses(where, args):
    """click parses every token before it acts on --help: an unknown command or option fails here."""
    result = invoke(*args, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output, (where, result.output)


# ---- the blocks that run, on a small demo store


@pytest.fixture(scope="module")
def workdir(data_dir, tmp_path_factory) -> Path:
    """A copy of the repository's root as the tour expects it after ``make demo``: ``runs/demo.zarr`` (real MiniLM,
    6 layers × 1536 neurons, Rotten Tomatoes, values and bits, a ranking and a suppression result; random prompts of
    3 tokens on 16 examples instead of tuned ones), ``.venv`` and ``data/`` linked to this checkout's, and
    ``../shared/data`` beside it."""
    top = tmp_path_factory.mktemp("docs")
    root = top / "main"
    (root / "runs").mkdir(parents=True)
    (top / "shared").mkdir()
    (top / "shared" / "data").symlink_to(data_dir)
    (root / "data").symlink_to(ROOT / "data")
    if sys.prefix != sys.base_prefix:
        (root / ".venv").symlink_to(sys.prefix)
    store = root / "runs" / "demo.zarr"
    steps = [
        (
            "extract",
            "--model",
            "all-minilm-l6-v2",
            "--task",
            "rotten_tomatoes",
            "--prompts",
            "random",
            "--seeds",
            "0,1",
            "--prompt-length",
            "3",
            "--limit",
            "16",
            "--batch-size",
            "8",
            "--block",
            "8",
            "--keep",
            "both",
            "--store",
            store,
        ),
        ("rank", "--store", store, "--task", "rotten_tomatoes"),
        (
            "suppress",
            "--store",
            store,
            "--task",
            "rotten_tomatoes",
            "--percent",
            "0,1",
            "--random-draws",
            "2",
            "--limit",
            "16",
        ),
    ]
    for step in steps:
        result = invoke(*step)
        assert result.exit_code == 0, result.output
    return root


SH_RUNS = [(where, body) for where, mark, body in blocks("sh") if mark == "runs"]
PYTHON = [(where, mark, body) for where, mark, body in blocks("python")]


def test_the_readme_has_blocks_that_run():
    assert sum(where.startswith("README.md") for where, _ in SH_RUNS) >= 1
    assert sum(where.startswith("README.md") for where, _, _ in PYTHON) >= 1


@pytest.mark.parametrize("where, body", SH_RUNS, ids=[w for w, _ in SH_RUNS])
def test_shell_block_runs_as_written(where, body, workdir):
    """In a plain shell: no ACTSTORE_DATA_DIR or HF_HUB_OFFLINE beyond what the block sets itself."""
    if not (workdir / ".venv").exists():
        pytest.skip("the tests do not run in a virtual environment, so there is no .venv to activate")
    env = {k: v for k, v in os.environ.items() if k not in {"ACTSTORE_DATA_DIR", "HF_HUB_OFFLINE", "VIRTUAL_ENV"}}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(sys.prefix))
    done = subprocess.run(["bash", "-e", "-c", body], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (where, done.stdout[-3000:], done.stderr[-3000:])


@pytest.mark.parametrize("where, mark, body", PYTHON, ids=[w for w, _, _ in PYTHON])
def test_python_block_runs(where, mark, body, workdir, monkeypatch):
    if mark:
        pytest.skip(f"{where}: marked {mark}")
    monkeypatch.chdir(workdir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(body, where, "exec"), {})


def test_the_tutorial_notebook_runs(workdir, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs the docs extra")
    nbclient = pytest.importorskip("nbclient", reason="the notebook test needs the docs extra")
    notebook = nbformat.read(ROOT / "docs" / "tutorial.ipynb", as_version=4)
    monkeypatch.setenv("ACTSTORE_TUTORIAL_STORE", str(workdir / "runs" / "demo.zarr"))
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "docs")}}
    )
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the tutorial draws one figure"
