"""Stores on object storage. One conformance suite of store behaviour runs on every backend (a local directory,
``memory://``, S3 on localhost through moto's server): create, extract, a crash before a block's done marker,
resume, verify, planted faults found and refused, read back with xarray. Then the commands on ``s3://`` against the
same commands on a local directory, a writer killed mid-run against S3, and bad locations, one error line each."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from actstore.errors import ActstoreError, StoreFault
from actstore.experiment import Experiment
from actstore.ranking import rank
from actstore.store import Store, open_store
from actstore.store.backends import open_backend
from actstore.store.verify import verify
from helpers import invoke, one_error_line, run_toy

BACKENDS = ("local", "memory", "s3")


@pytest.fixture(params=BACKENDS)
def location(request, tmp_path) -> str:
    """Where a new store goes, on each backend."""
    if request.param == "local":
        return str(tmp_path / "s.zarr")
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex}/s.zarr"
    return request.getfixturevalue("s3_bucket") + "/runs/s.zarr"


@pytest.fixture(scope="module")
def reference(tiny_model_dir, data_dir, tmp_path_factory) -> dict[str, np.ndarray]:
    """The toy extraction in a local directory, uninterrupted: what every backend must hold, bit for bit."""
    store = run_toy(tmp_path_factory.mktemp("reference") / "s.zarr", tiny_model_dir("bert"), data_dir)
    return arrays(store)


def arrays(store: Store) -> dict[str, np.ndarray]:
    """Every array of a store by path, read through actstore's strict store layer (a fault raises)."""
    with warnings.catch_warnings():  # a local store's lock file is no zarr node
        warnings.simplefilter("ignore")
        members = store.root.members(max_depth=None)
    return {path: np.asarray(node[...]) for path, node in members if isinstance(node, zarr.Array)}


def assert_same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for path, values in want.items():
        if values.dtype.kind == "f":  # bit for bit, NaN included
            assert got[path].dtype == values.dtype, path
            assert got[path].tobytes() == values.tobytes(), path
        else:
            np.testing.assert_array_equal(got[path], values, err_msg=path)


def raw(location: str):
    """The store's keys without actstore's checks: where a test plants faults."""
    return open_backend(location).zarr_store(read_only=False)


def keys(location: str) -> list[str]:
    async def listed() -> list[str]:
        return [key async for key in raw(location).list()]

    return sorted(sync(listed()))


def contents(location: str) -> dict[str, bytes]:
    """Every key and its bytes: equal contents mean nothing stored was touched."""
    store = raw(location)
    return {key: sync(store.get(key, default_buffer_prototype())).to_bytes() for key in keys(location)}


# ---- the conformance suite: every backend behaves the same


def test_a_store_is_created_extracted_verified_and_read_back_with_xarray(location, reference, tiny_model_dir, data_dir):
    store = run_toy(location, tiny_model_dir("bert"), data_dir)
    assert verify(store) == []
    again = open_store(location)
    assert_same_arrays(arrays(again), reference)
    ds = again.extraction("toy", "validation")  # lazy xarray over the chunks, through the strict layer
    assert ds["acts"].dims == ("seed", "example", "layer", "token", "neuron")
    assert ds["acts"].values.tobytes() == reference["extractions/toy/validation/acts"].tobytes()
    assert float(ds["acts"].sel(layer=1).astype("float32").mean()) == pytest.approx(
        float(reference["extractions/toy/validation/acts"][:, :, 1].astype(np.float32).mean())
    )
    assert again.summary()["path"] == location and set(again.tasks()["toy"]) == {"train", "validation"}


def test_a_crash_before_a_done_marker_loses_only_that_block_and_the_same_call_resumes_bit_identically(
    location, reference, tiny_model_dir, data_dir, monkeypatch
):
    backend = type(open_backend(location))
    durable = backend.make_durable
    made = []

    def crash_on_the_third_validation_block(self, written):
        written = list(written)
        if any("/validation/acts/" in key for key in written):
            made.append(written)
            if len(made) == 3:  # its chunks are written, its done marker is not
                raise RuntimeError("power cut")
        durable(self, written)

    monkeypatch.setattr(backend, "make_durable", crash_on_the_third_validation_block)
    with pytest.raises(RuntimeError, match="power cut"):
        run_toy(location, tiny_model_dir("bert"), data_dir)
    monkeypatch.setattr(backend, "make_durable", durable)

    cut = made[2][0]  # an activation chunk of the block that crashed: in the store, but not data
    assert cut in keys(location)
    store = open_store(location)
    with pytest.raises(ActstoreError, match="incomplete"):
        store.extraction("toy", "validation")
    partial = store.extraction("toy", "validation", complete_only=False)
    complete = partial["complete"].values
    assert 0 < complete.sum() < complete.size
    acts = partial["acts"].values
    assert np.isnan(acts[~complete]).all()  # never read as data
    np.testing.assert_array_equal(acts[complete], reference["extractions/toy/validation/acts"][complete])
    assert verify(store) == []  # a block not done yet is no damage

    resumed = run_toy(location, tiny_model_dir("bert"), data_dir)
    assert_same_arrays(arrays(resumed), reference)
    assert verify(resumed) == []


def test_planted_faults_are_found_by_verify_refused_by_readers_and_healed(
    location, reference, tiny_model_dir, data_dir
):
    run_toy(location, tiny_model_dir("bert"), data_dir)
    acts = "extractions/toy/validation/acts/c"
    store = raw(location)
    sync(store.delete(f"{acts}/1/1/0/0/0"))  # seed 1, block 1, layer 0: deleted
    flipped = bytearray(sync(store.get(f"{acts}/0/0/1/0/0", default_buffer_prototype())).to_bytes())
    flipped[len(flipped) // 2] ^= 0x01  # seed 0, block 0, layer 1: one bit
    sync(store.set(f"{acts}/0/0/1/0/0", default_buffer_prototype().buffer.from_bytes(bytes(flipped))))

    found = {(d["item"], d["problem"]) for d in verify(open_store(location))}
    assert found == {("acts seed 1 block 1 layer 0", "missing"), ("acts seed 0 block 0 layer 1", "damaged")}
    with pytest.raises(StoreFault):
        open_store(location).extraction("toy", "validation")["acts"].values
    with pytest.raises(StoreFault):
        rank(Store(location, mode="r+"), "toy")

    damaged = Store(location, mode="r+")
    with damaged.writing():
        assert len(verify(damaged, repair=True)) == 2
    healed = run_toy(location, tiny_model_dir("bert"), data_dir)
    assert_same_arrays(arrays(healed), reference)
    assert verify(healed) == []


def test_the_writer_lock_is_exclusive_on_a_disk_and_absent_on_object_stores(location):
    """The guarantees of the README's table: one writer process per local store; on object stores no lock."""
    first, second = Store(location, mode="a"), Store(location, mode="r+")
    with first.writing():
        if location.startswith("/"):
            with pytest.raises(ActstoreError, match="being written by another actstore process"):
                with second.writing():
                    pass
        else:
            with second.writing():
                pass


# ---- the commands on s3:// equal to the same commands on a local directory


def test_extract_rank_suppress_on_s3_equal_the_same_commands_on_a_local_directory(
    s3_bucket, tiny_model_dir, data_dir, tmp_path
):
    local, remote = str(tmp_path / "l.zarr"), f"{s3_bucket}/cli/s.zarr"
    for where in (local, remote):
        common = (
            "--model",
            tiny_model_dir("roberta"),
            "--store",
            where,
            "--limit",
            "12",
            "--batch-size",
            "4",
            "--block",
            "4",
            "--data-dir",
            data_dir,
        )
        for args in (
            ("extract", "--task", "sst2", "--prompts", "random", "--seeds", "0,1", "--prompt-length", "3", *common),
            ("rank", "--store", where, "--task", "sst2"),
            (
                "suppress",
                "--store",
                where,
                "--task",
                "sst2",
                "--limit",
                "12",
                "--batch-size",
                "4",
                "--data-dir",
                data_dir,
                "--random-draws",
                "2",
                "--percent",
                "0,50",
            ),
        ):
            result = invoke(*args)
            assert result.exit_code == 0, result.output
    assert_same_arrays(arrays(open_store(remote)), arrays(open_store(local)))
    shown = invoke("info", remote, "--json")
    assert shown.exit_code == 0 and json.loads(shown.output)["path"] == remote
    checked = invoke("verify", remote)
    assert checked.exit_code == 0 and "0 problem(s)" in checked.output


# ---- kill -9 of a writer against S3


def extract_command(model_dir, data_dir, store) -> list[str]:
    return [
        sys.executable,
        "-m",
        "actstore.cli.app",
        "extract",
        "--model",
        str(model_dir),
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
        "80",
        "--data-dir",
        str(data_dir),
        "--store",
        str(store),
    ]


def test_a_writer_killed_mid_run_against_s3_resumes_to_the_same_bits(
    s3_bucket, s3_env, tiny_model_dir, data_dir, tmp_path
):
    import boto3

    model = tiny_model_dir("bert")
    env = {**os.environ, **s3_env, "PYTHONUNBUFFERED": "1"}
    subprocess.run(extract_command(model, data_dir, tmp_path / "ref.zarr"), check=True, env=env, capture_output=True)

    bucket, url = s3_bucket.removeprefix("s3://"), f"{s3_bucket}/killed.zarr"
    client = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"])

    def done_blocks() -> int:
        listed = client.list_objects_v2(Bucket=bucket, Prefix="killed.zarr/extractions/sst2/validation/done/c/")
        return listed.get("KeyCount", 0)

    proc = subprocess.Popen(
        extract_command(model, data_dir, url), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while done_blocks() < 6 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the extraction finished before it could be killed"
    assert 0 < done_blocks() < 2 * 20

    reference = open_store(tmp_path / "ref.zarr").extraction("sst2", "validation")
    partial = open_store(url).extraction("sst2", "validation", complete_only=False)
    complete = partial["complete"].values
    assert 0 < complete.sum() < complete.size
    np.testing.assert_array_equal(partial["acts"].values[complete], reference["acts"].values[complete])

    rerun = subprocess.run(extract_command(model, data_dir, url), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stderr.strip() == ""  # no warnings either (an unclosed HTTP session would say so here)
    resumed = open_store(url)
    assert_same_arrays(arrays(resumed), arrays(open_store(tmp_path / "ref.zarr")))
    assert verify(resumed) == []


# ---- the endpoint lost mid-extract: killed, or silent and then back


#: limits that give a lost endpoint up within seconds: 1 s to connect, 1 s for a reply, 2 attempts (1 retry)
QUICK = (
    "--storage-option",
    "config_kwargs.connect_timeout=1",
    "--storage-option",
    "config_kwargs.read_timeout=1",
    "--storage-option",
    "config_kwargs.retries.max_attempts=1",
)
LOST = "run the same command again to continue"


def extract_cli(model_dir, data_dir, store, *options: str) -> list:
    return [
        "extract",
        "--model",
        model_dir,
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
        "80",
        "--data-dir",
        data_dir,
        "--store",
        store,
        *options,
    ]


def lose_mid_extract(args: list, url: str, endpoint: str, lose: Callable[[], None]):
    """``actstore extract`` into ``url``, run in this process, with ``lose()`` called from a thread once 2 of its
    blocks are done (as ``endpoint`` lists them); its result."""
    import boto3

    bucket, _, key = url.removeprefix("s3://").partition("/")
    client = boto3.client("s3", endpoint_url=endpoint)
    lost, over = threading.Event(), threading.Event()

    def watch() -> None:
        while not over.is_set():
            listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{key}/extractions/sst2/validation/done/c/")
            if listed.get("KeyCount", 0) >= 2:
                lose()
                lost.set()
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = invoke(*args)
    finally:
        over.set()
        watcher.join()
    assert lost.is_set(), f"the extraction ended before its endpoint was lost: {result.output}"
    return result


@pytest.fixture
def own_s3(s3_env, monkeypatch) -> Iterator[tuple[str, subprocess.Popen]]:
    """moto's server in a process of its own, to be killed, with the bucket 'dying': its URL and process."""
    import boto3

    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    port = closed_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="dying")
            break
        except Exception:  # not listening yet
            assert time.time() < deadline and server.poll() is None, "moto's server did not start"
            time.sleep(0.1)
    yield endpoint, server
    server.kill()
    server.wait()


def test_an_s3_endpoint_killed_mid_extract_is_one_line_saying_the_run_can_be_resumed(own_s3, tiny_model_dir, data_dir):
    endpoint, server = own_s3
    url = "s3://dying/s.zarr"
    start = time.perf_counter()
    result = lose_mid_extract(
        extract_cli(tiny_model_dir("bert"), data_dir, url, "--storage-option", f"endpoint_url={endpoint}", *QUICK),
        url,
        endpoint,
        server.kill,
    )
    one_error_line(
        result,
        f"error: lost the object store at {url}, no answer after the retries its storage options "
        "allow (EndpointConnectionError: ",
        f": finished blocks are stored; {LOST}",
    )
    assert time.perf_counter() - start < 60


class Relay:
    """A TCP relay on localhost in front of an S3 endpoint that can fall silent (connections taken, nothing
    answered: a hung server, a dead link) and come back with the server's data intact. What reaches it while
    silent is never delivered."""

    def __init__(self, endpoint: str) -> None:
        target = urlsplit(endpoint)
        self.target = (target.hostname, target.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.answering, self.spell = True, 0  # spell: silences so far; a connection of an older one is dropped
        #: the first line of each request that arrived while silent (a request retried appears again)
        self.unanswered: list[str] = []
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def fall_silent(self) -> None:
        self.silent_since = time.perf_counter()
        self.answering = False

    def come_back(self) -> None:
        self.spell += 1
        self.answering = True

    def close(self) -> None:
        for sock in [self.listener, *self.sockets]:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink, self.spell, source is client), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, spell: int, request: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                if not self.answering and request:
                    self.unanswered.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
                while not self.answering:
                    time.sleep(0.01)
                if self.spell != spell:
                    return
                sink.sendall(data)
        except OSError:  # the other side closed
            pass
        finally:
            for sock in (source, sink):
                sock.close()


@pytest.fixture
def relay(s3_server) -> Iterator[Relay]:
    relay = Relay(s3_server)
    yield relay
    relay.close()


def test_an_s3_endpoint_that_stops_answering_mid_extract_is_one_line_and_the_same_command_resumes(
    relay, s3_server, s3_bucket, tiny_model_dir, data_dir, tmp_path
):
    model = tiny_model_dir("bert")
    assert invoke(*extract_cli(model, data_dir, tmp_path / "ref.zarr")).exit_code == 0
    url = f"{s3_bucket}/silent.zarr"
    args = extract_cli(model, data_dir, url, "--storage-option", f"endpoint_url={relay.url}", *QUICK)

    result = lose_mid_extract(args, url, s3_server, relay.fall_silent)
    waited = time.perf_counter() - relay.silent_since
    one_error_line(
        result,
        f"error: lost the object store at {url}, no answer after the retries its storage options allow (",
        "Timeout",
        f": finished blocks are stored; {LOST}",
    )
    assert relay.unanswered  # requests did reach the silent endpoint
    # every attempt had its read timeout (2 × 1 s); a request no more than all its attempts may take (s3fs's 5 tries
    # × 2 attempts × 2 s), and each of the 2 writer threads waits out the request it has in flight
    assert 2 <= waited < 2 * 5 * 2 * 2 + 15, waited

    relay.come_back()
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert_same_arrays(arrays(open_store(url)), arrays(open_store(tmp_path / "ref.zarr")))


# ---- bad locations: one error line each, fast, and nothing stored touched


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def existing(s3_bucket, tiny_model_dir) -> str:
    """A store in the bucket (its root and the prompts of 'toy'), whose bytes a failed command must leave alone."""
    from actstore.models import load_model
    from actstore.prompts import PromptSet

    url = f"{s3_bucket}/s.zarr"
    spec = load_model(str(tiny_model_dir("bert"))).spec
    prompts = PromptSet.random((0,), 2, spec.hidden)
    Store(url, mode="a").put_prompts("toy", prompts.vectors, prompts.spec(spec))
    return url


COMMANDS = {
    "info": lambda url, model, data: ("info", url),
    "rank": lambda url, model, data: ("rank", "--store", url, "--task", "toy"),
    "extract": lambda url, model, data: (
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
        data,
        "--store",
        url,
    ),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "fault, fragment",
    [
        ("scheme", "unknown store URL scheme 'ftp://'"),
        ("unreachable", "cannot reach the storage service"),
        ("credentials", "no credentials for s3://"),
        ("bucket", "the bucket 'no-such-bucket' of s3://no-such-bucket/s.zarr does not exist"),
    ],
)
def test_a_bad_location_is_one_error_line_and_touches_nothing(
    command, fault, fragment, existing, tiny_model_dir, data_dir, monkeypatch
):
    before = contents(existing)
    url, options = existing, ()
    with monkeypatch.context() as env:
        if fault == "scheme":
            url = existing.replace("s3://", "ftp://")
        elif fault == "unreachable":
            options = ("--storage-option", f"endpoint_url=http://127.0.0.1:{closed_port()}")
        elif fault == "credentials":
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
                env.delenv(name, raising=False)
            env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
            env.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
        else:
            url = "s3://no-such-bucket/s.zarr"
        start = time.perf_counter()
        result = invoke(*COMMANDS[command](url, tiny_model_dir("bert"), data_dir), *options)
        one_error_line(result, fragment)
        assert time.perf_counter() - start < 30  # fails fast, not after minutes of retries
    assert contents(existing) == before


def test_storage_options_need_a_store_url_and_experiment_files_take_urls(tmp_path):
    one_error_line(invoke("info", tmp_path / "s.zarr", "--storage-option", "anon=true"), "for object stores")
    one_error_line(invoke("info", "s3://b/s.zarr", "--storage-option", "anon"), "takes key=value")
    toml = tmp_path / "e.toml"
    toml.write_text('store = "s3://bucket/runs/e.zarr"\nmodel = "m"\nseeds = [0]\ntasks = ["sst2"]\n')
    assert Experiment.load(toml).store == "s3://bucket/runs/e.zarr"
    one_error_line(invoke("run", toml, "--storage-option", "anon=true"), "--storage-option needs --store")


@pytest.mark.parametrize("command", [("rank", "--task", "toy"), ("correlate", "--tasks", "a,b")])
def test_a_memory_store_is_refused_on_worker_processes(command):
    """memory:// is for tests in one process: dask's worker processes would see an empty store."""
    url = f"memory://{uuid.uuid4().hex}/s.zarr"
    Store(url, mode="a")
    before = contents(url)
    one_error_line(
        invoke(command[0], "--store", url, *command[1:], "--scheduler", "processes"),
        "lives in this process's memory",
        "--scheduler threads",
    )
    assert contents(url) == before
    assert not open_backend("s3://b/s.zarr").in_process and not open_backend("s.zarr").in_process
