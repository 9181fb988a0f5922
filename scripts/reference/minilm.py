#!/usr/bin/env python3
"""Reference embeddings from sentence-transformers for the MiniLM model folder.

Writes crates/funnel-vector/tests/fixtures/minilm.json: a few sentences (short, long,
non-ASCII, past the truncation length) and sentence-transformers' normalised vectors,
which scripts/gates.py compares with `funnel embed` (cosine >= 0.999 each).

Usage: python3 scripts/reference/minilm.py [--model ../shared/models/all-MiniLM-L6-v2]
Installs sentence-transformers (and so torch, large) into bench/.venv-st on first use.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(ROOT, "bench", ".venv-st")
OUT = os.path.join(ROOT, "crates/funnel-vector/tests/fixtures/minilm.json")
sys.path.insert(0, os.path.join(ROOT, "bench"))
from peer_env import reexec_in  # noqa: E402
SENTENCES = [
    "hello world",
    "An async web framework for Python with websockets and background tasks.",
    "A haunted manor and its ghosts.",
    "Café crème brûlée — naïve façade, 東京 and Zürich.",
    "The quick brown fox jumps over the lazy dog. " * 40,  # beyond 256 tokens: truncated
    "",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.path.join(ROOT, "../shared/models/all-MiniLM-L6-v2"))
    args = parser.parse_args()
    reexec_in(VENV, ["sentence-transformers"], {"HF_HUB_OFFLINE": "1"})
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(os.path.abspath(args.model), device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True)
    with open(OUT, "w") as f:
        json.dump({"model": "all-MiniLM-L6-v2", "sentences": SENTENCES,
                   "vectors": [[round(float(x), 7) for x in v] for v in vectors]}, f)
    print(f"wrote {OUT}: {len(SENTENCES)} sentences, dim {len(vectors[0])}; hello world starts {vectors[0][:5]}")


if __name__ == "__main__":
    main()
