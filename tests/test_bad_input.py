"""Bad input, command by command (issue 8): one `error:` line and exit 1 (or, for what typer checks, a usage error
naming the option and exit 2), never a traceback, and the store byte-for-byte as it was, or not created at all.

Cases are (base command, extra arguments, exit code, a fragment the error must hold). Extra arguments are appended
to a valid base command (click keeps the last value of a repeated option); ``{store}``, ``{model}``, ``{data}``
and ``{files}`` are filled in per run. Commands that write a store run every case twice: against the module's
store (its digest must not change) and against a path where no store exists (none may appear).
"""

from __future__ import annotations

import json
import re
import string
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import zarr
from hypothesis import HealthCheck, given, settings, strategies as st

from actstore import tasks
from actstore.errors import ActstoreError
from actstore.experiment import Experiment
from actstore.store import Store
from actstore.store.backends import open_backend
from helpers import digest, experiment_toml, invoke

MINE = ("--task", "mine", "--label-words", "bad,good")
BASES = {
    "extract": (
        "extract",
        "--model",
        "{model}",
        "--task",
        "sst2",
        "--store",
        "{store}",
        "--split",
        "validation",
        "--prompts",
        "random",
        "--seeds",
        "0,1",
        "--prompt-length",
        "4",
        "--limit",
        "24",
        "--batch-size",
        "4",
        "--block",
        "8",
        "--data-dir",
        "{data}",
    ),
    "extract-mine": (
        "extract",
        "--model",
        "{model}",
        *MINE,
        "--store",
        "{store}",
        "--split",
        "validation",
        "--prompts",
        "random",
        "--seeds",
        "0,1",
        "--prompt-length",
        "4",
        "--batch-size",
        "4",
        "--block",
        "8",
    ),
    "extract-stored": (
        "extract",
        "--model",
        "{model}",
        "--task",
        "sst2",
        "--store",
        "{store}",
        "--split",
        "validation",
        "--limit",
        "24",
        "--batch-size",
        "4",
        "--block",
        "8",
        "--data-dir",
        "{data}",
    ),
    "tune": (
        "tune",
        "--model",
        "{model}",
        *MINE,
        "--store",
        "{store}",
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
        "--data-files",
        "train={files}/good.jsonl,validation={files}/good_dev.jsonl",
    ),
    "import": ("prompts", "import", "--task", "imported", "--store", "{store}", "--model", "{model}"),
    "eval": (
        "eval",
        "--model",
        "{model}",
        "--task",
        "sst2",
        "--store",
        "{store}",
        "--limit",
        "8",
        "--max-length",
        "32",
        "--data-dir",
        "{data}",
    ),
    "suppress": (
        "suppress",
        "--store",
        "{store}",
        "--task",
        "sst2",
        "--percent",
        "0,50",
        "--random-draws",
        "2",
        "--limit",
        "8",
        "--max-length",
        "32",
        "--data-dir",
        "{data}",
    ),
    "rank": ("rank", "--store", "{store}", "--task", "sst2"),
    "transfer": (
        "transfer",
        "--store",
        "{store}",
        "--tasks",
        "sst2,qnli",
        "--model",
        "{model}",
        "--limit",
        "6",
        "--max-length",
        "32",
        "--data-dir",
        "{data}",
    ),
    "correlate": ("correlate", "--store", "{store}"),
    "compare": ("compare-adversarial", "--store", "{store}", "--task", "adv_sst2"),
    "report": ("report", "--store", "{store}"),
    "export": ("prompts", "export", "--task", "sst2", "--store", "{store}"),
    "info": ("info", "{store}"),
    "verify": ("verify", "{store}"),
}

#: what the data files of the `files` fixture hold: valid ones, and one defect each
FILES = {
    "good.jsonl": "".join(
        json.dumps({"text": f"a {w} movie", "label": i % 2}) + "\n"
        for i, w in enumerate(["bad", "good", "dull", "great", "boring", "fine", "awful", "funny"])
    ),
    "good_dev.jsonl": "".join(
        json.dumps({"text": f"the {w} film", "label": i % 2}) + "\n"
        for i, w in enumerate(["poor", "nice", "slow", "grand"])
    ),
    "no_label.jsonl": '{"text": "a good movie", "label": 1}\n{"text": "a bad movie"}\n',
    "no_text.jsonl": '{"text": "a good movie", "label": 1}\n{"label": 0}\n',
    "list.jsonl": '{"text": "a good movie", "label": 1}\n\n["a bad movie", 0]\n',
    "scalar.jsonl": '{"text": "a good movie", "label": 1}\n"a bad movie"\n',
    "null_text.jsonl": '{"text": "a good movie", "label": 1}\n{"text": null, "label": 0}\n',
    "null_label.jsonl": '{"text": "a good movie", "label": 1}\n{"text": "a bad movie", "label": null}\n',
    "number_text.jsonl": '{"text": "a good movie", "label": 1}\n{"text": 5, "label": 0}\n',
    "bool_label.jsonl": '{"text": "a good movie", "label": 1}\n{"text": "a bad movie", "label": true}\n',
    "broken.jsonl": '{"text": "a good movie", "label": 1}\n{"text": "a bad movie", "label": 0\n',
    "unknown_label.csv": "text,label\na good movie,1\na bad movie,7\n",
    "short_row.csv": "text,label\na good movie,1\na bad movie\n",
    "unknown_label.tsv": "text\tlabel\na good movie\t1\na bad movie\tneutral\n",
    "empty.csv": "",
    "header.csv": "text,label\n",
    "blank.jsonl": "\n  \n",
    "one_class.csv": "text,label\na good show,1\na great show,1\na fine show,1\n",
}

#: (file, fragment of the error): each names the file and the line (or says the file is empty)
DATA_CASES = [
    ("no_label.jsonl", "no_label.jsonl line 2: no field(s) ['label']"),
    ("no_text.jsonl", "no_text.jsonl line 2: no field(s) ['text']"),
    ("list.jsonl", "list.jsonl line 3: a record must be a JSON object, got list"),
    ("scalar.jsonl", "scalar.jsonl line 2: a record must be a JSON object, got str"),
    ("null_text.jsonl", "null_text.jsonl line 2: field 'text' is null"),
    ("null_label.jsonl", "null_label.jsonl line 2: field 'label' is null"),
    ("number_text.jsonl", "number_text.jsonl line 2: text field 'text' holds int 5"),
    ("bool_label.jsonl", "bool_label.jsonl line 2 is not one of the 2 classes"),
    ("broken.jsonl", "broken.jsonl line 2"),
    ("unknown_label.csv", "label '7' in {files}/unknown_label.csv line 3"),
    ("short_row.csv", "short_row.csv line 3: 1 field, but the header (line 1) has 2"),
    ("unknown_label.tsv", "label 'neutral' in {files}/unknown_label.tsv line 3"),
    ("empty.csv", "is empty ({files}/empty.csv)"),
    ("header.csv", "is empty ({files}/header.csv)"),
    ("blank.jsonl", "is empty ({files}/blank.jsonl)"),
    ("one_class.csv", "holds only examples of class '1' (3): ranking and tuning need at least two classes"),
]

#: commands that write a store: each case runs against the module's store and against a path without one
WRITERS = [
    # extract: sizes and lengths
    ("extract", ("--batch-size", "0"), 2, "--batch-size"),
    ("extract", ("--batch-size", "-8"), 2, "--batch-size"),
    ("extract", ("--batch-size", "x"), 2, "--batch-size"),
    ("extract", ("--block", "0"), 2, "--block"),
    ("extract", ("--block", "-32"), 2, "--block"),
    ("extract", ("--block", "6"), 1, "block (6) must be a multiple of batch size (4)"),
    ("extract", ("--max-length", "0"), 2, "--max-length"),
    ("extract", ("--max-length", "-1"), 2, "--max-length"),
    ("extract", ("--max-length", "2", "--layout", "peft"), 1, "max-length 2 leaves no room for the text"),
    ("extract", ("--max-length", "400"), 1, "400 text tokens exceed the 300 positions"),
    ("extract", ("--max-length", "400", "--layout", "peft"), 1, "4 prompt tokens + 400 text tokens exceed"),
    ("extract", ("--layout", "nope"), 2, "--layout"),
    ("extract", ("--limit", "0"), 2, "--limit"),
    ("extract", ("--limit", "-5"), 2, "--limit"),
    ("extract", ("--prompt-length", "0"), 1, "prompt length must be positive"),
    ("extract", ("--prompt-length", "-3"), 1, "prompt length must be positive"),
    ("extract", ("--prompt-length", "400", "--layout", "sn"), 1, "400 prompt tokens + 128 text tokens exceed"),
    ("extract", ("--dtype", "float64"), 2, "--dtype"),
    # extract: seeds, prompts, splits, model, task, device
    ("extract", ("--seeds", "-1"), 1, "seeds must be integers from 0"),
    ("extract", ("--seeds", ""), 1, "give at least one seed"),
    ("extract", ("--seeds", "0,a"), 1, "--seeds takes comma-separated integers"),
    ("extract", ("--seeds", "1,1"), 1, "duplicate seeds"),
    ("extract", ("--seeds", "99999999999"), 1, "seeds must be integers from 0"),
    ("extract", ("--prompts", "{files}/missing.pt"), 1, "prompt file not found"),
    ("extract", ("--prompts", "{files}/narrow.pt", "--seeds", "0"), 1, "prompt hidden size 7 does not match"),
    ("extract", ("--prompts", "{files}/garbage.pt"), 1, "cannot read prompt file"),
    ("extract", ("--prompts", "{files}/p0.pt", "--seeds", "0,1"), 1, "1 prompts were read but 2 seeds were given"),
    ("extract", ("--prompts", "{files}/p0.pt", "--seeds", "-4"), 1, "seeds must be integers from 0"),
    ("extract", ("--split", "nope"), 1, "unknown split(s) ['nope']"),
    ("extract", ("--split", ","), 1, "unknown split(s)"),
    ("extract", ("--model", "no-such-model-xyz"), 1, "unknown model 'no-such-model-xyz'"),
    ("extract", ("--task", "nope"), 1, "unknown task 'nope'"),
    ("extract", ("--device", "foo"), 1, "unknown device 'foo'"),
    ("extract", ("--device", "cuda:7"), 1, "device 'cuda:7' is not available"),
    ("extract", ("--data-files", "foo={files}/good.jsonl"), 1, "unknown split(s) ['foo']"),
    ("extract", ("--data-files", "validation={files}/absent.csv"), 1, "data file not found"),
    ("extract", ("--data-files", "validation={files}/good.jsonl", "--text-field", "nope"), 1, "no field(s) ['nope']"),
    ("extract", ("--label-words", "good"), 1, "needs one label word per class"),
    ("extract-mine", ("--label-words", "bad,bad", "--data-files", "validation={files}/good.jsonl"), 1, "share a token"),
    (
        "extract-mine",
        ("--data-files", "validation={files}/good.jsonl", "--limit", "1"),
        1,
        "holds only examples of class",
    ),
    # the second split's plan fails: nothing written
    (
        "extract-mine",
        ("--split", "train,validation", "--data-files", "train={files}/good.jsonl,validation={files}/one_class.csv"),
        1,
        "split 'validation' of task 'mine'",
    ),
    # extract: rows of the user's files
    *[("extract-mine", ("--data-files", f"validation={{files}}/{name}"), 1, fragment) for name, fragment in DATA_CASES],
    # tune
    ("tune", ("--seeds", "-1"), 1, "seeds must be integers from 0"),
    ("tune", ("--seeds", ""), 1, "give at least one seed"),
    ("tune", ("--seeds", "x"), 1, "--seeds takes comma-separated integers"),
    ("tune", ("--seeds", "0,0"), 1, "duplicate seeds"),
    ("tune", ("--batch-size", "0"), 2, "--batch-size"),
    ("tune", ("--batch-size", "-8"), 2, "--batch-size"),
    ("tune", ("--grad-accum", "0"), 2, "--grad-accum"),
    ("tune", ("--grad-accum", "3"), 1, "multiple of --grad-accum"),
    ("tune", ("--max-steps", "0"), 2, "--max-steps"),
    ("tune", ("--eval-every", "-1"), 2, "--eval-every"),
    ("tune", ("--patience", "0"), 2, "--patience"),
    ("tune", ("--max-length", "0"), 2, "--max-length"),
    ("tune", ("--max-length", "2", "--layout", "peft"), 1, "max-length 2 leaves no room for the text"),
    ("tune", ("--lr", "-0.1"), 2, "--lr"),
    ("tune", ("--lr", "nan"), 2, "--lr"),
    ("tune", ("--lr", "0"), 1, "lr must be a positive number, got 0.0"),
    ("tune", ("--lr", "inf"), 1, "lr must be a positive number, got inf"),
    ("tune", ("--dev-limit", "0"), 2, "--dev-limit"),
    ("tune", ("--limit", "-5"), 2, "--limit"),
    ("tune", ("--prompt-length", "0"), 1, "prompt length must be positive"),
    ("tune", ("--prompt-length", "400", "--layout", "peft"), 1, "400 prompt tokens + 32 text tokens exceed"),
    ("tune", ("--device", "foo"), 1, "unknown device 'foo'"),
    (
        "tune",
        ("--data-files", "train={files}/one_class.csv,validation={files}/good.jsonl"),
        1,
        "split 'train' of task 'mine'",
    ),
    (
        "tune",
        ("--data-files", "train={files}/good.jsonl,validation={files}/null_text.jsonl"),
        1,
        "null_text.jsonl line 2: field 'text' is null",
    ),
    ("tune", ("--data-files", "train={files}/good.jsonl"), 1, "split 'validation' of task 'mine' is empty"),
    # prompts import
    ("import", ("{files}/p0.pt", "--seeds", "-1"), 1, "seeds must be integers from 0"),
    ("import", ("{files}/p0.pt", "--seeds", ""), 1, "give at least one seed"),
    ("import", ("{files}/p0.pt", "--seeds", "a"), 1, "--seeds takes comma-separated integers"),
    ("import", ("{files}/p0.pt", "{files}/p1.pt", "--seeds", "3,3"), 1, "duplicate seeds"),
    ("import", ("{files}/p0.pt", "--seeds", "0,1"), 1, "1 prompts were read but 2 seeds were given"),
    ("import", ("{files}/narrow.pt",), 1, "prompt hidden size 7 does not match"),
    ("import", ("{files}/garbage.pt",), 1, "cannot read prompt file"),
    ("import", ("{files}/missing.pt",), 1, "prompt file not found"),
    ("import", ("{files}/p0.pt", "{files}/narrow.pt"), 1, "prompt files disagree in shape"),
    ("import", ("{files}/p0.pt", "--model", "no-such-model-xyz"), 1, "unknown model"),
]

#: commands that add to (or only read) an existing store: run against the module's store
ADDERS = [
    # writers whose input only conflicts with what the module's store holds
    ("extract", ("--dtype", "float32"), 1, "was extracted with different settings"),
    ("extract", ("--block", "4"), 1, "block: 8 → 4"),
    ("extract", ("--prompts", "{files}/p0.pt", "--seeds", "0"), 1, "already holds other prompts for task 'sst2'"),
    ("extract-stored", ("--prompts-from", "nope"), 1, "holds no prompts for task 'nope'"),
    (
        "tune",
        ("--task", "sst2", "--label-words", "", "--data-dir", "{data}", "--limit", "16", "--data-files", ""),
        1,
        "already holds random(std=0.02) prompts for 'sst2'",
    ),
    ("import", ("{files}/p0.pt", "{files}/p1.pt", "--task", "sst2"), 1, "already holds other prompts for task 'sst2'"),
    # eval
    ("eval", ("--batch-size", "0"), 2, "--batch-size"),
    ("eval", ("--batch-size", "-8"), 2, "--batch-size"),
    ("eval", ("--max-length", "0"), 2, "--max-length"),
    ("eval", ("--max-length", "2", "--layout", "peft", "--cross-layout"), 1, "max-length 2 leaves no room"),
    ("eval", ("--max-length", "300"), 1, "300 text tokens exceed"),
    ("eval", ("--limit", "0"), 2, "--limit"),
    ("eval", ("--split", "nope"), 1, "unknown split(s) ['nope']"),
    ("eval", ("--prompts-from", "nope"), 1, "holds no prompts for task 'nope'"),
    ("eval", ("--device", "foo"), 1, "unknown device 'foo'"),
    (
        "eval",
        ("--task", "mine", "--label-words", "bad,good", "--data-files", "validation={files}/list.jsonl"),
        1,
        "list.jsonl line 3",
    ),
    # suppress
    ("suppress", ("--percent", "-5"), 1, "percentages must lie in 0–100, got -5.0"),
    ("suppress", ("--percent", "101"), 1, "percentages must lie in 0–100"),
    ("suppress", ("--percent", "nan"), 1, "percentages must lie in 0–100, got nan"),
    ("suppress", ("--percent", ""), 1, "give at least one percentage"),
    ("suppress", ("--percent", "5,5"), 1, "percentages repeat"),
    ("suppress", ("--percent", "x"), 1, "--percent: expected comma-separated percentages"),
    ("suppress", ("--mode", "blur"), 2, "--mode"),
    ("suppress", ("--scope", "head"), 2, "--scope"),
    ("suppress", ("--random-draws", "1"), 1, "--random-draws must be at least 2"),
    ("suppress", ("--random-draws", "-3"), 1, "--random-draws must be at least 2"),
    ("suppress", ("--noise-scale", "0", "--mode", "noise"), 1, "the noise scale must be a positive number"),
    ("suppress", ("--noise-scale", "inf", "--mode", "noise"), 1, "the noise scale must be a positive number"),
    ("suppress", ("--noise-scale", "-1"), 2, "--noise-scale"),
    ("suppress", ("--seed", "-1"), 2, "--seed"),
    ("suppress", ("--batch-size", "0"), 2, "--batch-size"),
    ("suppress", ("--max-length", "-4"), 2, "--max-length"),
    ("suppress", ("--max-length", "2", "--layout", "peft", "--cross-layout"), 1, "max-length 2 leaves no room"),
    ("suppress", ("--limit", "0"), 2, "--limit"),
    ("suppress", ("--neurons-from", "nope"), 1, "task 'nope' has no ranking"),
    ("suppress", ("--split", "nope"), 1, "unknown split(s) ['nope']"),
    ("suppress", ("--device", "foo"), 1, "unknown device 'foo'"),
    # rank
    ("rank", ("--top", "-3"), 2, "--top"),
    ("rank", ("--top", "0"), 2, "--top"),
    ("rank", ("--top", "x"), 2, "--top"),
    ("rank", ("--split", "train"), 1, "sst2/train was streamed without storing activations"),
    ("rank", ("--split", "nope"), 1, "no extraction sst2/nope"),
    ("rank", ("--baseline-from", "nope"), 1, "no train baseline for 'nope'"),
    ("rank", ("--subtask", "good-vs-bad"), 1, "unknown class 'good'"),
    ("rank", ("--task", "nope"), 1, "no extraction nope/validation"),
    # transfer
    ("transfer", ("--batch-size", "0"), 2, "--batch-size"),
    ("transfer", ("--max-length", "0"), 2, "--max-length"),
    ("transfer", ("--max-length", "2", "--layout", "peft", "--cross-layout"), 1, "max-length 2 leaves no room"),
    ("transfer", ("--max-length", "300"), 1, "300 text tokens exceed"),
    ("transfer", ("--limit", "-1"), 2, "--limit"),
    ("transfer", ("--tasks", "sst2"), 1, "give at least 2 different tasks"),
    ("transfer", ("--tasks", "sst2,imdb"), 1, "task 'imdb' has no prompts of its own"),
    ("transfer", ("--split", "nope"), 1, "unknown split(s) ['nope']"),
    # correlate
    ("correlate", ("--tasks", "sst2,qnli", "--normalize", "l2"), 2, "--normalize"),
    ("correlate", ("--tasks", "sst2,sst2"), 1, "give at least 2 different tasks"),
    ("correlate", ("--tasks", "sst2,qnli,imdb", "--normalize", "zscore"), 1, "task 'qnli' has no ranking"),
    ("correlate", ("--tasks", "sst2,qnli", "--normalize", "zscore"), 1, "needs at least 3"),
    # compare-adversarial
    ("compare", ("--percent", "-1"), 1, "percentages must lie in (0, 100], got -1.0"),
    ("compare", ("--percent", "0"), 1, "percentages must lie in (0, 100]"),
    ("compare", ("--percent", "150"), 1, "percentages must lie in (0, 100]"),
    ("compare", ("--percent", "1,x"), 1, "--percent: expected comma-separated percentages"),
    ("compare", ("--scope", "model"), 2, "--scope"),
    ("compare", (), 1, "task 'adv_sst2' has no ranking"),
    ("compare", ("--task", "sst2"), 1, "task 'sst2' has no clean source task"),
    # report, prompts export, info, verify
    ("report", ("--out", "{files}/p0.pt/report"), 1, "cannot write the report"),
    ("export", ("--out", "{tmp}/out", "--format", "zip"), 2, "--format"),
    ("export", ("--out", "{tmp}/out", "--task", "nope"), 1, "holds no prompts for task 'nope'"),
    ("export", ("--out", "{files}/p0.pt"), 1, "cannot write to"),
    ("info", ("--json", "--bogus"), 2, "--bogus"),
]

#: commands that need a store, pointed at a path without one: (extra arguments, error); each creates nothing
NEED_A_STORE = {
    "eval": ((), "no actstore store"),
    "suppress": ((), "no actstore store"),
    "rank": ((), "no actstore store"),
    "transfer": ((), "no actstore store"),
    "correlate": (("--tasks", "a,b"), "no actstore store"),
    "compare": ((), "no actstore store"),
    "report": (("--out", "{tmp}/r"), "no actstore store"),
    "export": (("--out", "{tmp}/r"), "no actstore store"),
    "info": ((), "no actstore store"),
    "verify": ((), "no actstore store"),
    "verify --repair": (("--repair",), "no actstore store"),
    "extract-stored": ((), "holds no prompts for task 'sst2'"),
}


def fill(args, **values) -> list[str]:
    return [str(a).format(**values) for a in args]


def check(result, code: int | None, fragment: str) -> None:
    """One error line (exit 1) or a usage error naming the option (exit 2); never a traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == (code or 1), result.output
    if result.exit_code == 1:
        lines = [line for line in result.output.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output
        assert fragment in lines[0], lines[0]
    else:
        assert ("Invalid value" in result.output or "No such option" in result.output) and fragment in result.output, (
            result.output
        )


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    for name, text in FILES.items():
        (folder / name).write_text(text)
    for seed in (0, 1):
        torch.save(torch.randn(4, 32, generator=torch.Generator().manual_seed(seed)), folder / f"p{seed}.pt")
    torch.save(torch.zeros(4, 7), folder / "narrow.pt")
    (folder / "garbage.pt").write_bytes(b"not a checkpoint")
    return folder


@pytest.fixture(scope="module")
def world(tiny_model_dir, data_dir, files, tmp_path_factory) -> dict:
    """The module's store: sst2 extracted (train streamed, validation stored) and ranked, qnli's prompts imported."""
    store = tmp_path_factory.mktemp("bad-input") / "s.zarr"
    values = {"model": tiny_model_dir("roberta"), "data": data_dir, "files": files}
    made = invoke(*fill(BASES["extract"], store=store, **values), "--split", "train,validation")
    assert made.exit_code == 0, made.output
    for args in (BASES["rank"], (*BASES["import"], "{files}/p0.pt", "{files}/p1.pt", "--task", "qnli")):
        result = invoke(*fill(args, store=store, **values))
        assert result.exit_code == 0, result.output
    return {"store": store, **values}


def run_against(world: dict, base: str, extra, code, fragment, store: Path, tmp: Path):
    values = {**world, "store": store, "tmp": tmp}
    result = invoke(*fill(BASES[base], **values), *fill(extra, **values))
    check(result, code, fragment.format(**values))


@pytest.mark.parametrize(
    "base, extra, code, fragment", WRITERS + ADDERS, ids=[f"{b} {' '.join(e)}"[:80] for b, e, _, _ in WRITERS + ADDERS]
)
def test_the_store_is_left_as_it_was(world, base, extra, code, fragment, tmp_path):
    before = digest(world["store"])
    run_against(world, base, extra, code, fragment, world["store"], tmp_path)
    assert digest(world["store"]) == before


@pytest.mark.parametrize(
    "base, extra, code, fragment", WRITERS, ids=[f"{b} {' '.join(e)}"[:80] for b, e, _, _ in WRITERS]
)
def test_no_store_is_created(world, base, extra, code, fragment, tmp_path):
    new = tmp_path / "new.zarr"
    run_against(world, base, extra, code, fragment, new, tmp_path)
    assert not new.exists()


@pytest.mark.parametrize("command", sorted(NEED_A_STORE))
def test_commands_that_need_a_store_create_none(world, command, tmp_path):
    extra, fragment = NEED_A_STORE[command]
    missing = tmp_path / "typo.zarr"
    run_against(world, command.split()[0], extra, 1, fragment, missing, tmp_path)
    assert not missing.exists() and not (tmp_path / "r").exists()


# ---- where a store goes: a directory of its own, refused in one line before anything is written (issue 19)

#: the commands that create a store, with what they need beyond BASES
CREATORS = {
    "extract": BASES["extract"],
    "tune": BASES["tune"],
    "import": (*BASES["import"], "{files}/p0.pt", "{files}/p1.pt"),
}


@pytest.fixture
def creator(request, tiny_model_dir, data_dir, files) -> Callable[[object], list[str]]:
    """The command of ``request.param`` writing a store at the given path."""
    values = {"model": tiny_model_dir("roberta"), "data": data_dir, "files": files}
    return lambda store: fill(CREATORS[request.param], store=store, **values)


@pytest.fixture
def no_store_at_the_root(monkeypatch) -> None:
    """Fails the test instead of writing /zarr.json, should a writer get past the checks before it."""
    init = zarr.storage.LocalStore.__init__

    def guarded(self, root, *, read_only: bool = False) -> None:
        assert read_only or Path(root).resolve() != Path("/"), "a store was about to be written at /"
        init(self, root, read_only=read_only)

    monkeypatch.setattr(zarr.storage.LocalStore, "__init__", guarded)


@pytest.mark.parametrize("creator", sorted(CREATORS), indirect=True)
@pytest.mark.parametrize("root", ["/", "//", "/tmp/.."])
def test_a_store_at_the_file_system_root_is_refused(creator, root, no_store_at_the_root):
    check(invoke(*creator(root)), 1, f"{root} is the file-system root: a store needs a directory of its own")


@pytest.mark.parametrize("creator", sorted(CREATORS), indirect=True)
def test_an_empty_store_path_is_refused_and_the_working_directory_left_alone(creator, tmp_path, monkeypatch):
    home = tmp_path / "work"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    monkeypatch.chdir(home)
    check(invoke(*creator("")), 1, "the store's path is empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # no work.lock beside it either
    assert [p.name for p in home.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("creator", sorted(CREATORS), indirect=True)
def test_a_directory_of_other_files_is_refused_and_left_as_it_was(creator, tmp_path):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "sub" / "a.csv").write_text("text,label\n")
    before = digest(folder)
    check(
        invoke(*creator(folder)),
        1,
        f"{folder} is a directory that holds other files (notes.txt, sub) and no "
        "actstore store: give a new or empty directory",
    )
    assert digest(folder) == before and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_an_empty_directory_or_a_store_that_lost_its_root_zarr_json_takes_a_store(tmp_path):
    """Refused are only the user's files: an empty directory becomes a store; a store's groups (and zarr's files
    being written) without the root zarr.json are what verify --repair rewrites it for."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert Store(empty, mode="a").backend.exists()
    lost = tmp_path / "lost.zarr"
    (lost / "extractions").mkdir(parents=True)
    (lost / "extractions" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    (lost / "zarr.0123456789abcdef.partial").write_text('{"zarr_fo')
    open_backend(lost).zarr_store(read_only=False)  # no error
    (lost / "notes.txt").write_text("mine")
    with pytest.raises(ActstoreError, match=r"holds other files \(notes.txt\)"):
        open_backend(lost).zarr_store(read_only=False)


# ---- experiment files: checked against schemas/experiment-v1.json before anything runs

EXPERIMENT = experiment_toml("{store}", "{model}", "{data}", max_steps=2, eval_every=1)
#: the lines from the top-level tasks to the prompt length, to set both the layout and n_tokens in one change
PEFT_TUNE = EXPERIMENT[EXPERIMENT.index("tasks = ") : EXPERIMENT.index("n_tokens = 3") + len("n_tokens = 3")]

#: (change: old line → new line, or a line to append at the end (of [extract]), fragment of the error)
EXPERIMENT_CASES = [
    (("", "devlimit = 5"), "unknown ExtractOptions setting(s) ['devlimit'] in [extract]"),
    (("dev_limit = 12", "devlimit = 12"), "unknown data setting(s) ['devlimit'] in [data]"),
    (("n_tokens = 3", "tokens = 3"), "unknown TuneOptions setting(s) ['tokens'] in [tune]"),
    (('tasks = ["sst2"]', 'tasks = ["sst2"]\nstores = "x"'), "unknown experiment setting(s) ['stores']"),
    (("", "[other]\nx = 1"), "unknown experiment setting(s) ['other']"),
    (("block = 4", 'block = "32"'), "extract.block: '32' is not of type 'integer'"),
    (("block = 4", "block = 0"), "extract.block: 0 is less than the minimum of 1"),
    (("block = 4", "block = 6"), "[extract] block (6) must be a multiple of batch size (4)"),
    (("block = 4", "block = 4.5"), "extract.block: 4.5 is not of type 'integer'"),
    (("block = 4", "block = 4.0"), "[extract] block must be an integer, got 4.0"),  # JSON Schema: 4.0 is an integer
    (("", 'dtype = "float64"'), "extract.dtype: 'float64' is not one of ['float16', 'float32']"),
    (("", 'store_train = "yes"'), "extract.store_train: 'yes' is not of type 'boolean'"),
    (("seeds = [0, 1]", 'seeds = "0,1"'), "seeds: '0,1' is not of type 'array'"),
    (("seeds = [0, 1]", "seeds = [-1]"), "seeds.0: -1 is less than the minimum of 0"),
    (("seeds = [0, 1]", "seeds = [0, 0]"), "seeds: [0, 0] has non-unique elements"),
    (("seeds = [0, 1]", "seeds = []"), "seeds: [] should be non-empty"),
    (("train_limit = 16", 'train_limit = "many"'), "data.train_limit: 'many' is not of type 'integer'"),
    (("dev_limit = 12", "dev_limit = 0"), "data.dev_limit: 0 is less than the minimum of 1"),
    (("n_tokens = 3", "n_tokens = 3\nlr = 0"), "tune.lr: 0 is less than or equal to the minimum of 0"),
    (("n_tokens = 3", 'n_tokens = 3\nlr = "fast"'), "tune.lr: 'fast' is not of type 'number'"),
    (("n_tokens = 3", "n_tokens = 3\nweight_decay = -1"), "tune.weight_decay: -1 is less than the minimum of 0"),
    (('tasks = ["sst2"]', 'tasks = "sst2"'), "tasks: 'sst2' is not of type 'array'"),
    (('tasks = ["sst2"]', "tasks = []"), "tasks: [] should be non-empty"),
    (('tasks = ["sst2"]', 'tasks = ["nope"]'), "unknown task 'nope'"),
    (('store = "{store}"', ""), "(top): 'store' is a required property"),
    (('model = "{model}"', "model = 5"), "model: 5 is not of type 'string'"),
    (("[tune]", "[tune\n"), "is not valid TOML"),
    # checked against the model and the data once the file is valid, before the store is opened
    (('model = "{model}"', 'model = "no-such-model-xyz"'), "unknown model 'no-such-model-xyz'"),
    (("max_length = 32\n[extract]", "max_length = 400\n[extract]"), "400 text tokens exceed the 300 positions"),
    (
        (
            PEFT_TUNE,
            PEFT_TUNE.replace("\n[data]", '\nlayout = "peft"\n[data]', 1).replace("n_tokens = 3", "n_tokens = 400"),
        ),
        "400 prompt tokens + 32 text tokens exceed",
    ),
    (('data_dir = "{data}"', 'data_dir = "{files}"'), "was not found locally under"),
    # only where no store holds the clean task's prompts yet (the module's store has sst2's)
    (('tasks = ["sst2"]', 'tasks = ["adv_sst2"]'), "adversarial task 'adv_sst2' needs the prompts of 'sst2'"),
]


@pytest.mark.parametrize(
    "target, change, fragment",
    [
        (target, change, fragment)
        for target in ("existing", "new")
        for change, fragment in EXPERIMENT_CASES
        if target == "new" or "adversarial" not in fragment
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_experiment_files_are_checked_before_anything_runs(world, target, change, fragment, tmp_path):
    store = world["store"] if target == "existing" else tmp_path / "new.zarr"
    values = {**world, "store": store}
    old, new = (part.format(**values) for part in change)
    text = EXPERIMENT.format(**values)
    text = text.replace(old, new, 1) if old else text + new + "\n"
    (tmp_path / "exp.toml").write_text(text)
    before = digest(world["store"])
    check(invoke("run", tmp_path / "exp.toml"), 1, fragment.format(**values))
    assert digest(world["store"]) == before and (target == "existing" or not store.exists())


def test_a_missing_experiment_file(tmp_path):
    check(invoke("run", tmp_path / "none.toml"), 1, "experiment file not found")


def test_the_shipped_experiment_files_and_the_options_follow_the_schema():
    from dataclasses import fields
    from importlib import resources

    from actstore.experiment import _schema
    from actstore.extraction import ExtractOptions
    from actstore.tuning import TuneOptions

    shipped = [
        p for p in resources.files("actstore.data").joinpath("experiments").iterdir() if p.name.endswith(".toml")
    ]
    assert len(shipped) == 4 and all(Experiment.load(str(p)).seeds for p in shipped)
    sections = _schema()["properties"]
    for section, cls in (("tune", TuneOptions), ("extract", ExtractOptions)):
        assert set(sections[section]["properties"]) == {f.name for f in fields(cls)}, section


# ---- the data loaders, property-based: a file loads as written, or its first bad record is named by line

TEXT = st.text(alphabet=string.ascii_letters + string.digits + " .,'!?-", min_size=1, max_size=30)
RECORDS = st.lists(st.tuples(TEXT, st.sampled_from([0, 1, "0", "1"])), min_size=1, max_size=25)
#: defects of a JSONL record, each with the message fragment it must produce
DEFECTS = {
    "no label": (lambda t, y: json.dumps({"text": t}), "no field(s) ['label']"),
    "no text": (lambda t, y: json.dumps({"label": y}), "no field(s) ['text']"),
    "null text": (lambda t, y: json.dumps({"text": None, "label": y}), "field 'text' is null"),
    "null label": (lambda t, y: json.dumps({"text": t, "label": None}), "field 'label' is null"),
    "a list": (lambda t, y: json.dumps([t, y]), "a record must be a JSON object, got list"),
    "a number": (lambda t, y: "7", "a record must be a JSON object, got int"),
    "not JSON": (lambda t, y: json.dumps({"text": t, "label": y})[:-1], "cannot parse"),
    "an unknown label": (lambda t, y: json.dumps({"text": t, "label": 2}), "is not one of the 2 classes"),
    "a text that is no string": (lambda t, y: json.dumps({"text": [t], "label": y}), "holds list"),
}
TASK = tasks.custom_task("mine", ["text"], "label", ["0", "1"], ["bad", "good"])
PROPERTY = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def load(path: Path) -> tasks.Split:
    """The file whole: as validation (train without a validation file gives 10 % of its rows to validation)."""
    return tasks.load_split(TASK, "validation", data_files={"validation": path})


@PROPERTY
@given(records=RECORDS, suffix=st.sampled_from([".jsonl", ".csv", ".tsv"]))
def test_valid_files_load_as_written(records, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"d{suffix}"
        if suffix == ".jsonl":
            path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in records))
        else:
            sep = "," if suffix == ".csv" else "\t"
            path.write_text(
                f"text{sep}label\n"
                + "".join(f'"{t}"{sep}{y}\n' if sep == "," else f"{t}{sep}{y}\n" for t, y in records)
            )
        split = load(path)
    assert split.texts == tuple((t,) for t, _ in records)
    assert split.labels.tolist() == [int(y) for _, y in records]


@PROPERTY
@given(records=RECORDS, at=st.integers(min_value=0), defect=st.sampled_from(sorted(DEFECTS)), blank=st.booleans())
def test_the_first_bad_record_is_named_by_its_line(records, at, defect, blank):
    at %= len(records)
    make, fragment = DEFECTS[defect]
    lines = [json.dumps({"text": t, "label": y}) for t, y in records]
    lines[at] = make(*records[at])
    if blank:  # blank lines count as lines, and are skipped
        lines.insert(0, "")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.jsonl"
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(ActstoreError) as caught:
            load(path)
    message = str(caught.value)
    assert f"{path} line {at + 1 + blank}" in message and fragment in message and "\n" not in message, message


@PROPERTY
@given(records=RECORDS, at=st.integers(min_value=0), label=st.sampled_from(["2", "-1", "yes", "", "1.0"]))
def test_a_bad_csv_label_is_named_by_its_line(records, at, label):
    at %= len(records)
    rows = [f'"{t}",{y}' for t, y in records]
    rows[at] = f'"{records[at][0]}",{label}'
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.csv"
        path.write_text("text,label\n" + "\n".join(rows) + "\n")
        with pytest.raises(ActstoreError, match=re.escape(f"in {path} line {at + 2}")):
            load(path)
