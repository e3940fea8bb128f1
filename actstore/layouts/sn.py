"""Skill-Neuron (Wang et al. 2022, THU-KEG/Skill-Neuron ``src/modelzoo.py``): a trainable mask vector first
(initialised with the ``<mask>`` embedding), then p − 1 prompt vectors, then ``<s> text </s>``, all with ordinary
sequential positions; the label word is read at position 0. Prompt token 0 *is* that mask vector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from .base import Batch, Layout, encoder_hidden, label_scores, pad_rows, prepended, prompt_token_types

if TYPE_CHECKING:
    from ..models import PromptedModel


class SkillNeuron(Layout):
    name = "sn"
    token0 = "the trainable mask vector (initialised with the <mask> embedding), where the label is read"
    architectures = ("roberta", "bert", "mpnet")

    def initial_prompt(self, model: "PromptedModel", vectors: np.ndarray) -> np.ndarray:
        embedding = model.model.get_input_embeddings().weight[model.tokenizer.mask_token_id]
        out = vectors.copy()
        out[0] = embedding.detach().float().cpu().numpy()
        return out

    def encode(self, model: "PromptedModel", texts: Sequence[tuple[str, ...]], max_length: int,
               task: str | None = None) -> Batch:
        tokenizer = model.tokenizer
        seconds = [t[1] for t in texts] if len(texts[0]) > 1 else None
        enc = tokenizer([t[0] for t in texts], seconds, truncation=True, max_length=max_length)
        input_ids, attention_mask = pad_rows(enc["input_ids"], tokenizer.pad_token_id)
        out = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in enc:
            out["token_type_ids"] = pad_rows(enc["token_type_ids"], 0)[0]
        return out

    def label_logits(self, model: "PromptedModel", batch: Batch, prompt: torch.Tensor,
                     word_ids: Sequence[int]) -> torch.Tensor:
        embeds, mask = prepended(model, batch, prompt)
        n, p = embeds.shape[0], prompt.shape[0]
        hidden = encoder_hidden(model, mask, inputs_embeds=embeds, **prompt_token_types(batch, n, p))
        return label_scores(model, hidden[:, 0], word_ids)
