"""Prompt-Transferability / Robust-Neurons, the seed paper's code (LeonAckermann/Robust-Neurons
``src/models/modelling_roberta.py``, ``modelling_bert.py``, ``PromptRoberta.py``, ``src/formatter/*``).

Encoders (RoBERTa, BERT, MPNet): ``[p prompt slots] <s> text </s>`` (pairs: ``<s> a </s> b </s>``, one separator
between, cut to ``max_length + 3`` tokens and closed with a separator; one text: its tokens cut to ``max_length``).
Slot 0's vector is replaced by the ``<mask>`` embedding at every forward pass, so prompt token 0 is the mask slot
and the prompt's own vector 0 is never used; the label words are read there, at position 0. The prompt slots get
zero position embeddings; the text keeps the positions it would have without a prompt (counted from the padding
index + 1: RoBERTa's ``<s>`` at 2, BERT's ``[CLS]`` at 1). Token types are 0 on the text; RoBERTa adds type 0's
embedding on the prompt slots too, BERT zeroes it there. Addition order follows each reference file.

T5: ``[p prompt slots]`` + the task's text template (``src/formatter/*PromptT5Formatter.py``, kept in
``data/tasks.json`` as ``t5_input``), scored at the first decoding step; T5 has no absolute positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..tasks import t5_input
from . import TOKEN0
from .base import (
    Batch,
    Layout,
    Prompted,
    encoder_hidden,
    label_scores,
    pad_rows,
    prepended,
    t5_first_step,
    with_prompt_mask,
)

if TYPE_CHECKING:
    from ..specs import ModelSpec

#: architectures whose reference code zeroes the token-type embedding on the prompt slots (RoBERTa keeps type 0's)
_NO_TYPE_ON_PROMPT = ("bert",)


class PromptTransferability(Layout):
    name = "pt"
    token0 = TOKEN0["pt"]
    prompt_positions = False

    def text_positions(self, model: ModelSpec, max_length: int) -> int:
        # a pair's text is cut to max_length + 3 tokens; BERT's text starts one position later than usual
        return max_length + 3 + (model.architecture in _NO_TYPE_ON_PROMPT)

    def min_length(self, model: Prompted, n_fields: int) -> int:
        if model.is_t5 or n_fields == 1:
            return n_fields  # T5: the template's own pieces come on top; one text: max_length counts its tokens
        return 2 * n_fields - 2  # the budget max_length + 3 holds <s>, a separator and a token per field

    def encode(
        self, model: Prompted, texts: Sequence[tuple[str, ...]], max_length: int, task: str | None = None
    ) -> Batch:
        if model.is_t5:
            return self._encode_t5(model, texts, max_length, task)
        tokenizer = model.tokenizer
        fields = [
            tokenizer([t[f].strip() for t in texts], add_special_tokens=False)["input_ids"]
            for f in range(len(texts[0]))
        ]
        cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
        rows = []
        for pieces in zip(*fields):
            if len(pieces) == 1:
                rows.append([cls] + pieces[0][:max_length] + [sep])
                continue
            row = [cls] + [token for piece in pieces for token in piece + [sep]]
            rows.append(row if len(row) <= max_length + 3 else row[: max_length + 2] + [sep])
        input_ids, attention_mask = pad_rows(rows, tokenizer.pad_token_id)
        pad = model.model.config.pad_token_id
        # the reference's create_position_ids_from_input_ids with the prompt slots not counted: text from pad + 1,
        # padding at the padding index
        positions = (torch.cumsum(attention_mask, 1) + pad) * attention_mask + pad * (1 - attention_mask)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": positions}

    def _encode_t5(self, model: Prompted, texts: Sequence[tuple[str, ...]], max_length: int, task: str | None) -> Batch:
        template = t5_input(task, len(texts[0]))
        tokenizer = model.tokenizer
        pieces = [
            tokenizer([piece.format(*(f.strip() for f in t)) for t in texts], add_special_tokens=False)["input_ids"]
            for piece in template.pieces
        ]
        room = max_length + template.room
        eos = [tokenizer.eos_token_id] if template.eos else []
        rows = [[token for piece in row for token in piece][:room] + eos for row in zip(*pieces)]
        input_ids, attention_mask = pad_rows(rows, tokenizer.pad_token_id)
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def label_logits(
        self, model: Prompted, batch: Batch, prompt: torch.Tensor, word_ids: Sequence[int]
    ) -> torch.Tensor:
        if model.is_t5:
            return t5_first_step(model, *prepended(model, batch, prompt), word_ids)
        ids = batch["input_ids"]
        n, p, hidden = ids.shape[0], prompt.shape[0], prompt.shape[1]
        embeddings = model.model.base_model.embeddings
        mask_vector = embeddings.word_embeddings.weight[model.tokenizer.mask_token_id].detach()
        slots = torch.cat([mask_vector[None, :], prompt[1:]], 0).expand(n, -1, -1)
        words = torch.cat([slots, embeddings.word_embeddings(ids)], 1)
        zeros = torch.zeros(n, p, hidden, dtype=words.dtype, device=words.device)
        positions = torch.cat([zeros, embeddings.position_embeddings(batch["position_ids"])], 1)
        types = getattr(embeddings, "token_type_embeddings", None)
        if types is None:  # MPNet
            summed = words + positions
        elif model.spec.architecture in _NO_TYPE_ON_PROMPT:  # modelling_bert.py: words + types + positions
            type0 = types.weight[0].expand(n, ids.shape[1], -1)
            summed = words + torch.cat([zeros, type0], 1) + positions
        else:  # modelling_roberta.py: words + positions + types
            summed = words + positions + types.weight[0]
        output = embeddings.LayerNorm(summed)  # the reference's embedding dropout is commented out
        hidden_states = encoder_hidden(model, with_prompt_mask(batch, n, p, ids.device), embedding_output=output)
        return label_scores(model, hidden_states[:, 0], word_ids)
