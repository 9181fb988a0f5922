#!/usr/bin/env python3
"""Embedding speed: `funnel embed` (candle) against sentence-transformers (PyTorch), both on
2 threads, on the same sentences: summaries from the package corpus. Sentences per second
and the ratio; the vectors are compared too (mean and lowest cosine).

Usage: python3 bench/embed_speed.py [--n 1000] [--threads 2] [--rounds 3]
Installs sentence-transformers (with torch) into bench/.venv-st on first use.
Writes bench/results/embed_speed.json.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import time

from peer_env import reexec_in

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv-st")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="turns each side takes; each keeps its best")
    parser.add_argument("--bin", default=os.path.join(ROOT, "target/release/funnel"))
    parser.add_argument("--shared", default=os.path.join(ROOT, "../shared"))
    args = parser.parse_args()
    reexec_in(VENV, ["sentence-transformers"], {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)})

    sentences = []
    with gzip.open(os.path.join(args.shared, "data/corpus/pkg-summaries.jsonl.gz"), "rt") as f:
        for line in f:
            text = json.loads(line)["text"].replace("\n", " ").strip()
            if len(text) > 20:
                sentences.append(text)
            if len(sentences) == args.n:
                break
    path = "/tmp/funnel-embed-bench.txt"
    with open(path, "w") as f:
        f.write("\n".join(sentences) + "\n")
    model_dir = os.path.abspath(os.path.join(args.shared, "models/all-MiniLM-L6-v2"))

    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))

    def run_funnel():
        out = subprocess.check_output([args.bin, "embed", "--model", model_dir, "--file", path, "--json"], env=env)
        ours = json.loads(out)
        return ours, len(sentences) / ours["seconds"]

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(model_dir, device="cpu")
    model.encode(sentences[:32])  # warm-up, as Funnel's timing excludes loading
    # The machine's speed drifts, so the two take turns for --rounds rounds and each keeps
    # its best. Funnel batches 16 texts; sentence-transformers gets its best of 8, 16 and
    # its default 32.
    funnel_rates, st_rates = [], {8: [], 16: [], 32: []}
    for _ in range(args.rounds):
        ours, rate = run_funnel()
        funnel_rates.append(rate)
        for batch_size in st_rates:
            started = time.time()
            theirs = model.encode(sentences, batch_size=batch_size, normalize_embeddings=True)
            st_rates[batch_size].append(len(sentences) / (time.time() - started))
    funnel_rate = max(funnel_rates)
    st_rate = max(max(rates) for rates in st_rates.values())

    cosines = [float(sum(a * b for a, b in zip(x, y))) for x, y in zip(ours["vectors"], theirs.tolist())]
    report = {"command": " ".join(sys.argv), "sentences": len(sentences), "threads": args.threads,
              "funnel_sentences_per_s": round(funnel_rate, 1), "sentence_transformers_sentences_per_s": round(st_rate, 1),
              "sentence_transformers_by_batch_size": {k: round(max(v), 1) for k, v in st_rates.items()},
              "rounds": args.rounds, "funnel_by_round": [round(r, 1) for r in funnel_rates],
              "ratio_funnel_over_st": round(funnel_rate / st_rate, 3), "mean_cosine": sum(cosines) / len(cosines),
              "min_cosine": min(cosines)}
    print(json.dumps(report, indent=1))
    with open(os.path.join(HERE, "results", "embed_speed.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
