"""Prompt sets: k seeds × p soft tokens × hidden, from a seed, from files, or from the store."""

from __future__ import annotations

import hashlib
import itertools
import json
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from .digest import file_sha256
from .errors import ActstoreError
from .specs import ModelSpec, PromptSpec

if typing.TYPE_CHECKING:
    from .store import Store

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
    """Prompt vectors (seed, token, hidden) as float32, with the seeds they belong to; ``seed_names`` keeps a
    release's own name of each seed (Robust-Neurons: ``su``, ``33``, ...) and ``files`` each imported file with its
    sha256."""

    vectors: np.ndarray
    seeds: tuple[int, ...]
    source: str
    seed_names: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.vectors.ndim != 3 or self.vectors.shape[0] != len(self.seeds):
            raise ActstoreError(
                f"a prompt set must be (seed, token, hidden) with one row per seed; got {self.vectors.shape}"
            )
        check_seeds(self.seeds)
        if self.vectors.shape[1] == 0:
            raise ActstoreError("a prompt needs at least one token")
        if not np.isfinite(self.vectors).all():
            raise ActstoreError(f"prompt from {self.source} holds inf or NaN values")
        if self.seed_names and (
            len(self.seed_names) != len(self.seeds) or len(set(self.seed_names)) != len(self.seeds)
        ):
            raise ActstoreError(f"seed names {list(self.seed_names)} do not name the seeds {list(self.seeds)} one each")

    @property
    def n_tokens(self) -> int:
        return self.vectors.shape[1]

    @property
    def checksum(self) -> str:
        """Identifies the exact prompts, so that stores refuse to mix activations of different prompts."""
        h = hashlib.sha256(np.ascontiguousarray(self.vectors, dtype="<f4").tobytes())
        h.update(repr(self.seeds).encode())
        return "sha256:" + h.hexdigest()[:32]

    @classmethod
    def stored(cls, store: Store, task: str) -> PromptSet | None:
        """The prompts ``store`` holds for ``task`` (None: none), to extract or evaluate with."""
        held = store.prompts(task)
        if held is None:
            return None
        spec = held.spec
        return cls(held.vectors, spec.seeds, spec.source, spec.seed_names, spec.files)

    def spec(self, model: ModelSpec) -> PromptSpec:
        return PromptSpec(
            model=model,
            seeds=self.seeds,
            n_tokens=self.n_tokens,
            checksum=self.checksum,
            source=self.source,
            seed_names=self.seed_names,
            files=self.files,
        )

    @property
    def names(self) -> tuple[str, ...]:
        """Each seed's name: the recorded one, else the integer seed."""
        return self.seed_names or tuple(str(s) for s in self.seeds)

    def check_fits(self, model: ModelSpec, max_length: int) -> None:
        """Refuse prompts the model cannot take, before any work is done."""
        if self.vectors.shape[2] != model.hidden:
            raise ActstoreError(
                f"prompt hidden size {self.vectors.shape[2]} does not match {model.name} (hidden size {model.hidden})"
            )
        from .layouts import get_layout  # a model is loaded (and torch imported) wherever prompts are fitted

        if not get_layout(model.layout).prompt_positions:  # the prompt slots take no position embeddings
            needed = get_layout(model.layout).text_positions(model, max_length)
            if needed > model.max_positions:
                raise ActstoreError(
                    f"{max_length} text tokens exceed the {model.max_positions} positions of "
                    f"{model.name} (the '{model.layout}' layout's text takes up to {needed})"
                )
        elif self.n_tokens + max_length > model.max_positions:
            raise ActstoreError(
                f"{self.n_tokens} prompt tokens + {max_length} text tokens exceed the "
                f"{model.max_positions} positions of {model.name}"
            )

    @classmethod
    def random(cls, seeds: Sequence[int], n_tokens: int, hidden: int) -> PromptSet:
        """A seeded small-random prompt per seed (what tuning starts from, and a baseline for it)."""
        if n_tokens <= 0:
            raise ActstoreError(f"prompt length must be positive, got {n_tokens}")
        seeds = check_seeds(seeds)
        rows = [np.random.default_rng(s).normal(0.0, INIT_STD, (n_tokens, hidden)).astype(np.float32) for s in seeds]
        return cls(np.stack(rows), tuple(seeds), f"random(std={INIT_STD})")

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], seeds: Sequence[int] | None = None) -> PromptSet:
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

    @classmethod
    def from_robust_neurons(cls, root: str | Path, task: str, architecture: str, hidden: int) -> PromptSet:
        """The prompts of ``task`` for a model of ``architecture`` (``ModelSpec.architecture``) from a Robust-Neurons
        tree ``root/seed_<s>/<Task>Prompt<Model>/task_prompt``, every seed folder in it (``su`` first as seed 0, then
        the numeric ones as their number); each file must hold a (100, ``hidden``) tensor."""
        root = Path(root)
        seed_folders = robust_neurons_seeds(root, task)
        folder = robust_neurons_folder(task, architecture)
        if not any((path / folder).is_dir() for _, path in seed_folders):
            found = sorted({p.name for _, path in seed_folders for p in path.glob(f"{RN_TASKS[task]}Prompt*")})
            raise ActstoreError(
                f"{root} holds no {folder} folder in any seed_<s> folder"
                + (f" (found {', '.join(found)}: prompts for another model)" if found else "")
            )
        rows, files = [], []
        for _, path in seed_folders:
            file = path / folder / RN_FILE
            if not file.is_file():
                raise ActstoreError(f"missing prompt file {file}: every seed_<s> folder of {root} must hold one")
            array = _load_array(file)
            if array.ndim == 2 and array.shape[1] != hidden:
                raise ActstoreError(
                    f"{file}: prompt hidden size {array.shape[1]} does not match the model's hidden size {hidden}"
                )
            if array.shape != (RN_TOKENS, hidden):
                raise ActstoreError(
                    f"{file}: a Robust-Neurons prompt is ({RN_TOKENS}, {hidden}), got shape {tuple(array.shape)}"
                )
            rows.append(array)
            files.append(f"{file.relative_to(root).as_posix()} sha256:{file_sha256(file)}")
        return cls(
            np.stack(rows),
            tuple(seed for seed, _ in seed_folders),
            f"robust-neurons:{root}",
            seed_names=tuple(path.name.removeprefix(RN_SEED_PREFIX) for _, path in seed_folders),
            files=tuple(files),
        )


#: export formats: one torch file per seed (Prompt-Transferability), the same array as .npy, a PEFT checkpoint per
#: seed, or the Robust-Neurons release's tree (``seed_<s>/<Task>Prompt<Model>/task_prompt``)
Format = Literal["pt", "npy", "peft", "robust-neurons"]
FORMATS: tuple[Format, ...] = get_args(Format)
#: where ``actstore prompts import`` reads from: files (FILES...) or a Robust-Neurons tree (one DIR)
Source = Literal["files", "robust-neurons"]
SOURCES: tuple[Source, ...] = get_args(Source)

# ---- the Robust-Neurons release (Ackermann & Ohmer 2024; LeonAckermann/Robust-Neurons, continuous_prompts/)

#: their task folder names, per actstore task: the 8 tasks they released prompts for
RN_TASKS = {
    "imdb": "IMDB",
    "sst2": "SST2",
    "qnli": "QNLI",
    "qqp": "QQP",
    "mrpc": "MRPC",
    "ethics_deontology": "ethicsdeontology",
    "ethics_justice": "ethicsjustice",
    "movie_rationales": "movierationales",
}
#: their model folder suffix per architecture (``ModelSpec.architecture``)
RN_MODELS = {"roberta": "Roberta", "t5": "T5", "bert": "Bert"}
#: their prompts' length (100 soft tokens), file name and seed folder prefix
RN_TOKENS = 100
RN_FILE = "task_prompt"
RN_SEED_PREFIX = "seed_"
#: Su et al.'s prompt, released beside their own seeds, as an actstore seed
RN_SU = "su"
#: the layout their prompts were tuned in
RN_LAYOUT = "pt"


def robust_neurons_folder(task: str, architecture: str) -> str:
    """``<Task>Prompt<Model>``: a task's folder in each seed folder of the release."""
    if task not in RN_TASKS:
        _no_released_task(task)
    if architecture not in RN_MODELS:
        raise ActstoreError(f"the Robust-Neurons format names {', '.join(RN_MODELS)} models, not a {architecture}")
    return f"{RN_TASKS[task]}Prompt{RN_MODELS[architecture]}"


def _no_released_task(task: str) -> typing.NoReturn:
    from .tasks import source_task, task_names

    if task not in task_names():
        raise ActstoreError(f"unknown task '{task}'; the Robust-Neurons release has {', '.join(RN_TASKS)}")
    if (clean := source_task(task)) in RN_TASKS:  # an adversarial task runs its clean source's prompts
        raise ActstoreError(
            f"the Robust-Neurons release has no prompts of its own for task '{task}': it runs the "
            f"prompts of '{clean}'; import those with --task {clean}"
        )
    raise ActstoreError(f"the Robust-Neurons release has no prompts for task '{task}', only for {', '.join(RN_TASKS)}")


def robust_neurons_seed(name: str) -> int:
    """A seed folder's name (after ``seed_``) as an actstore seed: ``su`` is 0, a number is itself."""
    if name == RN_SU:
        return 0
    if name.isascii() and name.isdigit():
        return int(name)
    raise ActstoreError(
        f"seed folder '{RN_SEED_PREFIX}{name}' is neither {RN_SEED_PREFIX}{RN_SU} nor {RN_SEED_PREFIX}<number>"
    )


def robust_neurons_seeds(root: Path, task: str) -> list[tuple[int, Path]]:
    """The seed folders of a Robust-Neurons tree as (seed, folder): ``su`` first, then by number; refuses a
    ``task`` they did not release, a folder that is not such a tree, a task no seed folder holds, and two seed
    folders of the same seed — checks that need no model, made before one is loaded."""
    if task not in RN_TASKS:
        _no_released_task(task)
    if not root.is_dir():
        raise ActstoreError(f"{root} is not a Robust-Neurons prompt tree: no such directory")
    folders = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(RN_SEED_PREFIX)]
    if not folders:
        raise ActstoreError(
            f"{root} is not a Robust-Neurons prompt tree: no {RN_SEED_PREFIX}<s> folders "
            f"(expected {RN_SEED_PREFIX}<s>/<Task>Prompt<Model>/{RN_FILE})"
        )
    seeds = sorted(
        ((robust_neurons_seed(p.name.removeprefix(RN_SEED_PREFIX)), p) for p in folders),
        key=lambda item: (item[1].name != RN_SEED_PREFIX + RN_SU, item[0]),
    )
    for (a, pa), (b, pb) in itertools.pairwise(seeds):
        if a == b:
            raise ActstoreError(f"{pa.name} and {pb.name} of {root} are both seed {a}")
    check_seeds([seed for seed, _ in seeds])
    prefix = f"{RN_TASKS[task]}Prompt"
    if not any(p.is_dir() and p.name.startswith(prefix) for _, path in seeds for p in path.iterdir()):
        raise ActstoreError(
            f"{root} holds no prompts for task '{task}': no {prefix}<Model> folder in any {RN_SEED_PREFIX}<s> folder"
        )
    return seeds


#: the tensor a PEFT prompt-tuning checkpoint keeps its prompt in
PEFT_KEY = "prompt_embeddings"


def _read_prompt_file(path: Path) -> list[np.ndarray]:
    if path.is_dir():  # a PEFT checkpoint folder
        path = next(
            (path / n for n in ("adapter_model.safetensors", "adapter_model.bin") if (path / n).is_file()), path
        )
    array = _load_array(path)
    if array.ndim == 2:
        return [array]
    if array.ndim == 3:
        return list(array)
    raise ActstoreError(
        f"{path}: a prompt must be [tokens, hidden] or [seeds, tokens, hidden], got shape {array.shape}"
    )


def _load_array(path: Path) -> np.ndarray:
    """The one tensor of a .npy, .safetensors or torch file (any other name) as float32."""
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
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ActstoreError(f"cannot read prompt file {path}: {first_line}") from None
    return np.asarray(array, dtype=np.float32)


def export_prompts(
    prompts: PromptSet, out: Path, fmt: str, base_model: str, *, task: str = "", architecture: str = ""
) -> list[Path]:
    """Write one prompt per seed: ``seed<k>.pt`` ([tokens, hidden] float tensor), ``seed<k>.npy`` (the same array),
    a PEFT folder ``seed<k>/`` whose config names ``base_model`` (a hub id, so that PEFT can load it anywhere), or
    (robust-neurons) ``seed_<name>/<Task>Prompt<Model>/task_prompt`` of ``task`` for a model of ``architecture``,
    a torch file of the [100, hidden] tensor as their code loads it, each seed under its recorded name."""
    import torch
    from safetensors.torch import save_file

    if fmt not in FORMATS:
        raise ActstoreError(f"unknown prompt format '{fmt}'; use one of {', '.join(FORMATS)}")
    if fmt == "robust-neurons":
        rn_folder = robust_neurons_folder(task, architecture)  # refused before anything is written
        if prompts.n_tokens != RN_TOKENS:
            raise ActstoreError(
                f"the Robust-Neurons format holds {RN_TOKENS}-token prompts (their code's prompt "
                f"length); these have {prompts.n_tokens}"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ActstoreError(f"cannot write to {out}: {exc.strerror or exc}") from None
    written: list[Path] = []
    for seed, name, vectors in zip(prompts.seeds, prompts.names, prompts.vectors):
        if fmt == "robust-neurons":
            target = out / f"{RN_SEED_PREFIX}{name}" / rn_folder / RN_FILE
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.save(torch.from_numpy(np.ascontiguousarray(vectors)), target)
            written.append(target)
            continue
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
        config = {
            "peft_type": "PROMPT_TUNING",
            "task_type": "FEATURE_EXTRACTION",
            "base_model_name_or_path": base_model,
            "num_virtual_tokens": prompts.n_tokens,
            "token_dim": int(vectors.shape[1]),
            "num_transformer_submodules": 1,
            "prompt_tuning_init": "RANDOM",
            "inference_mode": True,
        }
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
        written.append(folder)
    return written
