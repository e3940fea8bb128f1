"""Where each group of a store lives: the one place its tree is spelled.

prompts/<task>                      a task's prompts (``PromptSpec``)
extractions/<task>/<split>          activations, bits, scores (``ExtractionSpec``)
decoder_extractions/<task>/<split>  T5's decoder's, beside them
rankings/<task>[:<subtask>]         skill-neuron rankings (``RankingSpec``)
results/<kind>/<name>               what the analyses store (tuning, evaluation, suppression, ...)
"""

from __future__ import annotations

import re

#: the top-level folders of the tree
PROMPTS, EXTRACTIONS, RANKINGS, RESULTS = "prompts", "extractions", "rankings", "results"
#: where extraction groups live: the encoder's (and BERT's, RoBERTa's ...) and T5's decoder's (``extraction_path``)
EXTRACTION_ROOTS = ("extractions/", "decoder_extractions/")
#: the group a key lies in, from the path of any key inside it
_GROUP = re.compile(r"^(prompts/[^/]+|rankings/[^/]+|results/[^/]+/[^/]+|(?:decoder_)?extractions/[^/]+/[^/]+)/")
_KIND = {
    "prompts": "prompts",
    "rankings": "ranking",
    "results": "result",
    "extractions": "extraction",
    "decoder_extractions": "extraction",
}


def prompts_path(task: str) -> str:
    return f"{PROMPTS}/{task}"


def extraction_path(task: str, split: str, stack: str = "encoder") -> str:
    """T5's decoder activations live in a tree of their own, ``decoder_extractions/<task>/<split>``: inside the
    split's group, their other layers and single token would not align with it (``xr.open_datatree`` refuses)."""
    return f"extractions/{task}/{split}" if stack == "encoder" else f"{stack}_extractions/{task}/{split}"


def ranking_path(name: str) -> str:
    return f"{RANKINGS}/{name}"


def result_path(kind: str, name: str = "") -> str:
    """A result's group, or with no name the folder of every result of ``kind``."""
    return f"{RESULTS}/{kind}/{name}" if name else f"{RESULTS}/{kind}"


def group_of(key: str) -> str | None:
    """The group a store key lies in (None: the root's own keys)."""
    found = _GROUP.match(key)
    return found.group(1) if found else None


def kind_of(path: str) -> str:
    """What a group holds: prompts, extraction, ranking or result."""
    return _KIND[path.split("/", 1)[0]]
