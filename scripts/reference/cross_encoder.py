#!/usr/bin/env python3
"""A tiny, randomly initialised cross-encoder checkpoint and its logits from transformers.

Writes crates/funnel-vector/tests/fixtures/tiny-cross-encoder/: a BERT
sequence-classification model (2 layers, hidden 32, one label) saved by
transformers' `save_pretrained` (config.json, model.safetensors), a WordPiece
tokenizer.json over a small vocabulary, and expected.json with (query, document) pairs,
their token ids and the logits `BertForSequenceClassification` gives them. The Rust test
`cross_encoder_matches_transformers` loads the folder and compares.

Weights are drawn with a large spread (and layer norms perturbed) so that a wrong
operation changes the logits visibly, not in the fifth decimal.

Usage: python3 scripts/reference/cross_encoder.py
Installs transformers (and so torch, large) into bench/.venv-st on first use.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(ROOT, "bench", ".venv-st")
OUT = os.path.join(ROOT, "crates/funnel-vector/tests/fixtures/tiny-cross-encoder")
sys.path.insert(0, os.path.join(ROOT, "bench"))
from peer_env import reexec_in  # noqa: E402

WORDS = """the a of in on and for with to is what how are wing wings flow flows air heat
transfer boundary layer layers shock wave waves pressure drag lift supersonic subsonic
plate plates cone cylinder shell shells buckling flutter speed high low mach number
theory experiment experimental results laminar turbulent jet jets""".split()
PIECES = ["##s", "##ing", "##ed", "##er", "##al", "##ly"]
MAX_LENGTH = 24  # shorter than the longest pair below, so truncation is exercised

PAIRS = [
    ("wing flutter", "flutter of a swept wing at high speed"),
    ("wing flutter", "heat transfer in a laminar boundary layer"),
    ("shock waves in air", "shock wave and boundary layer interaction on a flat plate"),
    ("what is drag", ""),
    (
        "heat transfer to a cone at supersonic speed",
        "experimental results for the heat transfer on cones and cylinders in supersonic "
        "flow with laminar and turbulent boundary layers and shock waves at mach numbers",
    ),
    ("Buckling of SHELLS", "buckling of thin cylindrical shells under pressure, théorie"),
]


def vocabulary():
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = special + letters + ["##" + c for c in letters] + PIECES + WORDS + list(".,?-")
    return {token: n for n, token in enumerate(dict.fromkeys(tokens))}


def tokenizer(vocab):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tok


def main():
    reexec_in(VENV, ["sentence-transformers"], {"HF_HUB_OFFLINE": "1"})
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    vocab = vocabulary()
    tok = tokenizer(vocab)
    os.makedirs(OUT, exist_ok=True)
    tok.save(os.path.join(OUT, "tokenizer.json"))
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": MAX_LENGTH, "do_lower_case": True}, f, indent=2)

    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        hidden_act="gelu",
        num_labels=1,
        initializer_range=0.3,
    )
    torch.manual_seed(7)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm" in name or name.endswith(".bias"):
                param.add_(torch.randn_like(param) * 0.2)
    model.save_pretrained(OUT)

    tok.enable_truncation(max_length=MAX_LENGTH, strategy="longest_first")
    tok.enable_padding(pad_id=vocab["[PAD]"], pad_token="[PAD]")
    encodings = tok.encode_batch(PAIRS)
    ids = torch.tensor([e.ids for e in encodings])
    with torch.no_grad():
        logits = model(
            input_ids=ids,
            token_type_ids=torch.tensor([e.type_ids for e in encodings]),
            attention_mask=torch.tensor([e.attention_mask for e in encodings]),
        ).logits
    cases = [
        {
            "query": q,
            "document": d,
            "ids": [i for i, m in zip(e.ids, e.attention_mask) if m],
            "logits": [float(x) for x in row],
        }
        for (q, d), e, row in zip(PAIRS, encodings, logits)
    ]
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"max_length": MAX_LENGTH, "cases": cases}, f, indent=1)
    sizes = {n: os.path.getsize(os.path.join(OUT, n)) for n in sorted(os.listdir(OUT))}
    print(json.dumps(sizes), file=sys.stderr)
    for case in cases:
        print(f"{case['logits'][0]:+.6f}  {len(case['ids']):2d} tokens  {case['query']!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
