"""Faults the world throws end in one line, never a traceback, and leave a store that the same command resumes
bit-identically: a full disk (a real tmpfs that fills up), a read-only store or directory (the tmpfs remounted
read-only: root writes through chmod), a model directory without weights or with a broken config.json, a model
path that does not exist, a device this machine lacks, and SIGTERM (what SLURM sends before it kills a job) or
Ctrl-C at any moment, start-up included, sent to the installed `actstore` console script."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from actstore import open_store
from actstore.extraction import ExtractOptions, extract
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.store import Store
from helpers import SENTIMENT, digest, invoke, toy_split

ACTSTORE = Path(sys.executable).with_name("actstore")  # the console script, as users and batch jobs start it


def mount_tmpfs(path: Path, size: str) -> Path:
    """A tmpfs of ``size`` at ``path``: a real file system that fills up (ENOSPC) or turns read-only (EROFS) when
    asked. Skips where mounting is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root with CAP_SYS_ADMIN): {done.stderr.strip()}")
    return path


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Callable[[str, str], Path]]:
    """``tmpfs(name, size)`` mounts a tmpfs under tmp_path, unmounted after the test."""
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        mounted.append(mount_tmpfs(tmp_path / name, size))
        return mounted[-1]

    yield mount
    for path in reversed(mounted):
        unmount(path)


def remount(path: Path, option: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{option}", str(path)], check=True)


def used_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()]


def one_line(result, *fragments: str) -> str:
    """Exit 1 and a single `error:` line, the last (a split finished before may have said so), holding every
    fragment (case aside); returns the line."""
    assert result.exit_code == 1, result.output
    found = lines(result.output)
    assert [line for line in found if line.startswith("error:")] == found[-1:], result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment.lower() in found[-1].lower(), found[-1]
    return found[-1]


def assert_same_extraction(store: Path, reference: Path, task: str, splits: tuple[str, ...]) -> None:
    got, want = open_store(store), open_store(reference)
    for split in splits:
        a, b = got.extraction(task, split), want.extraction(task, split)
        for name in ("acts", "scores", "prediction", "label"):
            if name in b:
                np.testing.assert_array_equal(a[name].values, b[name].values)
    if "train" in splits:
        np.testing.assert_array_equal(got.baseline(task).values, want.baseline(task).values)
    assert not list(store.rglob("*.partial"))


def done_blocks(store: Path, split: str = "validation") -> int:
    folder = store / "extractions" / "sst2" / split / "done" / "c"
    if not folder.exists():
        return 0
    return sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".partial"))


# ---- a full disk


def extract_args(model: Path, data_dir: Path, store: Path) -> list[object]:
    return [
        "extract",
        "--model",
        model,
        "--task",
        "sst2",
        "--split",
        "train,validation",
        "--prompts",
        "random",
        "--seeds",
        "0,1",
        "--prompt-length",
        "4",
        "--batch-size",
        "2",
        "--block",
        "4",
        "--limit",
        "48",
        "--data-dir",
        data_dir,
        "--store",
        store,
    ]


@pytest.fixture(scope="module")
def on_tmpfs(tiny_model_dir, data_dir, tmp_path_factory) -> Iterator[tuple[Path, int]]:
    """The uninterrupted extraction of ``extract_args`` on a tmpfs, and the bytes it takes there."""
    roomy = mount_tmpfs(tmp_path_factory.mktemp("roomy"), "64m")
    try:
        done = invoke(*extract_args(tiny_model_dir("bert"), data_dir, roomy / "ref.zarr"))
        assert done.exit_code == 0, done.output
        yield roomy / "ref.zarr", used_bytes(roomy)
    finally:
        unmount(roomy)


@pytest.mark.parametrize("when", ["before any block", "halfway"])
def test_disk_full_is_one_line_and_the_same_command_finishes_the_store_once_space_is_freed(
    when, on_tmpfs, tiny_model_dir, data_dir, tmpfs
):
    reference, footprint = on_tmpfs
    # before any block: room for the store's root, not for the prompts or the extraction groups (main thread);
    # halfway: the blocks' chunks run out of room in the writer threads
    full = tmpfs("full", str(16 << 10 if when == "before any block" else footprint // 2))
    args = extract_args(tiny_model_dir("bert"), data_dir, full / "s.zarr")

    line = one_line(invoke(*args), "no space left on device")
    if when == "halfway":
        assert line.startswith("error: the disk is full"), line
        for fragment in ("finished blocks are stored", "free some space, then run the same command again to continue"):
            assert fragment in line, line
        kept = done_blocks(full / "s.zarr", "train") + done_blocks(full / "s.zarr", "validation")
        assert 0 < kept < 2 * 2 * 12  # finished blocks kept, the others not marked done (2 splits × 2 seeds × 12)

    remount(full, "size=64m")  # space freed
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert_same_extraction(full / "s.zarr", reference, "sst2", ("train", "validation"))


def test_a_writer_thread_that_finds_the_disk_full_stops_the_extraction_with_its_error(tiny_model_dir, data_dir, tmpfs):
    """The library raises the writer thread's own OSError (errno 28) in the caller, which the CLI words."""
    model = load_model(str(tiny_model_dir("bert")))
    prompts = PromptSet.random((0, 1), 3, model.spec.hidden)
    split = toy_split(data_dir, "validation", 40)

    def run(store: Store) -> None:
        store.put_prompts("toy", prompts.vectors, prompts.spec(model.spec))
        extract(store, model, SENTIMENT, split, prompts, ExtractOptions(batch_size=2, block=4))

    roomy = tmpfs("roomy", "64m")
    run(Store(roomy / "ref.zarr", mode="a"))
    full = tmpfs("full", str(used_bytes(roomy) // 2))
    with pytest.raises(OSError) as raised:
        run(Store(full / "s.zarr", mode="a"))
    assert raised.value.errno == 28
    frames = [frame.name for frame in raised.traceback]
    assert "_raise_failures" in frames, frames  # re-raised from a writer's future, not met in the main thread
    remount(full, "size=64m")
    run(Store(full / "s.zarr", mode="a"))
    assert_same_extraction(full / "s.zarr", roomy / "ref.zarr", "toy", ("validation",))


# ---- a read-only store or directory


def test_read_only_store_or_directory_is_one_line(tiny_model_dir, data_dir, tmpfs):
    folder = tmpfs("ro", "4m")
    args = [
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
        "4",
        "--limit",
        "8",
        "--data-dir",
        data_dir,
    ]
    assert invoke(*args, "--store", folder / "s.zarr").exit_code == 0
    remount(folder, "ro")
    for store in (folder / "s.zarr", folder / "new.zarr", folder / "new" / "deeper.zarr"):
        line = one_line(invoke(*args, "--store", store))
        assert "read-only" in line.lower() or "cannot write" in line.lower(), line
    assert not (folder / "new.zarr").exists()
    shown = invoke("info", folder / "s.zarr")  # reading a read-only store still works
    assert shown.exit_code == 0 and "extractions/sst2/validation: complete" in shown.output, shown.output


# ---- a file of the store this user may not read


def without_root_override(command: list[str]) -> list[str]:
    """``command`` bound by file permissions as any user is: root's override of them (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH) dropped from what it may use."""
    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv") is None:
        pytest.skip("root reads every file, and setpriv (util-linux), which drops that, is not installed")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]


@pytest.mark.parametrize(
    "command, file", [("info", "zarr.json"), ("verify", "extractions/sst2/validation/acts/c/1/2/0/0/0")]
)
def test_a_file_without_read_permission_is_one_line_naming_it(command, file, uninterrupted, tmp_path):
    """A permission, not damage: said as such (verify does not list it as a problem to repair), the store untouched."""
    store = tmp_path / "s.zarr"
    shutil.copytree(uninterrupted, store)
    (store / file).chmod(0)
    before = digest(store)
    done = subprocess.run(without_root_override([str(ACTSTORE), command, str(store)]), capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert lines(done.stderr) == [
        f"error: permission denied to read {store / file}: give the user who runs actstore "
        "access to the store's files (nothing is damaged)"
    ], done.stderr
    assert digest(store) == before


# ---- models and devices: refused before anything is written


def broken_model(source: Path, where: Path, kind: str) -> Path:
    shutil.copytree(source, where)
    if kind == "no weights":
        for weights in [*where.glob("*.safetensors"), *where.glob("*.bin")]:
            weights.unlink()
    else:
        (where / "config.json").write_text('{"model_type": "bert", "hidden_size": ')
    return where


@pytest.mark.parametrize(
    "kind, fragments",
    [
        ("no weights", ("cannot load model", "model.safetensors")),
        ("broken config", ("cannot load model", "config")),
        ("no such path", ("unknown model", "no such directory")),
    ],
)
def test_unusable_model_directory_is_one_line(kind, fragments, tiny_model_dir, data_dir, tmp_path):
    if kind == "no such path":
        model = tmp_path / "nowhere" / "model"
    else:
        model = broken_model(tiny_model_dir("bert"), tmp_path / "m", kind)
    result = invoke(
        "extract",
        "--model",
        model,
        "--task",
        "sst2",
        "--split",
        "validation",
        "--prompts",
        "random",
        "--limit",
        "8",
        "--data-dir",
        data_dir,
        "--store",
        tmp_path / "s.zarr",
    )
    one_line(result, str(model), *fragments)
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("device", ["cuda", "tpu9"])
def test_unusable_device_is_one_line_before_anything_is_written(device, tiny_model_dir, data_dir, tmp_path):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
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
        "--limit",
        "8",
        "--data-dir",
        data_dir,
        "--store",
        tmp_path / "s.zarr",
        "--device",
        device,
    )
    one_line(result, f"'{device}'")
    assert not (tmp_path / "s.zarr").exists()


# ---- SIGTERM and Ctrl-C, to the installed console script


def command(model: Path, data_dir: Path, store: Path) -> list[str]:
    return [
        str(ACTSTORE),
        "extract",
        "--model",
        str(model),
        "--task",
        "sst2",
        "--split",
        "validation",
        "--prompts",
        "random",
        "--seeds",
        "0,1",
        "--prompt-length",
        "4",
        "--batch-size",
        "2",
        "--block",
        "4",
        "--limit",
        "60",
        "--data-dir",
        str(data_dir),
        "--store",
        str(store),
    ]


def handles_sigterm(pid: int) -> bool:
    """Whether the process has its SIGTERM handler: the console script's first act, before its slow imports."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, data_dir, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("signals") / "ref.zarr"
    subprocess.run(command(tiny_model_dir("bert"), data_dir, store), check=True, capture_output=True)
    return store


def stopped(run: list[str], signum: int, ready: Callable[[int], bool]) -> str:
    """``run`` sent ``signum`` once ``ready(pid)``: exit code 128 + signum, one line on stderr (returned), no
    traceback."""
    proc = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while proc.poll() is None and not ready(proc.pid) and time.time() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "the command ended before it could be stopped"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    assert "Traceback" not in out + err and len(lines(err)) == 1, err
    return lines(err)[0]


@pytest.mark.parametrize("when", ["during start-up", "mid-extraction"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_at_any_moment_is_one_line_and_the_same_command_resumes(
    signum, when, uninterrupted, tiny_model_dir, data_dir, tmp_path
):
    store = tmp_path / "s.zarr"
    run = command(tiny_model_dir("bert"), data_dir, store)
    ready = handles_sigterm if when == "during start-up" else lambda pid: done_blocks(store) >= 3
    line = stopped(run, signum, ready)

    what = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
    assert line == (
        f"{what}: the command had not started; run it again"
        if when == "during start-up"
        else f"{what}: finished blocks are stored; run the same command again to continue"
    )
    if when == "during start-up":
        assert not store.exists()  # stopped in the imports, before the command touched anything
        return  # the same command again is the uninterrupted run
    assert 0 < done_blocks(store) < 30
    rerun = subprocess.run(run, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert_same_extraction(store, uninterrupted, "sst2", ("validation",))


def test_sigterm_during_a_command_that_starts_over_claims_nothing_kept(tiny_model_dir, data_dir, tmp_path):
    """`report` only reads the store and draws: stopped, it says to run it again, not that blocks are stored."""
    store = tmp_path / "s.zarr"
    for args in (extract_args(tiny_model_dir("bert"), data_dir, store), ("rank", "--store", store, "--task", "sst2")):
        assert invoke(*args).exit_code == 0
    before = digest(store)
    out = tmp_path / "report"
    line = stopped(
        [str(ACTSTORE), "report", "--store", str(store), "--out", str(out)],
        signal.SIGTERM,
        lambda pid: any(out.glob("*.png")),
    )  # the first figure drawn, the others to come
    assert line == "terminated (SIGTERM): run the same command again"
    assert digest(store) == before
