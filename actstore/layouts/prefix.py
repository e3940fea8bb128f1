"""Decoder-only LLMs, for comparison only: the p prompt vectors first, then ``<bos> text`` (PEFT's prompt tuning
of a causal LM); the label words are scored as the next token after the text.

Under causal attention a prompt position sees only the prompt before it, never the text: its activations are
the same for every example, so no neuron can be predictive there (``warning``, shown whenever a model is loaded
to run in this layout). Rows are padded on the right; the prompt takes the first p positions of every row."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from ..specs import DECODER_ARCHITECTURES
from . import TOKEN0
from .base import Batch, Layout, Prompted, decoder_next_token, decoder_rows, pad_rows, pad_token, with_prompt_mask

#: what loading a model in this layout warns
WARNING = (
    "layout 'prefix': in a decoder-only model the prompt positions come before the text and never attend "
    "to it, so their activations do not depend on the example (no neuron can be predictive there); use "
    "--layout causal for skill neurons"
)


class Prefix(Layout):
    name = "prefix"
    token0 = TOKEN0["prefix"]
    architectures = DECODER_ARCHITECTURES
    spaced_label_words = True

    def check(self, model: Prompted) -> None:
        super().check(model)
        warnings.warn(WARNING, UserWarning, stacklevel=2)

    def min_length(self, model: Prompted, n_fields: int) -> int:
        return 1 + n_fields  # <bos> and a token of each field

    def encode(
        self, model: Prompted, texts: Sequence[tuple[str, ...]], max_length: int, task: str | None = None
    ) -> Batch:
        input_ids, attention_mask = pad_rows(decoder_rows(model, texts, max_length), pad_token(model))
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def label_logits(
        self, model: Prompted, batch: Batch, prompt: torch.Tensor, word_ids: Sequence[int]
    ) -> torch.Tensor:
        ids = batch["input_ids"]
        n, p = ids.shape[0], prompt.shape[0]
        embeds = torch.cat([prompt.expand(n, -1, -1), model.model.get_input_embeddings()(ids)], 1)
        mask = with_prompt_mask(batch, n, p, ids.device)
        last = mask.sum(1) - 1  # the last text token: right padding
        return decoder_next_token(model, embeds, mask, last, word_ids)
