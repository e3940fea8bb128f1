"""Input layouts: how the text is built around the prompt and where the label word is read.

One small module per layout (METHOD.md, "Input layouts of the reference code"), one table that lists them:

- ``pt``: Prompt-Transferability / Robust-Neurons, the seed paper's code (``pt.py``);
- ``sn``: Skill-Neuron, Wang et al. 2022 (``sn.py``);
- ``peft``: PEFT's prompt tuning, what actstore did before layouts existed (``peft.py``);
- ``causal``: decoder-only LLMs, ``<bos> text`` then the prompt, the label the next token (``causal.py``);
- ``prefix``: decoder-only LLMs with the prompt first, for comparison: its prompt positions never see the text
  (``prefix.py``).

A layout changes the activations at the prompt positions, so it is part of every spec that records a model
(``ModelSpec.layout``); stores written before layouts existed read as ``peft``. This module names them without
importing torch (``info`` and ``--help`` read it); ``get_layout`` imports a layout's code when a model runs.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

from ..errors import ActstoreError
from ..specs import TOKEN0

if TYPE_CHECKING:
    from .base import Layout

#: name → (module, class) of each layout
LAYOUTS: dict[str, tuple[str, str]] = {
    "pt": ("pt", "PromptTransferability"),
    "sn": ("sn", "SkillNeuron"),
    "peft": ("peft", "Peft"),
    "causal": ("causal", "Causal"),
    "prefix": ("prefix", "Prefix"),
}
#: the papers' layout: what every command runs unless told otherwise
DEFAULT = "pt"
#: what stores written before layouts existed were built with
LEGACY = "peft"


@cache
def get_layout(name: str) -> Layout:
    """The layout called ``name``, refused in one line when unknown."""
    if name not in LAYOUTS:
        raise ActstoreError(f"unknown layout '{name}'; use one of {', '.join(LAYOUTS)}")
    module, cls = LAYOUTS[name]
    layout: Layout = getattr(import_module(f".{module}", __name__), cls)()
    return layout


__all__ = ["DEFAULT", "LAYOUTS", "LEGACY", "TOKEN0", "get_layout"]
