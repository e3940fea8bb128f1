"""Extraction into the store, on tiny random models of every supported architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actstore import open_store
from actstore.errors import ActstoreError
from actstore.extraction import ExtractOptions, extract
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.ranking import recompute_baseline
from actstore.store import Store
from helpers import SENTIMENT, extract_interrupted, run_toy, toy_split

ARCHS = ["roberta", "bert", "bert_nohead", "mpnet", "t5", "t5_gated"]


def independent_activations(model, texts, prompt, batch_size=2, max_length=128, stack="encoder"):
    """The FFN activation as METHOD.md defines it, taken at other modules than actstore's hook point
    (batched as the extraction batches, so that padding, and thus every float, is the same): the encoder's at
    the prompt tokens, or T5's decoder's at the first decoding step."""
    return np.concatenate(
        [
            _independent(model, texts[i : i + batch_size], prompt, max_length, stack)
            for i in range(0, len(texts), batch_size)
        ]
    )


def _independent(model, texts, prompt, max_length, stack):
    seen: dict[int, torch.Tensor] = {}
    handles = []
    if model.is_t5:
        for i, block in enumerate(getattr(model.model, stack).block):
            ffn = block.layer[-1].DenseReluDense
            if hasattr(ffn, "wi_0"):  # gated T5 v1.1: act(wi_0 x) * wi_1 x
                parts = {}
                handles.append(ffn.wi_0.register_forward_hook(lambda m, a, o, parts=parts: parts.__setitem__(0, o)))
                handles.append(
                    ffn.wi_1.register_forward_hook(
                        lambda m, a, o, i=i, parts=parts, ffn=ffn: seen.__setitem__(i, ffn.act(parts[0]) * o)
                    )
                )
            else:  # T5 v1.0: relu(wi x)
                handles.append(ffn.wi.register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(i, torch.relu(o))))
    else:
        for i, layer in enumerate(model.model.base_model.encoder.layer):
            handles.append(layer.intermediate.register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(i, o)))
    try:
        with torch.inference_mode():
            model.label_logits(model.encode(texts, max_length), prompt, model.label_ids(SENTIMENT))
    finally:
        for h in handles:
            h.remove()
    positions = prompt.shape[0] if stack == "encoder" else 1
    # (example, layer, token, neuron)
    return torch.stack([seen[i][:, :positions] for i in range(len(seen))], dim=1).numpy()


@pytest.mark.parametrize("arch", ARCHS)
def test_extraction_stores_the_ffn_activations_at_the_prompt_positions(arch, tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir(arch), data_dir)
    ds = open_store(tmp_path / "s.zarr").extraction("toy", "validation")
    model = load_model(str(tiny_model_dir(arch)))
    assert ds["acts"].dims == ("seed", "example", "layer", "token", "neuron")
    assert ds["acts"].shape == (2, 10, model.spec.n_layers, 3, model.spec.n_neurons)
    assert ds["acts"].dtype == np.float16
    split = toy_split(data_dir, "validation", 10)
    prompts = PromptSet.stored(store, "toy")
    for s in range(2):
        expected = independent_activations(model, split.texts, torch.from_numpy(prompts.vectors[s]))
        np.testing.assert_array_equal(ds["acts"].values[s], expected.astype(np.float16))
    np.testing.assert_array_equal(ds["label"].values, split.labels)
    assert ds["scores"].shape == (2, 10, 2) and np.isfinite(ds["scores"].values).all()
    np.testing.assert_array_equal(ds["prediction"].values, ds["scores"].values.argmax(-1))
    assert store.summary()["extractions"]["toy/validation"]["state"] == "complete"


def test_streamed_baseline_equals_the_recomputed_one_exactly(tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir("bert"), data_dir, n_train=18)
    streamed = store.baseline("toy").values
    stored = store.extraction("toy", "train")["acts"].values
    np.testing.assert_array_equal(streamed, recompute_baseline(store, "toy"))
    np.testing.assert_array_equal(streamed, stored.astype(np.float64).mean(axis=1))


def test_train_is_streamed_without_storing_activations_by_default(tiny_model_dir, data_dir, tmp_path):
    stored = run_toy(tmp_path / "a.zarr", tiny_model_dir("bert"), data_dir)
    streamed = run_toy(tmp_path / "b.zarr", tiny_model_dir("bert"), data_dir, store_train=False)
    assert "acts" not in streamed.extraction("toy", "train")
    np.testing.assert_array_equal(streamed.baseline("toy").values, stored.baseline("toy").values)
    assert not any(p.name == "acts" for p in (tmp_path / "b.zarr" / "extractions" / "toy" / "train").iterdir())


def test_float32_on_request(tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir("bert"), data_dir, dtype="float32")
    assert store.extraction("toy", "validation")["acts"].dtype == np.float32


def test_interrupted_extraction_resumes_to_identical_arrays(tiny_model_dir, data_dir, tmp_path):
    reference = run_toy(tmp_path / "ref.zarr", tiny_model_dir("bert"), data_dir)
    store = Store(tmp_path / "cut.zarr", mode="a")

    def still_incomplete(split: str) -> None:
        assert store.summary()["extractions"][f"toy/{split}"]["state"] == "in_progress"
        with pytest.raises(ActstoreError, match="incomplete"):
            store.extraction("toy", split)

    extract_interrupted(
        store,
        tiny_model_dir("bert"),
        data_dir,
        PromptSet.stored(reference, "toy"),
        ExtractOptions(batch_size=2, block=4, store_train=True, segment=2),
        between=still_incomplete,
    )
    for split in ("train", "validation"):
        a, b = reference.extraction("toy", split), store.extraction("toy", split)
        for name in ("acts", "scores", "prediction", "label"):
            np.testing.assert_array_equal(a[name].values, b[name].values)
    np.testing.assert_array_equal(reference.baseline("toy").values, store.baseline("toy").values)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"dtype": "float32"}, "dtype: 'float16' → 'float32'"),
        ({"block": 8}, "block: 4 → 8"),
    ],
)
def test_other_settings_against_an_existing_extraction_are_refused(change, message, tiny_model_dir, data_dir, tmp_path):
    store = run_toy(tmp_path / "s.zarr", tiny_model_dir("bert"), data_dir)
    before = store.extraction("toy", "validation")["acts"].values
    model = load_model(str(tiny_model_dir("bert")))
    options = ExtractOptions(**{"batch_size": 2, "block": 4, **change})
    with pytest.raises(ActstoreError, match=message):
        extract(store, model, SENTIMENT, toy_split(data_dir, "validation", 10), PromptSet.stored(store, "toy"), options)
    other_prompts = PromptSet.random([0, 1], 3, model.spec.hidden * 1)
    other_prompts = PromptSet(other_prompts.vectors + 1, other_prompts.seeds, "shifted")
    with pytest.raises(ActstoreError, match="prompt_checksum"):
        extract(
            store,
            model,
            SENTIMENT,
            toy_split(data_dir, "validation", 10),
            other_prompts,
            ExtractOptions(batch_size=2, block=4),
        )
    np.testing.assert_array_equal(store.extraction("toy", "validation")["acts"].values, before)


def test_float16_overflow_is_reported_not_stored(tiny_model_dir, data_dir, tmp_path):
    model = load_model(str(tiny_model_dir("t5")))
    with torch.no_grad():
        model.model.encoder.block[1].layer[-1].DenseReluDense.wi.weight.mul_(1e6)
    prompts = PromptSet.random([0], 3, model.spec.hidden)
    store = Store(tmp_path / "s.zarr", mode="a")
    with pytest.raises(ActstoreError, match=r"overflow at layer 1.*float32"):
        extract(
            store,
            model,
            SENTIMENT,
            toy_split(data_dir, "validation", 8),
            prompts,
            ExtractOptions(batch_size=2, block=4),
        )
    assert not store.summary()["extractions"]["toy/validation"]["blocks_done"]
    spec = extract(
        store.__class__(tmp_path / "f32.zarr", mode="a"),
        model,
        SENTIMENT,
        toy_split(data_dir, "validation", 8),
        prompts,
        ExtractOptions(batch_size=2, block=4, dtype="float32"),
    )
    acts = open_store(tmp_path / "f32.zarr").extraction("toy", "validation")["acts"].values
    assert spec.dtype == "float32" and np.abs(acts).max() > 65504 and np.isfinite(acts).all()
