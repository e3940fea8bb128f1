"""The tiny models load offline through the Auto classes and have the layout of the real models they stand in for."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import huggingface_hub
import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tiny_models import KINDS, make_tiny_model

LABEL_WORDS = (
    "negative",
    "positive",
    "false",
    "true",
    "yes",
    "no",
    "maybe",
    "bad",
    "fine",
    "good",
    "great",
    "terrible",
)

ARCHITECTURE = {
    "roberta": (AutoModelForMaskedLM, "RobertaForMaskedLM"),
    "bert": (AutoModelForMaskedLM, "BertForMaskedLM"),
    "bert_nohead": (AutoModel, "BertModel"),
    "mpnet": (AutoModel, "MPNetModel"),
    "t5": (AutoModelForSeq2SeqLM, "T5ForConditionalGeneration"),
    "t5_gated": (AutoModelForSeq2SeqLM, "T5ForConditionalGeneration"),
}
#: How " word" looks as a token: byte-level BPE keeps the space as Ġ, SentencePiece as ▁, WordPiece drops it.
SPACE_MARK = {"roberta": "Ġ", "t5": "▁", "t5_gated": "▁"}
#: The FFN output projection of layer i: its input is the neuron activation that actstore hooks.
FFN_OUTPUT = {
    "roberta": "roberta.encoder.layer.{i}.output.dense",
    "bert": "bert.encoder.layer.{i}.output.dense",
    "bert_nohead": "encoder.layer.{i}.output.dense",
    "mpnet": "encoder.layer.{i}.output.dense",
    "t5": "encoder.block.{i}.layer.1.DenseReluDense.wo",
    "t5_gated": "encoder.block.{i}.layer.1.DenseReluDense.wo",
}
HIDDEN, FFN, LAYERS = 32, 64, 2


class Loaded(NamedTuple):
    kind: str
    config: PretrainedConfig
    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel


def load(kind: str, path: Path) -> Loaded:
    """Reload a built directory the way actstore does, with the hub switched off."""
    assert huggingface_hub.constants.HF_HUB_OFFLINE
    auto, _ = ARCHITECTURE[kind]
    return Loaded(
        kind, AutoConfig.from_pretrained(path), AutoTokenizer.from_pretrained(path), auto.from_pretrained(path).eval()
    )


@pytest.fixture(scope="module", params=KINDS)
def loaded(request, tiny_model_dir) -> Loaded:
    """Each kind built once per session (conftest's factory) and loaded once per module: the checks only read it."""
    return load(request.param, tiny_model_dir(request.param))


def test_the_auto_classes_give_the_architecture(loaded):
    _, name = ARCHITECTURE[loaded.kind]
    assert loaded.config.architectures == [name]
    assert type(loaded.model).__name__ == name
    assert loaded.config.vocab_size == len(loaded.tokenizer)


def test_label_words_are_single_tokens(loaded):
    tok = loaded.tokenizer
    for word in LABEL_WORDS:
        ids = tok(" " + word, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] != tok.unk_token_id, word
        assert tok.convert_ids_to_tokens(ids) == [SPACE_MARK.get(loaded.kind, "") + word]
    words = tok("this movie is great", add_special_tokens=False)["input_ids"]
    assert len(words) == 4 and tok.unk_token_id not in words


def test_special_token_ids(loaded):
    tok, config = loaded.tokenizer, loaded.config
    assert config.pad_token_id == tok.pad_token_id
    if config.is_encoder_decoder:
        assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
        assert config.decoder_start_token_id == 0 and config.eos_token_id == 1
    else:
        assert tok.mask_token_id is not None and tok.mask_token_id < config.vocab_size
        ids = tok("great")["input_ids"]
        assert (ids[0], ids[-1]) == (tok.cls_token_id, tok.sep_token_id)


def test_forward_shapes(loaded):
    config, model = loaded.config, loaded.model
    batch = loaded.tokenizer("this movie is great", return_tensors="pt")
    n = batch["input_ids"].shape[1]
    with torch.no_grad():
        if config.is_encoder_decoder:
            assert model(**batch, decoder_input_ids=torch.tensor([[0]])).logits.shape == (1, 1, config.vocab_size)
        elif ARCHITECTURE[loaded.kind][0] is AutoModelForMaskedLM:
            assert model(**batch).logits.shape == (1, n, config.vocab_size)
        else:
            assert model(**batch).last_hidden_state.shape == (1, n, HIDDEN)


def test_positions_fit_a_100_token_prompt_and_128_text_tokens(loaded):
    """RoBERTa and MPNet spend two position slots on the padding offset; 228 positions must still fit."""
    embeds = torch.randn(1, 100 + 128, HIDDEN)
    extra = {"decoder_input_ids": torch.tensor([[0]])} if loaded.config.is_encoder_decoder else {}
    with torch.no_grad():
        out = loaded.model(inputs_embeds=embeds, **extra)
    assert torch.isfinite(out[0]).all()


def test_ffn_output_projection(loaded):
    for i in range(LAYERS):
        layer = loaded.model.get_submodule(FFN_OUTPUT[loaded.kind].format(i=i))
        assert isinstance(layer, nn.Linear) and (layer.in_features, layer.out_features) == (FFN, HIDDEN)
    with pytest.raises(AttributeError):
        loaded.model.get_submodule(FFN_OUTPUT[loaded.kind].format(i=LAYERS))


@pytest.mark.parametrize(("kind", "gated"), [("t5", False), ("t5_gated", True)])
def test_t5_feed_forward_flavour(kind, gated, tiny_model_dir):
    model = load(kind, tiny_model_dir(kind)).model
    assert len(model.encoder.block) == LAYERS and len(model.decoder.block) == LAYERS + 1
    for block in [*model.encoder.block, *model.decoder.block]:
        ffn = block.layer[-1].DenseReluDense
        names = {name for name, _ in ffn.named_children() if name.startswith("w")}
        assert names == ({"wi_0", "wi_1", "wo"} if gated else {"wi", "wo"})
    # transformers 5 always ties T5's LM head; v1.1's untied head survives as "no decoder output scaling"
    assert model.config.scale_decoder_outputs is not gated


@pytest.mark.parametrize("kind", KINDS)
def test_weights_depend_only_on_the_seed(kind, tmp_path):
    rng = torch.get_rng_state()
    first, again, other = (
        make_tiny_model(kind, tmp_path / name, seed) for name, seed in (("a", 0), ("b", 0), ("c", 1))
    )
    assert torch.equal(torch.get_rng_state(), rng), "building must not move the caller's RNG"
    a, b, c = (load_file(d / "model.safetensors") for d in (first, again, other))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert len({(d / "tokenizer.json").read_bytes() for d in (first, again, other)}) == 1
