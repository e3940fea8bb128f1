"""Every Python block of the README runs, as written, against a real store made the README's way (real MiniLM
weights and real SST-2, in a temporary working directory); the plain-xarray block raises no warning."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from helpers import invoke

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)
#: recipes for machines this one is not: a SLURM cluster (dask-jobqueue submits jobs with sbatch)
NEEDS_ELSEWHERE = {"dask_jobqueue": "it submits SLURM jobs (sbatch), which this machine does not have"}


@pytest.fixture(scope="module")
def workdir(data_dir, tmp_path_factory):
    """runs/sst2.zarr as the README's Python blocks expect it: MiniLM (6 layers × 1536 neurons), values and bits,
    a ranking and a suppression result."""
    root = tmp_path_factory.mktemp("readme")
    store = root / "runs" / "sst2.zarr"
    steps = [
        ("extract", "--model", "all-minilm-l6-v2", "--task", "sst2", "--prompts", "random", "--seeds", "0,1",
         "--prompt-length", "3", "--limit", "16", "--batch-size", "8", "--block", "8", "--keep", "both",
         "--data-dir", data_dir, "--store", store),
        ("rank", "--store", store, "--task", "sst2"),
        ("suppress", "--store", store, "--task", "sst2", "--percent", "0,1", "--random-draws", "2", "--limit", "16",
         "--data-dir", data_dir),
    ]
    for step in steps:
        result = invoke(*step)
        assert result.exit_code == 0, result.output
    return root


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(block, workdir, monkeypatch):
    for module, why in NEEDS_ELSEWHERE.items():
        if f"import {module}" in block or f"from {module}" in block:
            pytest.skip(f"this block needs {module}: {why}")
    monkeypatch.chdir(workdir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "no warning" is a claim of the README
        exec(compile(block, "README.md", "exec"), {})
