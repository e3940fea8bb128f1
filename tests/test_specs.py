"""Specs round-trip through the store's JSON attributes; prompts load from the documented formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from actstore.errors import ActstoreError
from actstore.prompts import PromptSet
from actstore.specs import ExtractionSpec, ModelSpec, differences, from_attrs, to_attrs

MODEL = ModelSpec("m", "sha256:0", "bert", "mlm_head", 2, 64, 32, 300)


def test_extraction_spec_round_trips_through_json():
    spec = ExtractionSpec(
        "sst2",
        "validation",
        MODEL,
        "sha256:ab",
        (0, 3),
        5,
        10,
        "fp",
        ("neg", "pos"),
        ("negative", "positive"),
        "float16",
        128,
        4,
        True,
    )
    back = from_attrs(ExtractionSpec, json.loads(json.dumps(to_attrs(spec))))
    assert back == spec and isinstance(back.seeds, tuple) and isinstance(back.model, ModelSpec)
    assert spec.n_blocks == 3
    other = ExtractionSpec(
        **{**spec.__dict__, "dtype": "float32", "model": ModelSpec(**{**MODEL.__dict__, "name": "x"})}
    )
    assert differences(spec, other) == ["model.name: 'm' → 'x'", "dtype: 'float16' → 'float32'"]


def test_random_prompts_are_reproducible_per_seed():
    a, b = PromptSet.random([0, 1], 4, 8), PromptSet.random([1], 4, 8)
    assert a.vectors.shape == (2, 4, 8) and a.vectors.dtype == np.float32
    np.testing.assert_array_equal(a.vectors[1], b.vectors[0])
    assert a.checksum == PromptSet.random([0, 1], 4, 8).checksum != PromptSet.random([0, 2], 4, 8).checksum


def test_prompt_files_in_the_transferability_format(tmp_path):
    rows = [torch.randn(6, 8) for _ in range(2)]
    for i, r in enumerate(rows):
        torch.save(r, tmp_path / f"seed{i}.pt")
    np.save(tmp_path / "all.npy", torch.stack(rows).numpy())
    from_pt = PromptSet.from_files([tmp_path / "seed0.pt", tmp_path / "seed1.pt"], [7, 9])
    from_npy = PromptSet.from_files([tmp_path / "all.npy"])
    assert from_pt.seeds == (7, 9) and from_npy.seeds == (0, 1)
    np.testing.assert_array_equal(from_pt.vectors, from_npy.vectors)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: PromptSet.random([0, 0], 4, 8), "duplicate seeds"),
        (lambda p: PromptSet.random([0], 0, 8), "prompt length must be positive"),
        (lambda p: PromptSet.from_files([p / "missing.pt"]), "prompt file not found"),
        (
            lambda p: (p / "bad.pt").write_text("not a tensor") and PromptSet.from_files([p / "bad.pt"]),
            "cannot read prompt file",
        ),
    ],
)
def test_bad_prompts_are_refused(tmp_path, make, message):
    with pytest.raises(ActstoreError, match=message):
        make(tmp_path)


def test_prompt_must_fit_the_model():
    with pytest.raises(ActstoreError, match="hidden size 16 does not match"):
        PromptSet.random([0], 4, 16).check_fits(MODEL, 128)
    with pytest.raises(ActstoreError, match="exceed the 300 positions"):
        PromptSet.random([0], 200, 32).check_fits(MODEL, 128)
