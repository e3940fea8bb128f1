"""PEFT's prompt tuning: virtual tokens prepended with ordinary positions, a ``<mask>`` inside the text before the
final separator, the label word read there (T5: the fields joined into one text, scored at the first decoding
step). What actstore did before layouts existed; a valid set-up, but not the one the papers measured."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import TOKEN0
from .base import (
    Batch,
    Layout,
    Prompted,
    encoder_hidden,
    label_scores,
    pad_rows,
    prepended,
    prompt_token_types,
    t5_first_step,
)


class Peft(Layout):
    name = "peft"
    token0 = TOKEN0["peft"]
    spaced_label_words = True

    def min_length(self, model: Prompted, n_fields: int) -> int:
        return super().min_length(model, n_fields) + (0 if model.is_t5 else 1)  # the <mask> in the text

    def encode(
        self, model: Prompted, texts: Sequence[tuple[str, ...]], max_length: int, task: str | None = None
    ) -> Batch:
        tokenizer = model.tokenizer
        if model.is_t5:
            joined = [" ".join(t) for t in texts]
            enc = tokenizer(joined, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        seconds = [t[1] for t in texts] if len(texts[0]) > 1 else None
        enc = tokenizer([t[0] for t in texts], seconds, truncation=True, max_length=max_length - 1)
        rows = [ids[:-1] + [tokenizer.mask_token_id] + ids[-1:] for ids in enc["input_ids"]]
        input_ids, attention_mask = pad_rows(rows, tokenizer.pad_token_id)
        out = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "mask_index": torch.tensor([len(r) - 2 for r in rows]),
        }
        if "token_type_ids" in enc:
            types = [t[:-1] + [t[-1], t[-1]] for t in enc["token_type_ids"]]
            out["token_type_ids"] = pad_rows(types, 0)[0]
        return out

    def label_logits(
        self, model: Prompted, batch: Batch, prompt: torch.Tensor, word_ids: Sequence[int]
    ) -> torch.Tensor:
        embeds, mask = prepended(model, batch, prompt)
        if model.is_t5:
            return t5_first_step(model, embeds, mask, word_ids)
        n, p = embeds.shape[0], prompt.shape[0]
        hidden = encoder_hidden(model, mask, inputs_embeds=embeds, **prompt_token_types(batch, n, p))
        at_mask = hidden[torch.arange(n, device=hidden.device), batch["mask_index"] + p]
        return label_scores(model, at_mask, word_ids)
