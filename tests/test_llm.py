"""Skill neurons of decoder-only LLMs (beyond the papers): GPT-2, GPT-NeoX, OPT, Llama, Mistral, Qwen2 and Gemma,
as tiny random models built from transformers' config classes, in the causal layout (``<bos> text`` then the
prompt, the label the next token) and the prefix layout kept for comparison."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from actstore import models
from actstore.errors import ActstoreError
from actstore.evaluation import scores
from actstore.extraction import ExtractOptions, extract
from actstore.models import load_model
from actstore.prompts import PromptSet
from actstore.store import Store
from actstore.suppression import suppression_edit
from actstore.tuning import TuneOptions, tune_seed
from helpers import SENTIMENT, digest, invoke, one_error_line, toy_split
from tiny_models import CORPUS, built_once

#: architecture → (config class, its keyword arguments): 2 layers, hidden 32, FFN 64 (GPT-2: n_inner)
SIZES = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=300
)
GQA = dict(SIZES, num_key_value_heads=2)
CONFIGS = {
    "gpt2": ("GPT2Config", dict(n_embd=32, n_layer=2, n_head=4, n_inner=64, n_positions=300)),
    "gpt_neox": ("GPTNeoXConfig", SIZES),
    "opt": (
        "OPTConfig",
        dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=64,
            max_position_embeddings=300,
            word_embed_proj_dim=32,
        ),
    ),
    "llama": ("LlamaConfig", GQA),
    "mistral": ("MistralConfig", GQA),
    "qwen2": ("Qwen2Config", GQA),
    "gemma": ("GemmaConfig", dict(GQA, head_dim=8)),
}
#: the FFN output projection of each architecture, written out again here (not read from actstore)
PROJECTIONS = {
    "gpt2": "transformer.h.{}.mlp.c_proj",
    "gpt_neox": "gpt_neox.layers.{}.mlp.dense_4h_to_h",
    "opt": "model.decoder.layers.{}.fc2",
    "llama": "model.layers.{}.mlp.down_proj",
    "mistral": "model.layers.{}.mlp.down_proj",
    "qwen2": "model.layers.{}.mlp.down_proj",
    "gemma": "model.layers.{}.mlp.down_proj",
}
N_LAYERS, N_NEURONS = 2, 64
TEXTS = [
    ("a charming and moving film",),
    ("boring",),
    ("the worst script of the year , a mess",),
    ("great acting but a dull plot",),
]


def make_tiny_decoder(kind: str, path: Path, seed: int = 0, **sizes: int) -> Path:
    """A tiny random decoder-only LLM of ``kind`` with a byte-level BPE tokenizer (``<|endoftext|>`` its bos, eos
    and pad), saved so that ``from_pretrained`` loads it offline; ``sizes`` override the config's fields."""
    import transformers
    from tokenizers import ByteLevelBPETokenizer
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS, vocab_size=1000, min_frequency=1, special_tokens=["<|endoftext|>"], show_progress=False
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    name, fields = CONFIGS[kind]
    config = getattr(transformers, name)(
        **{**fields, **sizes}, vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=0, pad_token_id=0
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory):
    return built_once(make_tiny_decoder, tmp_path_factory)


def prompt_of(model, p: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(PromptSet.random([seed], p, model.spec.hidden).vectors[0])


def independent_activations(model, texts, prompt, kind: str) -> np.ndarray:
    """(example, layer, token, neuron) the FFN output projection's input at the prompt positions, read by hooks
    registered here, one example at a time (no padding), from the module names written out above."""
    rows = []
    for text in texts:
        seen: dict[int, torch.Tensor] = {}
        handles = [
            model.model.get_submodule(PROJECTIONS[kind].format(i)).register_forward_pre_hook(
                lambda m, args, i=i, seen=seen: seen.__setitem__(i, args[0].detach().clone())
            )
            for i in range(N_LAYERS)
        ]
        try:
            with torch.inference_mode():
                model.label_logits(model.encode([text], 128), prompt, [1, 2])
        finally:
            for h in handles:
                h.remove()
        p = prompt.shape[0]
        # one example: (1, sequence, neurons), which OPT flattens to (sequence, neurons)
        rows.append(np.stack([seen[i].reshape(-1, N_NEURONS)[-p:].numpy() for i in range(N_LAYERS)]))
    return np.stack(rows)


def plain_forward(model, text: tuple[str, ...], prompt: torch.Tensor, word_ids: list[int]) -> np.ndarray:
    """The label-word logits of the model's own forward on ``embed(<bos> text) + prompt``, at the last position."""
    tokenizer = model.tokenizer
    ids = [tokenizer.bos_token_id] + tokenizer(text[0], add_special_tokens=False)["input_ids"]
    embeds = torch.cat([model.model.get_input_embeddings()(torch.tensor([ids])), prompt[None]], 1)
    with torch.inference_mode():
        logits = model.model(inputs_embeds=embeds).logits
    return logits[0, -1, word_ids].numpy()


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_each_architecture_is_captured_scored_and_suppressed_at_its_ffn_output_projection(
    kind, decoder_dir, data_dir, tmp_path
):
    model = load_model(str(decoder_dir(kind)), layout="causal")
    assert model.spec.architecture == kind and model.spec.scoring == "lm_head" and model.spec.dtype == "float32"
    assert (model.spec.n_layers, model.spec.n_neurons, model.spec.n_decoder_layers) == (N_LAYERS, N_NEURONS, 0)
    assert model.hook_points() == [PROJECTIONS[kind].format(i) + " (input)" for i in range(N_LAYERS)]
    words = model.label_ids(SENTIMENT)
    prompts = PromptSet.random((0, 1), 3, model.spec.hidden)
    prompt = torch.from_numpy(prompts.vectors[0])

    # label logits: the model's own forward with the same inputs_embeds, one example at a time
    got = scores(model, _split(TEXTS), prompt, words, batch_size=4)
    expected = np.stack([plain_forward(model, t, prompt, words) for t in TEXTS])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

    # captured activations (a mixed-length batch of 2 per forward): the test's own hooks, one by one
    store = Store(tmp_path / "s.zarr", mode="a")
    store.put_prompts("toy", prompts.vectors, prompts.spec(model.spec))
    dev = toy_split(data_dir, "validation", 6)
    extract(store, model, SENTIMENT, dev, prompts, ExtractOptions(dtype="float32", batch_size=2, block=2))
    acts = store.activations("toy", "validation").sel(seed=0).values
    np.testing.assert_allclose(acts, independent_activations(model, dev.texts, prompt, kind), rtol=1e-5, atol=1e-6)

    # suppression edits that very tensor: equal to a copy whose output projections ignore those input columns
    mask = np.zeros((N_LAYERS, N_NEURONS), bool)
    mask[0, [1, 5, 9]] = mask[1, [0, 63]] = True
    edited = scores(model, _split(TEXTS), prompt, words, batch_size=4, edit=suppression_edit(mask, "zero")(0))
    other = copy.deepcopy(model)
    with torch.no_grad():
        for layer, projection in enumerate(other.ffn_outputs):
            columns = torch.from_numpy(mask[layer])
            if kind == "gpt2":  # Conv1D: weight (in, out)
                projection.weight[columns, :] = 0
            else:
                projection.weight[:, columns] = 0
    np.testing.assert_allclose(edited, scores(other, _split(TEXTS), prompt, words, batch_size=4), rtol=1e-5, atol=1e-5)
    assert not np.allclose(edited, got)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_tuning_moves_only_the_prompt(kind, decoder_dir, data_dir):
    model = load_model(str(decoder_dir(kind)), layout="causal")
    before = {name: w.detach().clone() for name, w in model.model.state_dict().items()}
    train, dev = toy_split(data_dir, "train", 8), toy_split(data_dir, "validation", 4)
    result = tune_seed(
        model,
        SENTIMENT,
        train,
        dev,
        0,
        TuneOptions(n_tokens=3, batch_size=4, max_steps=3, eval_every=1, eval_batch_size=4),
    )
    assert np.isfinite(result.loss[1:]).all()
    after = model.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    # the gradient reaches the prompt, and nothing else
    prompt = torch.nn.Parameter(prompt_of(model))
    model.label_logits(model.encode(TEXTS, 128), prompt, model.label_ids(SENTIMENT)).sum().backward()
    assert prompt.grad.abs().sum() > 0 and all(w.grad is None for w in model.model.parameters())


def _split(texts):
    from actstore.tasks import Split

    return Split("toy", "validation", tuple(texts), np.zeros(len(texts), np.int64), "test", np.arange(len(texts)))


def test_causal_prompt_positions_read_the_text_and_padding_moves_nothing(decoder_dir):
    model = load_model(str(decoder_dir("llama")), layout="causal")
    prompt, words = prompt_of(model), model.label_ids(SENTIMENT)
    acts = independent_activations(model, TEXTS, prompt, "llama")
    assert not np.allclose(acts[0], acts[1])  # other text, other activations at every prompt position
    assert all(not np.allclose(acts[0, :, t], acts[1, :, t]) for t in range(3))
    # a batch of mixed lengths (left padding, positions counted over the attended tokens) equals one by one
    batch = model.encode(TEXTS, 128)
    assert batch["attention_mask"][:, -1].all() and not batch["attention_mask"][:, 0].all()
    alone = np.concatenate([scores(model, _split([t]), prompt, words) for t in TEXTS])
    np.testing.assert_allclose(scores(model, _split(TEXTS), prompt, words, batch_size=4), alone, rtol=1e-5, atol=1e-5)


def test_prefix_prompt_positions_do_not_depend_on_the_example_and_say_so(decoder_dir):
    with pytest.warns(UserWarning, match="do not depend on the example"):
        model = load_model(str(decoder_dir("llama")), layout="prefix")
    prompt, words = prompt_of(model), model.label_ids(SENTIMENT)
    seen: dict[int, torch.Tensor] = {}

    def keep(layer: int, act: torch.Tensor) -> None:
        seen[layer] = act[:, :3].clone()

    with torch.inference_mode(), model.ffn_hooks(keep):
        logits = model.label_logits(model.encode(TEXTS, 128), prompt, words)
    for layer in range(N_LAYERS):  # the same at every prompt position for every example
        torch.testing.assert_close(seen[layer], seen[layer][:1].expand_as(seen[layer]))
    assert not torch.allclose(logits[0], logits[1])  # while the label, read after the text, does depend on it
    alone = np.concatenate([scores(model, _split([t]), prompt, words) for t in TEXTS])
    np.testing.assert_allclose(logits.numpy(), alone, rtol=1e-5, atol=1e-5)  # right padding moves nothing either


def test_a_label_word_of_several_tokens_is_refused(decoder_dir):
    model = load_model(str(decoder_dir("gpt2")), layout="causal")
    task = dataclasses.replace(SENTIMENT, label_words=("negative", "xqzvw"))
    with pytest.raises(ActstoreError, match=r"label word 'xqzvw' is \d+ tokens"):
        model.label_ids(task)


def test_the_registry_knows_the_llms_by_their_short_names():
    hub = {
        "gpt2": "gpt2",
        "pythia-160m": "EleutherAI/pythia-160m",
        "opt-125m": "facebook/opt-125m",
        "llama-3.2-1b": "meta-llama/Llama-3.2-1B",
        "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B",
        "mistral-7b": "mistralai/Mistral-7B-v0.1",
        "gemma-2b": "google/gemma-2b",
    }
    assert {alias: models.resolve(alias) for alias in hub} == hub
    assert models.resolve("EleutherAI/pythia-160m") == "EleutherAI/pythia-160m"  # a hub name stays as given
    with pytest.raises(ActstoreError, match=r"^cannot load model 'pythia-160m' \(the hub's EleutherAI/pythia-160m\)"):
        load_model("pythia-160m", layout="causal")  # offline here, and not in the hub cache


# ---- precision: bfloat16 against float32, float16's range, and the options of the command line


def _extract_both_splits(model, path: Path, data_dir: Path, prompts: PromptSet) -> Store:
    store = Store(path, mode="a")
    store.put_prompts("toy", prompts.vectors, prompts.spec(model.spec))
    for split, n in (("train", 32), ("validation", 64)):
        extract(store, model, SENTIMENT, toy_split(data_dir, split, n), prompts, ExtractOptions(batch_size=8, block=8))
    return store


def test_bfloat16_rankings_and_predictions_agree_with_float32_where_the_margin_is_large(
    decoder_dir, data_dir, tmp_path, monkeypatch
):
    from actstore.ranking import rank

    monkeypatch.setattr(models, "_cpu_has_bfloat16", lambda: True)  # where torch emulates it: slow, still right
    path = decoder_dir("llama")
    runs = {}
    for dtype in ("float32", "bfloat16"):
        model = load_model(str(path), layout="causal", dtype=dtype)
        prompts = PromptSet.random((0, 1), 3, model.spec.hidden)
        store = _extract_both_splits(model, tmp_path / f"{dtype}.zarr", data_dir, prompts)
        dev = toy_split(data_dir, "validation", 64)
        logits = scores(model, dev, torch.from_numpy(prompts.vectors[0]), model.label_ids(SENTIMENT), batch_size=8)
        runs[dtype] = (store, rank(store, "toy"), logits)
    (full, ranked, logits), (half, ranked_half, logits_half) = runs["float32"], runs["bfloat16"]
    assert [s.extraction_spec("toy", "validation").model.dtype for s in (full, half)] == ["float32", "bfloat16"]
    acts, acts_half = (np.asarray(s.activations("toy", "validation").values, np.float32) for s in (full, half))
    base, base_half = (np.asarray(s.baseline("toy").values, np.float32) for s in (full, half))
    assert acts.shape == acts_half.shape == (2, 64, N_LAYERS, 3, N_NEURONS) and base.shape == base_half.shape
    # bfloat16 keeps 8 significant bits (steps of 2^-8 relative): through the 2 layers' products of width 32-64 each
    # activation stays within 5 % of its neuron's largest value (measured: 2.5 % at most)
    scale = np.abs(acts).max(axis=(0, 1, 3), keepdims=True)
    assert (np.abs(acts_half - acts) <= 0.05 * scale).all()

    # rankings: an example changes a neuron's accuracy (Eq. 3) only where its activation lies within that error of
    # the baseline; in this random model many crowd there, so a few of 64 flip per neuron and seed, and predictivity
    # (steps of 1/128 here) moves by at most 4 examples' worth, by less than one on average (measured: 2 and 0.4)
    predictivity, predictivity_half = ranked["predictivity"].values.ravel(), ranked_half["predictivity"].values.ravel()
    moved = np.abs(predictivity - predictivity_half)
    assert moved.max() <= 4 / 64 and moved.mean() <= 1 / 64, (moved.max(), moved.mean())
    # where the margin is large the order holds: the 128 neurons' ranks correlate (Spearman; unrelated rankings
    # give ~0, measured 0.97) and bfloat16's top 10 keeps at least 7 of float32's (the 10th and 11th lie within a
    # step or two)
    ranks = [np.argsort(np.argsort(-p, kind="stable"), kind="stable") for p in (predictivity, predictivity_half)]
    assert np.corrcoef(*ranks)[0, 1] > 0.9
    top = [set(np.argsort(-p, kind="stable")[:10]) for p in (predictivity, predictivity_half)]
    assert len(top[0] & top[1]) >= 7, top

    # predictions: the same label wherever float32's logit margin exceeds 0.05 (bfloat16's logits are off by a few
    # of its steps of 2^-8 relative, ~0.004 at these logits), so the accuracies differ by those examples at most
    margin = np.abs(logits[:, 0] - logits[:, 1])
    wide = margin > 0.05
    assert wide.mean() > 0.5
    np.testing.assert_array_equal(logits[wide].argmax(1), logits_half[wide].argmax(1))


def _overflowing(path: Path, layer: int, neuron: int) -> Path:
    """A tiny Llama whose FFN neuron (``layer``, ``neuron``) is planted far beyond float16's range: its row of
    up_proj scaled by 1e9 (act(gate) · up, the input of down_proj, grows with it)."""
    from transformers import AutoModelForCausalLM

    make_tiny_decoder("llama", path)
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        model.model.layers[layer].mlp.up_proj.weight[neuron] *= 1e9
    model.save_pretrained(path)
    return path


RANDOM = ("--prompts", "random", "--seeds", "0", "--prompt-length", "3")


def _extract_args(model: Path, store: Path, data_dir: Path, *extra: str) -> list[str]:
    return [
        "extract",
        "--model",
        str(model),
        "--task",
        "sst2",
        "--layout",
        "causal",
        "--limit",
        "8",
        "--batch-size",
        "4",
        "--block",
        "4",
        "--data-dir",
        str(data_dir),
        "--store",
        str(store),
        *extra,
    ]


def test_a_value_beyond_float16_stops_extraction_in_one_line_and_float32_stores_it(data_dir, tmp_path):
    model = _overflowing(tmp_path / "model", layer=1, neuron=17)
    wide = tmp_path / "float32.zarr"
    done = invoke(*_extract_args(model, wide, data_dir, "--split", "validation", "--dtype", "float32", *RANDOM))
    assert done.exit_code == 0, done.output
    acts = Store(wide).activations("sst2", "validation").values
    assert acts.dtype == np.float32 and np.isfinite(acts).all()
    assert np.abs(acts[..., 1, :, 17]).min() > np.finfo(np.float16).max  # at every example and prompt token
    assert np.abs(np.delete(acts[..., 1, :, :], 17, axis=-1)).max() < np.finfo(np.float16).max  # only that neuron

    # in float16: refused in one line, into that store (its other split) or a new one, and no block stored; what
    # the store held is as it was
    kept = {name: digest(wide / name) for name in ("prompts", "extractions/sst2/validation")}
    for store, split in ((wide, "train"), (tmp_path / "new.zarr", "validation")):
        result = invoke(*_extract_args(model, store, data_dir, "--split", split, *RANDOM))
        one_error_line(result, "activation overflow at layer 1, neuron 17", "--dtype float32", "nothing")
        assert Store(store).summary()["extractions"][f"sst2/{split}"]["blocks_done"] == 0
    assert {name: digest(wide / name) for name in kept} == kept


@pytest.mark.xfail(
    strict=True,
    reason="extraction creates the split's group (and a new store with its prompts) "
    "before the first forward pass finds the overflow: actstore/extraction.py",
)
def test_an_overflow_leaves_no_group_behind(data_dir, tmp_path):
    model = _overflowing(tmp_path / "model", layer=1, neuron=17)
    result = invoke(*_extract_args(model, tmp_path / "new.zarr", data_dir, "--split", "validation", *RANDOM))
    assert result.exit_code == 1 and not (tmp_path / "new.zarr").exists()


@pytest.mark.parametrize(
    "extra, patch, fragment",
    [
        (("--device-map", "auto"), None, "torch sees none"),
        (("--device-map", "auto", "--device", "cpu"), None, "not both"),
        (("--device-map", "auto"), "no-accelerate", "needs accelerate"),
        (("--model-dtype", "bfloat16"), "no-bf16-cpu", "this CPU has no bfloat16"),
    ],
    ids=["no-cuda", "with-device", "no-accelerate", "bfloat16-cpu"],
)
def test_bad_precision_and_placement_options_are_one_line_and_store_nothing(
    extra, patch, fragment, decoder_dir, data_dir, tmp_path, monkeypatch
):
    import importlib.util

    if patch == "no-accelerate":
        found = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util, "find_spec", lambda name, *args: None if name == "accelerate" else found(name, *args)
        )
    if patch == "no-bf16-cpu":
        monkeypatch.setattr(models, "_cpu_has_bfloat16", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this test's CPU, on any machine
    store = tmp_path / "s.zarr"
    result = invoke(*_extract_args(decoder_dir("llama"), store, data_dir, "--split", "validation", *RANDOM, *extra))
    one_error_line(result, fragment)
    assert not store.exists()


def test_the_precision_options_are_recorded_in_the_store(decoder_dir, data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_cpu_has_bfloat16", lambda: True)  # where torch emulates it: slow, still right
    model, store = decoder_dir("llama"), tmp_path / "s.zarr"
    tune = invoke(
        "tune",
        "--model",
        model,
        "--task",
        "sst2",
        "--layout",
        "causal",
        "--store",
        store,
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
        "--limit",
        "8",
        "--max-length",
        "32",
        "--data-dir",
        data_dir,
        "--model-dtype",
        "bfloat16",
    )
    assert tune.exit_code == 0, tune.output
    for dtype, split in (("float16", "validation"), (None, "train")):  # the default on a CPU: float32
        done = invoke(
            *_extract_args(model, store, data_dir, "--split", split, *(("--model-dtype", dtype) if dtype else ()))
        )
        assert done.exit_code == 0, done.output
    opened = Store(store)
    assert opened.prompt_spec("sst2").model.dtype == "bfloat16"
    assert opened.extraction_spec("sst2", "validation").model.dtype == "float16"
    assert opened.extraction_spec("sst2", "train").model.dtype == "float32"
    shown = invoke("info", store, "--json")
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.stdout)
    assert {split: e["model_dtype"] for split, e in summary["extractions"].items()} == {
        "sst2/validation": "float16",
        "sst2/train": "float32",
    }
    assert summary["prompts"]["sst2"]["model_dtype"] == "bfloat16"
    assert {e["architecture"] for e in summary["extractions"].values()} == {"llama"}
    text = " ".join(invoke("info", store).output.split())
    assert "(llama, bfloat16), layout causal" in text and "(llama, float16)" in text


def test_under_a_launcher_a_device_map_places_the_model_instead_of_the_ranks_gpu(monkeypatch):
    from actstore.cli.common import placement
    from actstore.launch import Shard

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with GPUs, as torchrun sees it
    rank = Shard(rank=3, world=4, local_rank=1)
    assert placement(None, "float16", None, rank) == {"device": "cuda:1", "dtype": "float16", "device_map": None}
    # --device-map: one rank per machine, its model over every GPU (load_model refuses a device beside it)
    assert placement(None, None, "auto", rank) == {"device": None, "dtype": None, "device_map": "auto"}
    assert placement("cpu", None, None, rank)["device"] == "cpu"
    assert placement(None, None, None) == {"device": None, "dtype": None, "device_map": None}  # the library's defaults


def test_a_causal_store_ranks_the_same_from_acts_and_bits_and_resumes_bit_identically(
    decoder_dir, data_dir, tmp_path, monkeypatch
):
    """Issue 22's "same guarantees" on a decoder: the exact rank from the bits equals the one from the float16
    values, and an extraction that failed half-way finishes, rerun, with the bytes of an uninterrupted one."""
    from actstore.store.writer import ExtractionWriter

    model = decoder_dir("llama")
    dev = ("--split", "validation", "--keep", "both", "--limit", "16")

    def extract_into(store: Path) -> object:
        assert invoke(*_extract_args(model, store, data_dir, "--split", "train", *RANDOM)).exit_code == 0
        return invoke(*_extract_args(model, store, data_dir, *dev, *RANDOM))

    reference = tmp_path / "ref.zarr"
    assert extract_into(reference).exit_code == 0
    rankings = {}
    for read in ("acts", "bits"):
        ranked = invoke("rank", "--store", reference, "--task", "sst2", "--read", read)
        assert ranked.exit_code == 0, ranked.output
        rankings[read] = Store(reference).ranking("sst2")
    assert rankings["acts"].sizes["layer"] == 2 and rankings["acts"]["predictivity"].std() > 0
    for name in ("accuracy", "predictivity", "best_token", "rank_global"):
        np.testing.assert_array_equal(rankings["acts"][name].values, rankings["bits"][name].values)

    write_block, calls = ExtractionWriter.write_block, []

    def failing(self, *args, **kwargs):  # the third dev block never reaches the store
        calls.append(args[:2])
        if self.spec.split == "validation" and len(calls) == 3:
            raise OSError("planted: the disk went away")
        return write_block(self, *args, **kwargs)

    cut = tmp_path / "cut.zarr"
    monkeypatch.setattr(ExtractionWriter, "write_block", failing)
    assert extract_into(cut).exit_code != 0
    monkeypatch.setattr(ExtractionWriter, "write_block", write_block)
    partial = Store(cut).extraction("sst2", "validation", complete_only=False)
    assert 0 < partial["complete"].values.sum() < partial["complete"].size
    assert invoke(*_extract_args(model, cut, data_dir, *dev, *RANDOM)).exit_code == 0
    resumed, whole = Store(cut).extraction("sst2", "validation"), Store(reference).extraction("sst2", "validation")
    for name in ("acts", "bits", "scores", "prediction"):
        np.testing.assert_array_equal(resumed[name].values, whole[name].values)


def test_an_unsupported_architecture_is_refused_naming_the_supported_ones(tmp_path):
    """Bloom has no FFN hook here: refused from its config alone, before any weights are read (there are none)."""
    from transformers import BloomConfig

    BloomConfig(n_layer=1, hidden_size=8, n_head=2).save_pretrained(tmp_path / "bloom")
    with pytest.raises(ActstoreError, match=r"is a bloom; supported architectures: .*gpt2.*llama.*") as refused:
        load_model(str(tmp_path / "bloom"))
    assert all(arch in str(refused.value) for arch in models.SUPPORTED)
