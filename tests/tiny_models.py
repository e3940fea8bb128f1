"""Tiny random models and tokenizers of every supported architecture, built offline from configs.

No RoBERTa, T5 or MLM-head weights can be downloaded here, so tests build their own: 2 layers (T5: 3 in the
decoder, so that no test mistakes one stack for the other),
hidden 32, FFN 64, deterministic weights from a seed, tokenizers trained on a built-in corpus.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

KINDS = ("roberta", "bert", "bert_nohead", "mpnet", "t5", "t5_gated")

WORDS = """the a an and or but of to in on for with as at by from this that it is was were be been are not no
yes true false maybe negative neutral positive good bad great terrible fine movie film story plot actor actors acting
director scene scenes funny boring dull charming moving love loved hate hated best worst well very
really too much more most some all one two time life people world man woman work way make made just
than then so if when what who how why there their they he she we you i me my your his her our its
question sentence answer same different right wrong reasonable unreasonable excuse scenario because
entailment duplicate equivalent not_entailment review reviews performance characters ending beautiful
awful wonderful waste mess masterpiece heart soul comedy drama thriller horror music script""".split()
CORPUS = [" ".join(WORDS[i : i + 12]) for i in range(0, len(WORDS), 6)] * 3 + WORDS * 5
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def _word_piece_vocab(specials: list[str]) -> dict[str, int]:
    letters = sorted({c for w in WORDS for c in w})
    pieces = specials + WORDS + letters + [f"##{c}" for c in letters] + [",", ".", "'", "!", "?", "-", "s", "##s"]
    return {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}


def _bert(head: bool, sizes: dict):
    from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast(vocab=_word_piece_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=300, **sizes)
    return (BertForMaskedLM if head else BertModel)(config), tokenizer


def _mpnet(sizes: dict):
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    tokenizer = MPNetTokenizerFast(
        vocab=_word_piece_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]), unk_token="<unk>"
    )
    config = MPNetConfig(
        vocab_size=len(tokenizer), max_position_embeddings=300, pad_token_id=tokenizer.pad_token_id, **sizes
    )
    return MPNetModel(config), tokenizer


def _roberta(path: Path, sizes: dict):
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator(CORPUS, vocab_size=1000, min_frequency=1, special_tokens=specials, show_progress=False)
    bpe.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    bpe.save(str(path / "tokenizer.json"))
    tokenizer = RobertaTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
    config = RobertaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=302, pad_token_id=1, bos_token_id=0, eos_token_id=2, **sizes
    )
    return RobertaForMaskedLM(config), tokenizer


def _t5(path: Path, gated: bool):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import T5Config, T5ForConditionalGeneration, T5TokenizerFast

    # a fixed vocabulary: every corpus word is one "▁word" piece, letters spell out anything else
    letters = sorted({c for w in WORDS for c in w} | set(",.'!?-"))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [("▁" + w, -1.0) for w in WORDS]
    vocab += [("▁", -5.0)] + [(c, -10.0) for c in letters]
    unigram = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    unigram.normalizer = normalizers.NFKC()
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    unigram.decoder = decoders.Metaspace()
    unigram.save(str(path / "tokenizer.json"))
    tokenizer = T5TokenizerFast(
        tokenizer_file=str(path / "tokenizer.json"), extra_ids=0, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=3,
        num_heads=4,
        feed_forward_proj="gated-gelu" if gated else "relu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        tie_word_embeddings=not gated,
    )
    return T5ForConditionalGeneration(config), tokenizer


def built_once(make: Callable[[str, Path], Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A fixture's builder: each kind of tiny model made once, in a folder of its own, then its folder reused."""
    cache: dict[str, Path] = {}

    def build(kind: str) -> Path:
        if kind not in cache:
            cache[kind] = make(kind, tmp_path_factory.mktemp(kind))
        return cache[kind]

    return build


def make_tiny_model(kind: str, path: Path, seed: int = 0, **sizes: int) -> Path:
    """Write a tiny random ``kind`` model + tokenizer into ``path``; loadable with from_pretrained offline. ``sizes``
    override ``SIZES`` for the encoders (e.g. ``hidden_size=768``: as wide as the released prompts)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if sizes and kind.startswith("t5"):
        raise ValueError("sizes are the encoders' config fields; the tiny T5 has its own")
    sizes = {**SIZES, **sizes}
    builders = {
        "roberta": lambda: _roberta(path, sizes),
        "bert": lambda: _bert(True, sizes),
        "bert_nohead": lambda: _bert(False, sizes),
        "mpnet": lambda: _mpnet(sizes),
        "t5": lambda: _t5(path, False),
        "t5_gated": lambda: _t5(path, True),
    }
    with torch.random.fork_rng():  # the caller's random state stays where it was
        torch.manual_seed(seed)
        model, tokenizer = builders[kind]()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
