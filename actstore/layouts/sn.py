"""Skill-Neuron (Wang et al. 2022, THU-KEG/Skill-Neuron ``src/modelzoo.py``): a trainable mask vector first
(initialised with the ``<mask>`` embedding), then p − 1 prompt vectors, then ``<s> text </s>``, all with ordinary
sequential positions; the label word is read at position 0. Prompt token 0 *is* that mask vector. A pair is one
text, its two strings joined as they are (``src/trainer.py`` ``mlm_train_step``: ``sentences[_] + second[_]``),
and the backbone gets no token types (``MLMPromptBaseModel.forward`` passes ``inputs_embeds`` and
``attention_mask`` only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from . import TOKEN0
from .base import Batch, Layout, Prompted, encoder_hidden, label_scores, pad_rows, prepended


class SkillNeuron(Layout):
    name = "sn"
    token0 = TOKEN0["sn"]
    architectures = ("roberta", "bert", "mpnet")

    def initial_prompt(self, model: Prompted, vectors: np.ndarray) -> np.ndarray:
        embedding = model.model.get_input_embeddings().weight[model.tokenizer.mask_token_id]
        out = vectors.copy()
        out[0] = embedding.detach().float().cpu().numpy()
        return out

    def min_length(self, model: Prompted, n_fields: int) -> int:
        return model.tokenizer.num_special_tokens_to_add(pair=False) + n_fields  # the fields are one text

    def encode(
        self, model: Prompted, texts: Sequence[tuple[str, ...]], max_length: int, task: str | None = None
    ) -> Batch:
        tokenizer = model.tokenizer
        enc = tokenizer(["".join(t) for t in texts], truncation=True, max_length=max_length)
        input_ids, attention_mask = pad_rows(enc["input_ids"], tokenizer.pad_token_id)
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def label_logits(
        self, model: Prompted, batch: Batch, prompt: torch.Tensor, word_ids: Sequence[int]
    ) -> torch.Tensor:
        embeds, mask = prepended(model, batch, prompt)
        hidden = encoder_hidden(model, mask, inputs_embeds=embeds)
        return label_scores(model, hidden[:, 0], word_ids)
