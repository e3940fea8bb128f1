"""Input layouts: how the text is built around the prompt and where the label word is read.

One small module per layout (METHOD.md, "Input layouts of the reference code"), one table that lists them:

- ``pt``: Prompt-Transferability / Robust-Neurons, the seed paper's code (``pt.py``);
- ``sn``: Skill-Neuron, Wang et al. 2022 (``sn.py``);
- ``peft``: PEFT's prompt tuning, what actstore did before layouts existed (``peft.py``).

A layout changes the activations at the prompt positions, so it is part of every spec that records a model
(``ModelSpec.layout``); stores written before layouts existed read as ``peft``.
"""

from __future__ import annotations

from ..errors import ActstoreError
from .base import Batch, Layout
from .peft import Peft
from .pt import PromptTransferability
from .sn import SkillNeuron

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (PromptTransferability(), SkillNeuron(), Peft())}
#: the papers' layout: what every command runs unless told otherwise
DEFAULT = "pt"
#: what stores written before layouts existed were built with
LEGACY = "peft"


def get_layout(name: str) -> Layout:
    """The layout called ``name``, refused in one line when unknown."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ActstoreError(f"unknown layout '{name}'; use one of {', '.join(LAYOUTS)}") from None


__all__ = ["Batch", "DEFAULT", "LAYOUTS", "LEGACY", "Layout", "get_layout"]
