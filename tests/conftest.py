"""Shared fixtures: offline hub, the real data folder, tiny models built from configs."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(os.environ.get("ACTSTORE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real task files of ../shared/data; tests that need them skip (saying so) where it is absent."""
    if not (SHARED_DATA / "MANIFEST.md").is_file():
        pytest.skip(f"../shared/data is absent (looked in {SHARED_DATA})")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Build (once per session) a tiny random model of a kind and return its directory."""
    from tiny_models import built_once, make_tiny_model

    return built_once(make_tiny_model, tmp_path_factory)


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API on localhost: moto's server in this process (as zarr-python's own tests run it); its URL."""
    moto_server = pytest.importorskip("moto.server", reason="S3 tests need the test extra (moto[server], s3fs)")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_env(s3_server) -> dict[str, str]:
    """Dummy credentials and the local endpoint in the standard variables, as users set them for their own S3 (also
    for subprocesses); no instance-metadata lookup (169.254.169.254) where credentials are missing on purpose."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture
def s3_bucket(s3_server, s3_env, monkeypatch) -> str:
    """A new, empty bucket on the local S3 with the environment pointing at it: ``s3://<bucket>``."""
    import boto3

    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    bucket = f"actstore-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}"
