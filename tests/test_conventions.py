"""The command line's conventions (issue 11): a fast start that imports torch, transformers and matplotlib only
where a command uses them, --version and `python -m actstore`, shell completion, fixed choices listed in help and
refused as usage errors, --json on every command (errors as {"error": ...}), "already complete" when nothing was
left to do, -v/-q through logging, and prompts exported as .npy or as PEFT checkpoints that name a hub id."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

import actstore
from actstore.cli.app import app
from actstore.cli.output import configure_logging
from actstore.store import Store
from helpers import invoke, runner

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "matplotlib")

#: run the console script's main() in a fresh interpreter, then list the heavy modules it imported
PROBE = """
import json, sys
from actstore_entry import main
sys.argv = ["actstore", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def fresh(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def heavy_imports(*command: str) -> tuple[list[str], str, float]:
    """The heavy modules ``actstore <command>`` imported, its stdout, and its wall time (printed, never asserted:
    the machine's load decides it)."""
    start = time.perf_counter()
    done = fresh("-c", PROBE.format(heavy=HEAVY), json.dumps(command))
    elapsed = time.perf_counter() - start
    print(f"actstore {' '.join(command)}: {elapsed:.2f} s")
    return json.loads(done.stderr.strip().splitlines()[-1]), done.stdout, elapsed


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("conventions") / "empty.zarr"
    Store(path, mode="a")
    return path


def test_help_version_and_info_import_no_torch_transformers_or_matplotlib(empty_store):
    for command in (
        ("--help",),
        ("--version",),
        ("extract", "--help"),
        ("suppress", "--help"),
        ("report", "--help"),
        ("info", str(empty_store)),
        ("info", str(empty_store), "--json"),
    ):
        imported, stdout, _ = heavy_imports(*command)
        assert imported == [], (command, imported)
        assert stdout.strip(), command
    _, stdout, _ = heavy_imports("info", str(empty_store), "--json")
    assert json.loads(stdout)["prompts"] == {}


def test_importing_actstore_loads_the_store_only_when_asked():
    done = fresh(
        "-c",
        "import sys, actstore; print('zarr' in sys.modules, 'dask' in sys.modules); "
        "actstore.open_store; print('zarr' in sys.modules)",
    )
    assert done.stdout.split() == ["False", "False", "True"], done.stderr
    assert "open_store" in dir(actstore) and actstore.Store is Store


def test_version_from_the_console_script_and_python_m():
    from importlib.metadata import version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "actstore.__version__"}
    expected = actstore.__version__
    assert version("actstore") == expected
    assert invoke("--version").output.strip() == f"actstore {expected}"
    done = fresh("-m", "actstore", "--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"actstore {expected}"), done.stderr
    done = fresh("-m", "actstore", "info", "no/such/store.zarr")
    assert done.returncode == 1 and done.stderr.strip() == "error: no actstore store at no/such/store.zarr"


def test_shell_completion_completes_commands_and_choices():
    assert "--install-completion" in invoke("--help").output
    # the script --show-completion prints (which detects the shell from the process tree: not under every CI runner)
    script = fresh("-m", "actstore", env={"_ACTSTORE_COMPLETE": "source_bash"})
    assert script.returncode == 0 and "_ACTSTORE_COMPLETE=complete_bash" in script.stdout, script.stderr

    def complete(words: str) -> list[str]:
        cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
        done = fresh(
            "-m", "actstore", env={"_ACTSTORE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
        )
        return done.stdout.split()

    assert complete("actstore sup") == ["suppress"]
    assert complete("actstore suppress --mode ") == ["zero", "noise", "mean"]


#: (command, option, the choices help must list, the library's tuple the CLI must equal)
CHOICES = [
    (("extract",), "--dtype", ("float16", "float32"), "actstore.extraction:DTYPES"),
    (("extract",), "--keep", ("acts", "bits", "both"), "actstore.extraction:KEEPS"),
    (("extract",), "--layout", ("pt", "sn", "peft", "causal", "prefix"), "actstore.layouts:LAYOUTS"),
    (("tune",), "--layout", ("pt", "sn", "peft", "causal", "prefix"), "actstore.layouts:LAYOUTS"),
    (("suppress",), "--layout", ("pt", "sn", "peft", "causal", "prefix"), "actstore.layouts:LAYOUTS"),
    (("transfer",), "--layout", ("pt", "sn", "peft", "causal", "prefix"), "actstore.layouts:LAYOUTS"),
    *[
        ((command,), "--model-dtype", ("float32", "bfloat16", "float16"), "actstore.models:MODEL_DTYPES")
        for command in ("tune", "eval", "extract", "suppress", "transfer")
    ],
    *[
        ((command,), "--device-map", ("auto",), "actstore.models:DEVICE_MAPS")
        for command in ("tune", "eval", "extract", "suppress", "transfer")
    ],
    (("rank",), "--read", ("acts", "bits"), "actstore.ranking:READS"),
    (("suppress",), "--mode", ("zero", "noise", "mean"), "actstore.suppression:MODES"),
    (("suppress",), "--scope", ("layer", "global"), "actstore.masks:SCOPES"),
    (("compare-adversarial",), "--scope", ("layer", "global"), "actstore.masks:SCOPES"),
    (("correlate",), "--normalize", ("none", "zscore"), "actstore.analysis:NORMALIZE"),
    (("prompts", "export"), "--format", ("pt", "npy", "peft", "robust-neurons"), "actstore.prompts:FORMATS"),
    (("prompts", "import"), "--from", ("files", "robust-neurons"), "actstore.prompts:SOURCES"),
]


def _library(where: str) -> tuple:
    import importlib

    module, name = where.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(
    "command, option, choices, library", CHOICES, ids=[f"{' '.join(c)} {o}" for c, o, _, _ in CHOICES]
)
def test_fixed_choices_are_listed_and_a_wrong_one_is_a_usage_error(command, option, choices, library):
    assert tuple(choices) == tuple(_library(library))
    # 120 columns: a long choice list stays on a line
    listed = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "120"}).output
    assert "|".join(choices) in listed.replace(" ", "").replace("│", "").replace("\n", ""), listed
    result = invoke(*command, option, "bogus")
    assert result.exit_code == 2 and option in result.output and "bogus" in result.output, result.output


def test_the_clis_spelled_out_defaults_equal_the_librarys():
    from actstore import analysis, masks, suppression
    from actstore.cli import analyze, suppress

    assert tuple(map(float, suppress.DEFAULT_PERCENTS)) == masks.DEFAULT_PERCENTS
    assert tuple(map(float, analyze.ADVERSARIAL_PERCENTS)) == analysis.ADVERSARIAL_PERCENTS
    assert get_args(suppress.Mode) == suppression.MODES and get_args(analyze.Normalize) == analysis.NORMALIZE


def _commands(group, prefix=()):
    import typer.main

    click_group = typer.main.get_command(group) if not hasattr(group, "commands") else group
    for name, command in click_group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_takes_json():
    commands = dict(_commands(app))
    assert {("info",), ("extract",), ("prompts", "export"), ("report",)} <= set(commands)
    missing = [
        " ".join(name)
        for name, command in commands.items()
        if "--json" not in {opt for p in command.params for opt in p.opts}
    ]
    assert missing == []


@pytest.mark.parametrize(
    "args",
    [
        ("info", "{missing}"),
        ("verify", "{missing}"),
        ("rank", "--store", "{missing}", "--task", "sst2"),
        ("report", "--store", "{missing}", "--out", "{tmp}/r"),
        ("prompts", "export", "--store", "{missing}", "--task", "sst2", "--out", "{tmp}/r"),
        ("correlate", "--store", "{missing}", "--tasks", "a,b"),
        ("run", "{tmp}/no.toml"),
    ],
    ids=lambda a: a[0] + (" " + a[1] if a[0] == "prompts" else ""),
)
def test_an_error_under_json_is_one_json_document_and_creates_nothing(args, tmp_path):
    missing = tmp_path / "typo.zarr"
    result = invoke(*(a.format(missing=missing, tmp=tmp_path) for a in args), "--json")
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert list(payload) == ["error"] and isinstance(payload["error"], str) and payload["error"], payload
    assert not missing.exists() and not (tmp_path / "r").exists()


def test_verbose_and_quiet_set_the_logging_level(empty_store, capsys):
    result = invoke("-v", "info", empty_store)
    assert result.exit_code == 0 and "info: info: done in" in result.stderr, result.stderr
    assert "done in" not in invoke("info", empty_store).stderr
    try:
        for flags, shown in (
            ((0, True), ["error"]),
            ((0, False), ["warning", "error"]),
            ((1, False), ["info", "warning", "error"]),
            ((2, False), ["debug", "info", "warning", "error"]),
        ):
            configure_logging(*flags)
            capsys.readouterr()
            log = logging.getLogger("actstore.test")
            for level in ("debug", "info", "warning", "error"):
                getattr(log, level)("%s line", level)
            lines = capsys.readouterr().err.splitlines()
            assert lines == [f"{level}: {level} line" for level in shown], (flags, lines)
    finally:
        configure_logging(0, False)


# ---- what needs a model: "already complete", --json of extract and prompts, .npy and PEFT exports


@pytest.fixture(scope="module")
def extracted(tiny_model_dir, data_dir, tmp_path_factory) -> tuple[Path, list[str]]:
    store = tmp_path_factory.mktemp("complete") / "s.zarr"
    args = [
        "extract",
        "--model",
        str(tiny_model_dir("roberta")),
        "--task",
        "sst2",
        "--store",
        str(store),
        "--prompts",
        "random",
        "--seeds",
        "0",
        "--prompt-length",
        "3",
        "--limit",
        "8",
        "--batch-size",
        "4",
        "--block",
        "4",
        "--data-dir",
        str(data_dir),
    ]
    first = invoke(*args, "--json")
    assert first.exit_code == 0, first.output
    payload = json.loads(first.stdout)
    assert [s["split"] for s in payload["splits"]] == ["train", "validation"]
    assert not any(s["already_complete"] for s in payload["splits"])
    assert all(s["examples_per_s"] > 0 and s["n_examples"] == 8 for s in payload["splits"])
    return store, args


def test_extract_says_already_complete_instead_of_a_rate(extracted):
    _, args = extracted
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    lines = [line for line in again.stdout.splitlines() if line.strip()]
    assert len(lines) == 2 and all(line.endswith("(already complete)") for line in lines), again.stdout
    assert "ex/s" not in again.stdout
    payload = json.loads(invoke(*args, "--json").stdout)
    assert [(s["already_complete"], s["examples_per_s"]) for s in payload["splits"]] == [(True, None)] * 2


def test_prompts_export_npy_round_trips_and_peft_names_the_hub_id(tmp_path):
    from actstore.prompts import PromptSet

    store = tmp_path / "minilm.zarr"
    np.save(tmp_path / "p.npy", np.random.default_rng(0).standard_normal((2, 3, 384), dtype=np.float32))
    imported = invoke(
        "prompts",
        "import",
        str(tmp_path / "p.npy"),
        "--task",
        "sst2",
        "--model",
        "all-minilm-l6-v2",
        "--store",
        store,
        "--json",
    )
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout) | {"store": ""} == {
        "task": "sst2",
        "store": "",
        "seeds": [0, 1],
        "n_tokens": 3,
        "source": "files:p.npy",
        "layout": "pt",
        "seed_names": [],
        "files": [],
    }
    exported = invoke(
        "prompts", "export", "--task", "sst2", "--store", store, "--format", "npy", "--out", tmp_path / "npy", "--json"
    )
    assert exported.exit_code == 0, exported.output
    written = json.loads(exported.stdout)["written"]
    assert [Path(p).name for p in written] == ["seed0.npy", "seed1.npy"]
    back = PromptSet.from_files([Path(p) for p in written], None)
    np.testing.assert_array_equal(back.vectors, np.load(tmp_path / "p.npy"))
    assert (
        invoke(
            "prompts", "export", "--task", "sst2", "--store", store, "--format", "peft", "--out", tmp_path / "peft"
        ).exit_code
        == 0
    )
    config = json.loads((tmp_path / "peft" / "seed1" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_run_and_tune_say_already_complete_the_second_time(tiny_model_dir, data_dir, tmp_path):
    from helpers import experiment_toml

    path = tmp_path / "exp.toml"
    path.write_text(
        experiment_toml(tmp_path / "exp.zarr", tiny_model_dir("bert"), data_dir, seeds=(0,), max_steps=2, eval_every=1)
    )
    first = invoke("run", path, "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["already_complete"] is False
    again = invoke("run", path)
    assert again.exit_code == 0 and again.stdout.rstrip().endswith("; already complete"), again.output
    tune = (
        "tune",
        "--model",
        tiny_model_dir("bert"),
        "--task",
        "sst2",
        "--store",
        tmp_path / "t.zarr",
        "--seeds",
        "0",
        "--prompt-length",
        "3",
        "--max-steps",
        "2",
        "--eval-every",
        "1",
        "--batch-size",
        "4",
        "--max-length",
        "32",
        "--limit",
        "8",
        "--data-dir",
        data_dir,
    )
    first, again = invoke(*tune, "--json"), invoke(*tune)
    assert first.exit_code == 0 and json.loads(first.stdout)["already_complete"] is False, first.output
    assert again.exit_code == 0 and again.stdout.rstrip().endswith("(already complete)"), again.output


def test_every_kind_of_result_stored_is_in_the_registry_with_a_command_that_exists():
    """``results.KINDS`` is what ``info`` and the report learn the kinds from: a kind stored but not registered, or
    registered with a command the CLI does not have, would be listed without saying what makes it."""
    import re

    from actstore.results import KINDS
    from actstore.tuning import SEED_KIND

    source = "\n".join(p.read_text() for p in (ROOT / "actstore").rglob("*.py"))
    stored = set(re.findall(r'put_result\("([\w-]+)"', source)) | {SEED_KIND}
    assert stored and stored <= KINDS.keys(), stored - KINDS.keys()
    commands = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    for kind in KINDS.values():
        assert kind.made_by.split()[0] == "actstore" and kind.made_by.split()[1] in commands, kind


def test_info_says_what_each_kind_of_result_holds(tmp_path):
    from actstore.results import KINDS

    store = Store(tmp_path / "s.zarr", mode="a")
    import xarray as xr

    with store.writing():
        store.put_result("transfer", "a,b", {"kind": "transfer"}, xr.Dataset({"x": ("i", np.arange(2.0))}))
        store.put_result("newer-kind", "x", {"kind": "newer-kind"}, xr.Dataset({"x": ("i", np.arange(2.0))}))
    shown = invoke("info", tmp_path / "s.zarr")
    assert shown.exit_code == 0, shown.output
    assert f"results/transfer: a,b; {KINDS['transfer'].holds} ({KINDS['transfer'].made_by})" in shown.output
    assert "results/newer-kind: x; a kind of result this version does not know" in shown.output
