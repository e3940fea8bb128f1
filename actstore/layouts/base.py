"""What every layout provides, and the pieces they share: padding, the encoder run, the label-word scores."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from ..errors import ActstoreError
from ..specs import ENCODER_ARCHITECTURES

if TYPE_CHECKING:
    from ..specs import ModelSpec

#: a tokenised batch: input_ids, attention_mask and what the layout needs besides (position_ids, mask_index, ...)
Batch = dict[str, torch.Tensor]


class Prompted(Protocol):
    """What a layout reads of the model it builds inputs for (``models.PromptedModel``; a protocol, so that the
    layouts, which ``models`` imports, import nothing of ``models``)."""

    #: a transformers model: torch types its config fields and submodules (which differ by architecture) as
    #: ``Tensor | Module``, each known at run time only
    model: Any
    tokenizer: Any
    spec: ModelSpec
    is_t5: bool


class Layout(ABC):
    """How one reference code builds the input around the prompt and reads the label word."""

    #: the name commands, experiment files and stores use
    name: ClassVar[str]
    #: what the ``token`` coordinate 0 of an extraction is, in words (``info``, the xarray attributes)
    token0: ClassVar[str]
    #: the architectures (``config.model_type``) it is defined for
    architectures: ClassVar[tuple[str, ...]] = ENCODER_ARCHITECTURES
    #: whether the prompt slots take position embeddings (then the prompt counts against the model's positions)
    prompt_positions: ClassVar[bool] = True
    #: whether a label word is looked up as " word" (a word after a space) or as "word"
    spaced_label_words: ClassVar[bool] = False

    def check(self, model: Prompted) -> None:
        """Refuse, in one line, a model this layout is not defined for."""
        self.check_architecture(model.spec.architecture, model.spec.name)

    def check_architecture(self, architecture: str, name: str) -> None:
        """Refuse, in one line that names the layouts that are, an architecture this layout is not defined for
        (before any weights are read)."""
        if architecture not in self.architectures:
            from . import LAYOUTS, get_layout

            fitting = [other for other in LAYOUTS if architecture in get_layout(other).architectures]
            raise ActstoreError(
                f"layout '{self.name}' is defined for {', '.join(self.architectures)} models, not "
                f"{architecture} ({name}); use --layout {' or '.join(fitting)}"
            )

    def prompt_slice(self, n_tokens: int) -> slice:
        """Where the ``n_tokens`` prompt positions lie in the sequence the model runs on (every row alike)."""
        return slice(0, n_tokens)

    def initial_prompt(self, model: Prompted, vectors: np.ndarray) -> np.ndarray:
        """The prompt tuning starts from, given the seed's small-random one (p, hidden)."""
        return vectors

    def text_positions(self, model: ModelSpec, max_length: int) -> int:
        """The most position embeddings the text takes at ``max_length`` (where the prompt slots take none)."""
        return max_length

    def min_length(self, model: Prompted, n_fields: int) -> int:
        """The least ``max_length`` with room for the special tokens and a token of each text field (below it
        the tokenizer would silently not truncate at all)."""
        pair = n_fields > 1 and not model.is_t5  # T5 reads the fields joined into one text
        return model.tokenizer.num_special_tokens_to_add(pair=pair) + n_fields

    @abstractmethod
    def encode(
        self, model: Prompted, texts: Sequence[tuple[str, ...]], max_length: int, task: str | None = None
    ) -> Batch:
        """Tokenise a batch of examples (right padding; ``task`` picks a text template where the layout has them)."""

    @abstractmethod
    def label_logits(
        self, model: Prompted, batch: Batch, prompt: torch.Tensor, word_ids: Sequence[int]
    ) -> torch.Tensor:
        """(batch, n_labels) label-word logits of the model run with ``prompt`` (p, hidden) in front."""


def pad_rows(rows: Sequence[Sequence[int]], pad: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows right-padded (or ``left``-padded) into (input_ids, attention_mask)."""
    width = max(map(len, rows))
    ids = torch.tensor(
        [[pad] * (width - len(r)) * left + list(r) + [pad] * (width - len(r)) * (not left) for r in rows]
    )
    mask = (torch.arange(width)[None, :] < torch.tensor([len(r) for r in rows])[:, None]).long()
    return ids, (mask.flip(1) if left else mask)


def with_prompt_mask(batch: Batch, n: int, p: int, device: torch.device) -> torch.Tensor:
    """The attention mask of prompt + text: every prompt slot is attended to."""
    mask = batch["attention_mask"]
    return torch.cat([torch.ones(n, p, dtype=mask.dtype, device=device), mask], 1)


class _Given(nn.Module):
    """Stands in for an embeddings module whose output the layout has already built."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.output


@contextmanager
def _embeddings_given(encoder: nn.Module, output: torch.Tensor) -> Iterator[None]:
    """Run ``encoder`` with its embedding output replaced by ``output`` (its own attention-mask code still runs)."""
    own = encoder.embeddings
    encoder.embeddings = _Given(output)
    try:
        yield
    finally:
        encoder.embeddings = own


def encoder_hidden(
    model: Prompted,
    mask: torch.Tensor,
    *,
    inputs_embeds: torch.Tensor | None = None,
    embedding_output: torch.Tensor | None = None,
    **extra: torch.Tensor,
) -> torch.Tensor:
    """The encoder's last hidden states, from word-level ``inputs_embeds`` (the model adds its positions and
    token types) or from a finished ``embedding_output`` (the layout built positions and LayerNorm itself)."""
    encoder = model.model.base_model
    if embedding_output is None:
        return encoder(inputs_embeds=inputs_embeds, attention_mask=mask, **extra).last_hidden_state
    with _embeddings_given(encoder, embedding_output):
        return encoder(inputs_embeds=embedding_output, attention_mask=mask).last_hidden_state


def label_scores(model: Prompted, hidden: torch.Tensor, word_ids: Sequence[int]) -> torch.Tensor:
    """Label-word logits of the hidden states where the label is read: the MLM head, or (no head) the hidden
    state dotted with the label words' input embeddings."""
    words = torch.tensor(list(word_ids), device=hidden.device)
    if model.spec.scoring == "mlm_head":
        head = getattr(model.model, "lm_head", None) or model.model.cls
        return head(hidden)[:, words]
    return hidden @ model.model.get_input_embeddings().weight[words].T


def t5_first_step(model: Prompted, embeds: torch.Tensor, mask: torch.Tensor, word_ids: Sequence[int]) -> torch.Tensor:
    """T5's label-word logits at the first decoding step."""
    n = embeds.shape[0]
    start = torch.full((n, 1), model.model.config.decoder_start_token_id, device=embeds.device)
    logits = model.model(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=start).logits
    return logits[:, 0, torch.tensor(list(word_ids), device=embeds.device)]


def prompt_token_types(batch: Batch, n: int, p: int) -> dict[str, torch.Tensor]:
    """The text's token types (where the tokenizer gives them) with type 0 on the ``p`` prompt slots."""
    if "token_type_ids" not in batch:
        return {}
    types = batch["token_type_ids"]
    return {"token_type_ids": torch.cat([torch.zeros_like(types[:, :1]).expand(n, p), types], 1)}


def prepended(model: Prompted, batch: Batch, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs_embeds, attention_mask) of the prompt vectors followed by the text's word embeddings."""
    ids = batch["input_ids"]
    n, p = ids.shape[0], prompt.shape[0]
    embeds = torch.cat([prompt.expand(n, -1, -1), model.model.get_input_embeddings()(ids)], dim=1)
    return embeds, with_prompt_mask(batch, n, p, ids.device)


def decoder_next_token(
    model: Prompted, embeds: torch.Tensor, mask: torch.Tensor, at: torch.Tensor, word_ids: Sequence[int]
) -> torch.Tensor:
    """A decoder-only LLM's label-word logits as the next token after position ``at`` of each row, run on
    ``inputs_embeds`` with explicit position ids counted over the attended positions (padding moves none). The
    LM head runs on those rows alone."""
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    hidden = model.model.base_model(
        inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False
    ).last_hidden_state
    rows = hidden[torch.arange(len(at), device=hidden.device), at.to(hidden.device)]
    logits = model.model.get_output_embeddings()(rows)
    return logits[:, torch.tensor(list(word_ids), device=logits.device)]


def decoder_rows(model: Prompted, texts: Sequence[tuple[str, ...]], max_length: int) -> list[list[int]]:
    """``<bos> text`` per example for a decoder-only LLM: the fields joined by a new line, cut to ``max_length``
    tokens with the ``<bos>`` (the tokenizer's, else the config's; none where neither has one)."""
    tokenizer = model.tokenizer
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else model.model.config.bos_token_id
    start = [] if bos is None else [bos]
    ids = tokenizer(["\n".join(f.strip() for f in t) for t in texts], add_special_tokens=False)["input_ids"]
    return [start + row[: max_length - len(start)] for row in ids]


def pad_token(model: Prompted) -> int:
    """An id for padding (never attended to): the tokenizer's pad, else its eos (GPT-2 has no pad), else 0."""
    tokenizer = model.tokenizer
    return next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
