"""Extraction throughput of a decoder-only LLM against its plain forward: ``bench.py --only llm``.

A tiny-but-wide random Llama (4 layers × hidden 2,048 × FFN 5,632: the width of Llama-2/3-class MLPs, 22,528
neurons a token) in the causal layout, with the real MiniLM WordPiece tokenizer (30,522 tokens) for its
vocabulary; built in memory from its config (nothing written but the stores). The same measurement as MiniLM's
(``bench.bench_extraction``: capture + store with ``--keep both`` and ``--keep bits`` against a plain forward of
the same model and batches, the mean of one before and one after), on fewer examples and a shorter prompt, so that
it takes about two minutes on 2 CPU cores.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from actstore import tasks
from actstore.extraction import ExtractOptions
from actstore.models import PromptedModel, resolve
from actstore.prompts import PromptSet

#: the model's config: hidden, FFN, layers, heads (grouped-query: 4 key/value heads, as Llama-3's 8 of 32)
SHAPE = dict(
    hidden_size=2048, intermediate_size=5632, num_hidden_layers=4, num_attention_heads=16, num_key_value_heads=4
)
#: dev examples timed, train examples for the bits' baseline (not timed), prompt tokens
EXAMPLES, TRAIN, PROMPT_TOKENS = 16, 8, 32


def wide_llama(root: Path) -> PromptedModel:
    """The random Llama of ``SHAPE`` (seed 0, float32: a CPU's default), ready to run in the causal layout."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    tokenizer = AutoTokenizer.from_pretrained(resolve("all-minilm-l6-v2"))
    config = LlamaConfig(
        **SHAPE,
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
    return PromptedModel("wide-llama", model, tokenizer, "lm_head", str(root / "wide-llama"), layout="causal")


def bench_llm(root: Path) -> dict:
    """results.json's ``llm`` part and its two headline ratios."""
    from bench import bench_extraction  # bench.py imports this module only when it runs this part

    root = root / "llm"  # stores of its own, made afresh: MiniLM's have the same names, and a store already
    shutil.rmtree(root, ignore_errors=True)  # complete would be skipped, not timed
    root.mkdir(parents=True)
    start = time.perf_counter()
    model = wide_llama(root)
    prompts = PromptSet.random([0], PROMPT_TOKENS, model.spec.hidden)
    dev = tasks.load_split("sst2", "validation").sample(EXAMPLES)
    train = tasks.load_split("sst2", "train").sample(TRAIN)
    figures = bench_extraction(model, dev, train, prompts, ExtractOptions(batch_size=8, block=8), root)
    figures.update(
        model=f"random llama {SHAPE['num_hidden_layers']} layers × {SHAPE['hidden_size']} × "
        f"{SHAPE['intermediate_size']}",
        examples=EXAMPLES,
        prompt_tokens=PROMPT_TOKENS,
        wall_s=time.perf_counter() - start,
    )
    return {"llm": figures, "llm_extraction_vs_forward": figures["ratio"], "llm_bits_vs_forward": figures["bits_ratio"]}


def print_llm(llm: dict) -> None:
    print(
        f"extraction of a {llm['model']} ({llm['examples']} examples, {llm['prompt_tokens']} prompt tokens): "
        f"--keep bits {llm['extract_bits_examples_per_s']:.2f} ex/s, --keep both "
        f"{llm['extract_examples_per_s']:.2f} ex/s vs plain forward {llm['plain_forward_examples_per_s']:.2f} ex/s "
        f"→ ratios {llm['bits_ratio']:.2f} (bits), {llm['ratio']:.2f} (both)"
    )
