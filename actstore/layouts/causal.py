"""Decoder-only LLMs (beyond the papers): ``<bos> text`` and then the p prompt vectors; the label words are scored
as the next token at the last prompt position, so every prompt position has read the whole text.

Rows are padded on the left, so that the prompt takes the last p positions of every row, and the position ids
are counted over the attended positions only: padding moves neither where the prompt lies nor the positions it
gets (``<bos>`` at 0, the prompt right after the text). Label words are looked up as " word", the next word after
a space; a word of several tokens is refused, as for the encoders."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..specs import DECODER_ARCHITECTURES
from . import TOKEN0
from .base import Batch, Layout, Prompted, decoder_next_token, decoder_rows, pad_rows, pad_token


class Causal(Layout):
    name = "causal"
    token0 = TOKEN0["causal"]
    architectures = DECODER_ARCHITECTURES
    spaced_label_words = True

    def min_length(self, model: Prompted, n_fields: int) -> int:
        return 1 + n_fields  # <bos> and a token of each field

    def prompt_slice(self, n_tokens: int) -> slice:
        return slice(-n_tokens, None)

    def encode(
        self, model: Prompted, texts: Sequence[tuple[str, ...]], max_length: int, task: str | None = None
    ) -> Batch:
        input_ids, attention_mask = pad_rows(decoder_rows(model, texts, max_length), pad_token(model), left=True)
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def label_logits(
        self, model: Prompted, batch: Batch, prompt: torch.Tensor, word_ids: Sequence[int]
    ) -> torch.Tensor:
        ids, text_mask = batch["input_ids"], batch["attention_mask"]
        n, p = ids.shape[0], prompt.shape[0]
        embeds = torch.cat([model.model.get_input_embeddings()(ids), prompt.expand(n, -1, -1)], 1)
        mask = torch.cat([text_mask, torch.ones(n, p, dtype=text_mask.dtype, device=ids.device)], 1)
        last = torch.full((n,), embeds.shape[1] - 1, device=ids.device)
        return decoder_next_token(model, embeds, mask, last, word_ids)
