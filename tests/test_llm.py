"""Skill neurons of decoder-only LLMs (beyond the papers): GPT-2, GPT-NeoX, OPT, Llama, Mistral, Qwen2 and Gemma,
as tiny random models built from transformers' config classes, in the causal layout (``<bos> text`` then the
prompt, the label the next token) and the prefix layout kept for comparison."""

from __future__ import annotations

import copy
import dataclasses
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
from helpers import SENTIMENT, toy_split
from tiny_models import CORPUS

#: architecture → (config class, its keyword arguments): 2 layers, hidden 32, FFN 64 (GPT-2: n_inner)
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             max_position_embeddings=300)
GQA = dict(SIZES, num_key_value_heads=2)
CONFIGS = {
    "gpt2": ("GPT2Config", dict(n_embd=32, n_layer=2, n_head=4, n_inner=64, n_positions=300)),
    "gpt_neox": ("GPTNeoXConfig", SIZES),
    "opt": ("OPTConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64,
                              max_position_embeddings=300, word_embed_proj_dim=32)),
    "llama": ("LlamaConfig", GQA),
    "mistral": ("MistralConfig", GQA),
    "qwen2": ("Qwen2Config", GQA),
    "gemma": ("GemmaConfig", dict(GQA, head_dim=8)),
}
#: the FFN output projection of each architecture, written out again here (not read from actstore)
PROJECTIONS = {"gpt2": "transformer.h.{}.mlp.c_proj", "gpt_neox": "gpt_neox.layers.{}.mlp.dense_4h_to_h",
               "opt": "model.decoder.layers.{}.fc2", "llama": "model.layers.{}.mlp.down_proj",
               "mistral": "model.layers.{}.mlp.down_proj", "qwen2": "model.layers.{}.mlp.down_proj",
               "gemma": "model.layers.{}.mlp.down_proj"}
N_LAYERS, N_NEURONS = 2, 64
TEXTS = [("a charming and moving film",), ("boring",), ("the worst script of the year , a mess",),
         ("great acting but a dull plot",)]


def make_tiny_decoder(kind: str, path: Path, seed: int = 0, **sizes: int) -> Path:
    """A tiny random decoder-only LLM of ``kind`` with a byte-level BPE tokenizer (``<|endoftext|>`` its bos, eos
    and pad), saved so that ``from_pretrained`` loads it offline; ``sizes`` override the config's fields."""
    import transformers
    from tokenizers import ByteLevelBPETokenizer
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=1000, min_frequency=1, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>")
    name, fields = CONFIGS[kind]
    config = getattr(transformers, name)(**{**fields, **sizes}, vocab_size=len(tokenizer), bos_token_id=0,
                                         eos_token_id=0, pad_token_id=0)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory):
    cache: dict[str, Path] = {}

    def build(kind: str) -> Path:
        if kind not in cache:
            cache[kind] = make_tiny_decoder(kind, tmp_path_factory.mktemp(kind))
        return cache[kind]

    return build


def prompt_of(model, p: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(PromptSet.random([seed], p, model.spec.hidden).vectors[0])


def independent_activations(model, texts, prompt, kind: str) -> np.ndarray:
    """(example, layer, token, neuron) the FFN output projection's input at the prompt positions, read by hooks
    registered here, one example at a time (no padding), from the module names written out above."""
    rows = []
    for text in texts:
        seen: dict[int, torch.Tensor] = {}
        handles = [model.model.get_submodule(PROJECTIONS[kind].format(i)).register_forward_pre_hook(
            lambda m, args, i=i, seen=seen: seen.__setitem__(i, args[0].detach().clone())) for i in range(N_LAYERS)]
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
def test_each_architecture_is_captured_scored_and_suppressed_at_its_ffn_output_projection(kind, decoder_dir,
                                                                                          data_dir, tmp_path):
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
    np.testing.assert_allclose(edited, scores(other, _split(TEXTS), prompt, words, batch_size=4), rtol=1e-5,
                               atol=1e-5)
    assert not np.allclose(edited, got)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_tuning_moves_only_the_prompt(kind, decoder_dir, data_dir):
    model = load_model(str(decoder_dir(kind)), layout="causal")
    before = {name: w.detach().clone() for name, w in model.model.state_dict().items()}
    train, dev = toy_split(data_dir, "train", 8), toy_split(data_dir, "validation", 4)
    result = tune_seed(model, SENTIMENT, train, dev, 0, TuneOptions(n_tokens=3, batch_size=4, max_steps=3,
                                                                    eval_every=1, eval_batch_size=4))
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
    np.testing.assert_allclose(scores(model, _split(TEXTS), prompt, words, batch_size=4), alone, rtol=1e-5,
                               atol=1e-5)


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
    hub = {"gpt2": "gpt2", "pythia-160m": "EleutherAI/pythia-160m", "opt-125m": "facebook/opt-125m",
           "llama-3.2-1b": "meta-llama/Llama-3.2-1B", "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B",
           "mistral-7b": "mistralai/Mistral-7B-v0.1", "gemma-2b": "google/gemma-2b"}
    assert {alias: models.resolve(alias) for alias in hub} == hub
    assert models.resolve("EleutherAI/pythia-160m") == "EleutherAI/pythia-160m"  # a hub name stays as given
    with pytest.raises(ActstoreError, match=r"^cannot load model 'pythia-160m' \(the hub's EleutherAI/pythia-160m\)"):
        load_model("pythia-160m", layout="causal")  # offline here, and not in the hub cache
