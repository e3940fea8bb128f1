"""Frozen descriptions of what a store holds; each round-trips to the store's JSON attributes.

Two runs whose specs differ would write different numbers, so a spec is also the key that
decides whether work may resume into an existing group or must be refused.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def to_attrs(spec: Any) -> dict[str, Any]:
    """A spec as plain JSON values (tuples become lists)."""
    return dataclasses.asdict(spec)


def from_attrs(cls: type[T], attrs: Mapping[str, Any]) -> T:
    """Rebuild a spec from its attributes, nested specs and tuples included."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if field.name not in attrs and field.default is not dataclasses.MISSING:
            continue  # a field added later, with a default: older stores still load
        value, hint = attrs[field.name], hints[field.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            value = from_attrs(hint, value)
        elif typing.get_origin(hint) is tuple:
            value = tuple(value)
        values[field.name] = value
    return cls(**values)


def differences(old: Any, new: Any) -> list[str]:
    """Human-readable 'field: old → new' lines, for refusing a mismatched resume."""
    a, b = to_attrs(old), to_attrs(new)
    out = []
    for key in a:
        if isinstance(a[key], dict):
            out += [f"{key}.{k}: {a[key][k]!r} → {b[key][k]!r}" for k in a[key] if a[key][k] != b[key][k]]
        elif a[key] != b[key]:
            out.append(f"{key}: {a[key]!r} → {b[key]!r}")
    return out


#: per block, the moments of a dev extraction's values (``kernels.bits_and_moments``): four exact integer sums for
#: float16, Σa and Σa² (then zeros) for float32
MOMENT_SLOTS = 4


def packed_size(n_neurons: int) -> int:
    """Bytes per (example, layer, token) of above-baseline bits: 8 neurons to a byte."""
    return -(-n_neurons // 8)


@dataclass(frozen=True)
class ModelSpec:
    """A loaded model: a different spec means different activations."""

    name: str
    revision: str
    architecture: str
    scoring: str
    n_layers: int
    n_neurons: int
    hidden: int
    max_positions: int
    n_decoder_layers: int = 0  # T5: the decoder's FFNs, captured at the first decoding step
    layout: str = "peft"  # the input layout it runs in (actstore.layouts); stores from before layouts: peft
    dtype: str = "float32"  # what the weights computed in (``--model-dtype``); stores from before it: float32


#: the architectures (``config.model_type``) actstore runs: encoders (T5 with its decoder) and decoder-only LLMs, whose
#: one stack of layers is recorded as the ``encoder`` stack (``STACKS``: the stack the prompt is in)
ENCODER_ARCHITECTURES = ("roberta", "bert", "mpnet", "t5")
DECODER_ARCHITECTURES = ("gpt2", "gpt_neox", "opt", "llama", "mistral", "qwen2", "gemma")

#: what the ``token`` coordinate 0 of an extraction is in each layout (``info``, the xarray attributes;
#: the layouts themselves are in ``actstore.layouts``)
TOKEN0 = {
    "pt": "the mask slot (its vector replaced by the <mask> embedding), where the label is read",
    "sn": "the trainable mask vector (initialised with the <mask> embedding), where the label is read",
    "peft": "the first soft prompt token (the label is read at a <mask> inside the text)",
    "causal": "the first soft prompt token, right after <bos> text (the label is the next token after the last one)",
    "prefix": "the first soft prompt token, before <bos> text (the label is the next token after the text)",
}


def layout_mismatch(what: str, made_for: ModelSpec, used: ModelSpec) -> str | None:
    """Why ``what``, made in one input layout, may not be combined with a run in another (None: same layout)."""
    if made_for.layout == used.layout:
        return None
    return (
        f"the {what} were made in the '{made_for.layout}' layout, not '{used.layout}': prompts and activations "
        f"of different layouts are different experiments; run with --layout {made_for.layout}, or pass "
        "--cross-layout to combine them on purpose"
    )


#: the two stacks of an encoder-decoder model; encoder-only models have the first alone
STACKS = ("encoder", "decoder")
#: decoder positions captured: the first decoding step, where the label word is scored
DECODER_STEPS = 1


@dataclass(frozen=True)
class PromptSpec:
    """A prompt set (seed, token, hidden) and where it came from."""

    model: ModelSpec
    seeds: tuple[int, ...]
    n_tokens: int
    checksum: str
    source: str
    seed_names: tuple[str, ...] = ()  # the release's own name of each seed (Robust-Neurons: su, 33, ...); empty: none
    files: tuple[str, ...] = ()  # provenance of imported files, one "<relative path> sha256:<hex>" per seed


@dataclass(frozen=True)
class ExtractionSpec:
    """One (task, split) extraction: everything that determines its numbers."""

    task: str
    split: str
    model: ModelSpec
    prompt_checksum: str
    seeds: tuple[int, ...]
    n_tokens: int
    n_examples: int
    data_fingerprint: str
    label_names: tuple[str, ...]
    label_words: tuple[str, ...]
    dtype: str
    max_length: int
    block: int
    store_acts: bool
    stack: str = "encoder"
    segment: int = 0  # train: blocks per baseline segment (the unit of resume and of sharding); 0 otherwise
    store_bits: bool = False  # dev: 1[a > baseline] packed 8 neurons to a byte (``--keep bits|both``)
    baseline_task: str = ""  # whose train baseline the bits were compared with
    store_moments: bool = False  # dev: per-block moments of the values (mean and spread without the values)
    n_text_fields: int = 0  # provenance: the examples' texts (example, text_field), row ids and token counts
    label_ids: tuple[int, ...] = ()  # the vocabulary ids scored per class (empty in stores from before they were kept)
    manifests: bool = False  # each unit records its chunks' CRC32Cs (``store.ledger``); false in stores from before

    #: fields added after stores existed that only add arrays or records: an extraction begun without them resumes
    #: without them
    ADDED_LATER = ("store_moments", "n_text_fields", "label_ids", "manifests")

    def resuming(self, old: ExtractionSpec) -> ExtractionSpec:
        """This spec as it continues ``old``: what later versions only add is taken from ``old``."""
        return dataclasses.replace(self, **{name: getattr(old, name) for name in self.ADDED_LATER})

    @property
    def n_blocks(self) -> int:
        return -(-self.n_examples // self.block)

    def block_examples(self, b: int) -> int:
        """Examples in block ``b`` (the last one may be short)."""
        return min(self.block, self.n_examples - b * self.block)

    @property
    def n_segments(self) -> int:
        return -(-self.n_blocks // self.segment) if self.segment else 0

    def segment_blocks(self, g: int) -> range:
        return range(g * self.segment, min((g + 1) * self.segment, self.n_blocks))

    @property
    def n_layers(self) -> int:
        return self.model.n_layers if self.stack == "encoder" else self.model.n_decoder_layers

    @property
    def n_positions(self) -> int:
        """The ``token`` axis: the prompt tokens in the encoder, the captured decoding steps in the decoder."""
        return self.n_tokens if self.stack == "encoder" else DECODER_STEPS


@dataclass(frozen=True)
class RankingSpec:
    """A ranking: which dev extraction was scored against which baseline.

    A binary sub-task of a multi-class task names its classes: ``positive`` (label 1) against ``negative``
    (label 0), other examples left out; ``n_examples`` then counts the examples included. A ranking combined
    from sub-tasks has ``subtask="combined"`` and lists them in ``parts``. Binary tasks leave all four empty.
    """

    task: str
    split: str
    baseline_task: str
    model: ModelSpec
    prompt_checksum: str
    seeds: tuple[int, ...]
    n_examples: int
    subtask: str | None = None
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The ranking's name in the store: ``rankings/<task>`` or ``rankings/<task>:<subtask>``."""
        return self.task if self.subtask is None else f"{self.task}:{self.subtask}"
