"""Prompt sets: k seeds × p soft tokens × hidden, from a seed, from files, or from the store."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ActstoreError
from .specs import ModelSpec, PromptSpec

#: standard deviation of a fresh prompt: small, as in the prompt-tuning papers
INIT_STD = 0.02
#: seeds seed numpy's and torch's generators and are stored as int64: 0 … 2^32 - 1
MAX_SEED = 2**32 - 1


def check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """At least one seed, each a distinct integer in 0 … 2^32 - 1 (numpy refuses negative seeds deep inside a run)."""
    seeds = tuple(seeds)
    if not seeds:
        raise ActstoreError("give at least one seed")
    bad = [s for s in seeds if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED]
    if bad:
        raise ActstoreError(f"seeds must be integers from 0 to {MAX_SEED}, got {', '.join(map(repr, bad))}")
    if len(set(seeds)) != len(seeds):
        raise ActstoreError(f"duplicate seeds in {list(seeds)}")
    return seeds


@dataclass(frozen=True, eq=False)
class PromptSet:
    """Prompt vectors (seed, token, hidden) as float32, with the seeds they belong to."""

    vectors: np.ndarray
    seeds: tuple[int, ...]
    source: str

    def __post_init__(self) -> None:
        if self.vectors.ndim != 3 or self.vectors.shape[0] != len(self.seeds):
            raise ActstoreError(f"a prompt set must be (seed, token, hidden) with one row per seed; got {self.vectors.shape}")
        check_seeds(self.seeds)
        if self.vectors.shape[1] == 0:
            raise ActstoreError("a prompt needs at least one token")
        if not np.isfinite(self.vectors).all():
            raise ActstoreError(f"prompt from {self.source} holds inf or NaN values")

    @property
    def n_tokens(self) -> int:
        return self.vectors.shape[1]

    @property
    def checksum(self) -> str:
        """Identifies the exact prompts, so that stores refuse to mix activations of different prompts."""
        h = hashlib.sha256(np.ascontiguousarray(self.vectors, dtype="<f4").tobytes())
        h.update(repr(self.seeds).encode())
        return "sha256:" + h.hexdigest()[:32]

    def spec(self, model: ModelSpec) -> PromptSpec:
        return PromptSpec(model=model, seeds=self.seeds, n_tokens=self.n_tokens, checksum=self.checksum, source=self.source)

    def check_fits(self, model: ModelSpec, max_length: int) -> None:
        """Refuse prompts the model cannot take, before any work is done."""
        if self.vectors.shape[2] != model.hidden:
            raise ActstoreError(
                f"prompt hidden size {self.vectors.shape[2]} does not match {model.name} (hidden size {model.hidden})"
            )
        from .layouts import get_layout  # a model is loaded (and torch imported) wherever prompts are fitted

        if not get_layout(model.layout).prompt_positions:  # the prompt slots take no position embeddings
            if max_length > model.max_positions:
                raise ActstoreError(f"{max_length} text tokens exceed the {model.max_positions} positions of {model.name}")
        elif self.n_tokens + max_length > model.max_positions:
            raise ActstoreError(
                f"{self.n_tokens} prompt tokens + {max_length} text tokens exceed the {model.max_positions} positions of {model.name}"
            )

    @classmethod
    def random(cls, seeds: Sequence[int], n_tokens: int, hidden: int) -> "PromptSet":
        """A seeded small-random prompt per seed (what tuning starts from, and a baseline for it)."""
        if n_tokens <= 0:
            raise ActstoreError(f"prompt length must be positive, got {n_tokens}")
        seeds = check_seeds(seeds)
        rows = [np.random.default_rng(s).normal(0.0, INIT_STD, (n_tokens, hidden)).astype(np.float32) for s in seeds]
        return cls(np.stack(rows), tuple(seeds), f"random(std={INIT_STD})")

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], seeds: Sequence[int] | None = None) -> "PromptSet":
        """Load .pt/.npy/.safetensors files or PEFT checkpoint folders: one [p, hidden] tensor per seed
        (Prompt-Transferability format) or one [k, p, hidden]."""
        seeds = check_seeds(seeds) if seeds is not None else None
        rows = [row for path in paths for row in _read_prompt_file(Path(path))]
        seeds = seeds if seeds is not None else tuple(range(len(rows)))
        if len(seeds) != len(rows):
            raise ActstoreError(f"{len(rows)} prompts were read but {len(seeds)} seeds were given")
        if len({r.shape for r in rows}) != 1:
            raise ActstoreError(f"prompt files disagree in shape: {sorted({r.shape for r in rows})}")
        return cls(np.stack(rows), seeds, "files:" + ",".join(Path(p).name for p in paths))


#: export formats: one torch file per seed (Prompt-Transferability / Robust-Neurons), the same array as .npy, or
#: a PEFT checkpoint per seed
FORMATS = ("pt", "npy", "peft")
#: the tensor a PEFT prompt-tuning checkpoint keeps its prompt in
PEFT_KEY = "prompt_embeddings"


def _read_prompt_file(path: Path) -> list[np.ndarray]:
    if path.is_dir():  # a PEFT checkpoint folder
        path = next((path / n for n in ("adapter_model.safetensors", "adapter_model.bin") if (path / n).is_file()), path)
    if not path.is_file():
        raise ActstoreError(f"prompt file not found: {path}")
    try:
        if path.suffix == ".npy":
            obj = np.load(path, allow_pickle=False)
        elif path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            obj = load_file(path)
        else:
            import torch

            obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, dict):  # a state dict holding one prompt tensor (PEFT: prompt_embeddings)
            tensors = [v for v in obj.values() if hasattr(v, "ndim") and v.ndim in (2, 3)]
            if len(tensors) != 1:
                raise ActstoreError(f"{path} holds {len(tensors)} candidate prompt tensors, expected exactly one")
            obj = tensors[0]
        array = obj.detach().float().numpy() if hasattr(obj, "detach") else np.asarray(obj, dtype=np.float32)
    except ActstoreError:
        raise
    except Exception as exc:
        raise ActstoreError(f"cannot read prompt file {path}: {str(exc).splitlines()[0]}") from None
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        return [array]
    if array.ndim == 3:
        return list(array)
    raise ActstoreError(f"{path}: a prompt must be [tokens, hidden] or [seeds, tokens, hidden], got shape {array.shape}")


def export_prompts(prompts: PromptSet, out: Path, fmt: str, base_model: str) -> list[Path]:
    """Write one prompt per seed: ``seed<k>.pt`` ([tokens, hidden] float tensor), ``seed<k>.npy`` (the same array)
    or a PEFT folder ``seed<k>/`` whose config names ``base_model`` (a hub id, so that PEFT can load it anywhere)."""
    import torch
    from safetensors.torch import save_file

    if fmt not in FORMATS:
        raise ActstoreError(f"unknown prompt format '{fmt}'; use one of {', '.join(FORMATS)}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ActstoreError(f"cannot write to {out}: {exc.strerror or exc}") from None
    written = []
    for seed, vectors in zip(prompts.seeds, prompts.vectors):
        if fmt == "npy":
            np.save(out / f"seed{seed}.npy", np.ascontiguousarray(vectors))
            written.append(out / f"seed{seed}.npy")
            continue
        tensor = torch.from_numpy(np.ascontiguousarray(vectors))
        if fmt == "pt":
            torch.save(tensor, out / f"seed{seed}.pt")
            written.append(out / f"seed{seed}.pt")
            continue
        folder = out / f"seed{seed}"
        folder.mkdir(exist_ok=True)
        save_file({PEFT_KEY: tensor}, folder / "adapter_model.safetensors")
        config = {"peft_type": "PROMPT_TUNING", "task_type": "FEATURE_EXTRACTION", "base_model_name_or_path": base_model,
                  "num_virtual_tokens": prompts.n_tokens, "token_dim": int(vectors.shape[1]),
                  "num_transformer_submodules": 1, "prompt_tuning_init": "RANDOM", "inference_mode": True}
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
        written.append(folder)
    return written
