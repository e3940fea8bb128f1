"""What a newcomer meets first: the skill table says what its numbers are, the demo shows a line per stage where
stdout is not a terminal, and the commands find the data and fail fast offline without the Makefile's variables."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from actstore import hub, tasks
from actstore.cli.output import SKILL_TABLE_NOTE, skill_table
from helpers import invoke

CHECKOUT = Path(__file__).resolve().parents[1]


def test_the_skill_table_says_what_its_predictivity_and_best_token_are():
    row = {"rank": 1, "stack": "encoder", "layer": 3, "neuron": 865, "predictivity": 0.6812, "best_token": 0}
    console = Console(width=200, record=True)
    console.print(skill_table("top skill neurons of sst2", [row]))
    text = " ".join(console.export_text().split())  # the note wraps at the table's width
    assert "predictivity" in text and "best token" in text and "0.6812" in text
    assert SKILL_TABLE_NOTE in text  # a footnote under the table: both columns are named by what they reduce
    assert "mean over seeds of each seed's highest" in SKILL_TABLE_NOTE
    assert "best for the most seeds" in SKILL_TABLE_NOTE


def test_without_a_data_dir_a_command_finds_the_shared_data_beside_the_checkout(
    tiny_model_dir, data_dir, tmp_path, monkeypatch
):
    assert tasks.default_data_dir() == (CHECKOUT.parent / "shared" / "data").resolve() == data_dir.resolve()
    monkeypatch.delenv("ACTSTORE_DATA_DIR", raising=False)  # what `make` sets, and a newcomer's shell does not
    monkeypatch.chdir(tmp_path)  # anywhere: not the checkout, no ../shared/data beside the working directory
    result = invoke(
        "extract",
        "--model",
        tiny_model_dir("bert"),
        "--task",
        "sst2",
        "--split",
        "validation",
        "--prompts",
        "random",
        "--seeds",
        "0",
        "--prompt-length",
        "2",
        "--limit",
        "4",
        "--store",
        "s.zarr",
    )
    assert result.exit_code == 0, result.output
    assert "sst2/validation: 4 examples × 1 seeds" in result.output


def test_an_unknown_model_fails_in_seconds_offline_without_hf_hub_offline(tmp_path):
    """No HF_HUB_OFFLINE and no route to the hub (this sandbox's case, and a laptop's on a train): one error line,
    not 30–45 s of retries first."""
    if hub.reachable():
        pytest.skip("the hub answers here: nothing to fail on")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "ACTSTORE_DATA_DIR")}
    (tmp_path / "train.csv").write_text("text,label\ngood,1\nbad,0\n")
    (tmp_path / "dev.csv").write_text("text,label\nfine,1\npoor,0\n")
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "actstore",
            "extract",
            "--model",
            "nosuch-org/nosuch-model",
            "--task",
            "mine",
            "--data-files",
            "train=train.csv,validation=dev.csv",
            "--label-words",
            "bad,good",
            "--store",
            "s.zarr",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown model 'nosuch-org/nosuch-model'"), done.stderr
    assert elapsed < 10, f"{elapsed:.1f} s"
    assert not (tmp_path / "s.zarr").exists()


def test_the_hub_check_leaves_a_set_offline_flag_and_a_proxy_alone(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not hub.offline_unless_reachable() and os.environ["HF_HUB_OFFLINE"] == "0"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert not hub.offline_unless_reachable() and "HF_HUB_OFFLINE" not in os.environ
    monkeypatch.delenv("HTTPS_PROXY")
    for name in ("https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens, refused at once
    assert not hub.reachable()
    assert hub.offline_unless_reachable() and os.environ["HF_HUB_OFFLINE"] == "1"


def test_plain_progress_is_a_line_at_the_start_each_tenth_each_milestone_and_the_end():
    from actstore.cli.output import plain_steps

    lines = []
    with plain_steps("tune toy", 20, lambda text, **_: lines.append(text)) as advance:
        advance(0, "step 0, dev accuracy 0.5000", True)
        for step in range(1, 21):
            advance(1, f"step {step}")
    assert lines[0].startswith("tune toy: 0/20 · started") and lines[-1].startswith("tune toy: 20/20 · done")
    assert lines[1].startswith("tune toy: 0/20 · step 0, dev accuracy 0.5000")
    assert [line.split(" · ")[1] for line in lines[2:-1]] == [f"step {s}" for s in range(2, 21, 2)]


def test_run_prints_a_line_per_stage_where_stderr_is_no_terminal(tiny_model_dir, data_dir, tmp_path):
    from helpers import experiment_toml

    file = tmp_path / "exp.toml"
    file.write_text(experiment_toml(tmp_path / "exp.zarr", tiny_model_dir("bert"), data_dir, max_steps=4, eval_every=2))
    result = invoke("run", file)  # the test runner's stderr is no terminal: plain lines, not a redrawn bar
    assert result.exit_code == 0, result.output
    text = result.output
    assert "tune sst2: 0/8 · started" in text
    for seed, k in ((0, 1), (1, 2)):
        for step in (0, 2, 4):
            assert f"seed {seed} ({k} of 2) step {step}/4 dev accuracy " in text
    assert "extract sst2/train: 0/" in text and "extract sst2/validation: 24/24 · done" in text
    assert "rank sst2: 1/1 · done" in text
