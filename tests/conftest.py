"""Shared fixtures: offline hub, the real data folder, tiny models built from configs."""

from __future__ import annotations

import os
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
    from tiny_models import make_tiny_model

    cache: dict[str, Path] = {}

    def build(kind: str) -> Path:
        if kind not in cache:
            cache[kind] = make_tiny_model(kind, tmp_path_factory.mktemp(kind))
        return cache[kind]

    return build
