#!/usr/bin/env python3
"""ANN: Funnel's HNSW against hnswlib on the same vectors, one run, side by side.

Vectors: all-MiniLM-L6-v2 embeddings (computed by `funnel embed`, cached in bench/.cache)
of a seeded sample of the package corpus: 100,000 base documents and 1,000 other
documents as queries. Ground truth: exact top-10 by cosine (numpy). Both indexes use
M=16, ef_construction=200, cosine; queries run one at a time on one thread, sweeping ef.
Reported: recall@10 and queries per second per ef; the QPS ratio at the smallest ef where
each reaches recall@10 >= 0.95, and at recall@10 = 0.95 exactly (interpolated).

Usage: python3 bench/ann_speed.py [--n 100000] [--queries 1000] [--build-threads 2]
Writes bench/results/ann_speed.json.
"""

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from peer_env import reexec_in  # noqa: E402

VENV = os.path.join(HERE, ".venv")
CACHE = os.path.join(HERE, ".cache")
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256]


def prepare(args):
    """The cached vectors for the sample, embedding them with `funnel embed` when missing."""
    path = os.path.join(CACHE, f"corpus-minilm-{args.n}-{args.queries}.npy")
    if os.path.exists(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    with gzip.open(os.path.join(args.shared, "data/corpus/pkg-summaries.jsonl.gz"), "rt") as f:
        docs = [json.loads(line) for line in f]
    sample = random.Random(20261128).sample(range(len(docs)), args.n + args.queries)
    texts = os.path.join(CACHE, "ann-texts.txt")
    with open(texts, "w") as f:
        for i in sample:
            doc = docs[i]
            f.write(f"{doc['title']}: {doc['text']}".replace("\n", " ").strip() + "\n")
    model = os.path.abspath(os.path.join(args.shared, "models/all-MiniLM-L6-v2"))
    subprocess.check_call([args.bin, "embed", "--model", model, "--file", texts, "--out", path + ".tmp"])
    os.rename(path + ".tmp", path)
    return path


def hnswlib_sweep(base, queries, truth, args):
    import hnswlib
    import numpy as np

    index = hnswlib.Index(space="cosine", dim=base.shape[1])
    index.set_num_threads(args.build_threads)
    started = time.perf_counter()
    index.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=42)
    index.add_items(base, np.arange(len(base)))
    build_seconds = time.perf_counter() - started
    index.set_num_threads(1)
    sweep = []
    for ef in EFS:
        index.set_ef(ef)
        started = time.perf_counter()
        found = [index.knn_query(q, k=10)[0][0] for q in queries]  # one query per call, as a server would
        seconds = time.perf_counter() - started
        hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
        sweep.append({"ef": ef, "recall_at_10": hits / (10 * len(queries)), "qps": len(queries) / seconds})
    return {"build_seconds": build_seconds, "build_threads": args.build_threads, "sweep": sweep}


def best_qps(sweep, floor=0.95):
    """QPS at the smallest ef that reaches recall@10 >= floor (None if none does)."""
    for point in sweep:
        if point["recall_at_10"] >= floor:
            return point
    return None


def qps_at(sweep, floor=0.95):
    """QPS at exactly recall@10 = floor, interpolated linearly between the two sweep
    points around it, so that neither side gains from where the ef grid happens to fall."""
    for lo, hi in zip(sweep, sweep[1:]):
        if lo["recall_at_10"] < floor <= hi["recall_at_10"]:
            t = (floor - lo["recall_at_10"]) / (hi["recall_at_10"] - lo["recall_at_10"])
            return lo["qps"] + t * (hi["qps"] - lo["qps"])
    return sweep[0]["qps"] if sweep and sweep[0]["recall_at_10"] >= floor else None


def run(args, path):
    import numpy as np

    vectors = np.load(path)
    base, queries = vectors[: args.n], vectors[args.n : args.n + args.queries]
    unit = base / np.linalg.norm(base, axis=1, keepdims=True)
    q_unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    truth = np.argsort(-(q_unit @ unit.T), axis=1)[:, :10]

    env = dict(os.environ, RAYON_NUM_THREADS=str(args.build_threads))
    efs = ",".join(map(str, EFS))
    out = subprocess.check_output(
        [args.example, path, "--n", str(args.n), "--queries", str(args.queries), "--efs", efs], env=env
    )
    funnel = json.loads(out)
    peer = hnswlib_sweep(base, queries, truth, args)
    ours, theirs = best_qps(funnel["sweep"]), best_qps(peer["sweep"])
    result = {
        "data": f"{args.n} all-MiniLM-L6-v2 vectors of package-corpus documents, {args.queries} queries",
        "params": {"M": 16, "ef_construction": 200, "metric": "cosine", "k": 10, "query_threads": 1},
        "funnel": funnel,
        "hnswlib": peer,
        "at_recall_0.95": {
            "funnel": ours,
            "hnswlib": theirs,
            "qps_ratio": ours["qps"] / theirs["qps"] if ours and theirs else None,
        },
        "interpolated_qps_at_recall_0.95": {
            "funnel": qps_at(funnel["sweep"]),
            "hnswlib": qps_at(peer["sweep"]),
            "ratio": qps_at(funnel["sweep"]) / qps_at(peer["sweep"]) if qps_at(peer["sweep"]) else None,
        },
        "build_time_ratio": funnel["build_seconds"] / peer["build_seconds"],
    }
    for name, sweep in (("funnel", funnel["sweep"]), ("hnswlib", peer["sweep"])):
        print(name)
        for p in sweep:
            print(f"  ef={p['ef']:>4}  recall@10={p['recall_at_10']:.4f}  qps={p['qps']:>9.0f}")
    print(f"build: funnel {funnel['build_seconds']:.1f} s, hnswlib {peer['build_seconds']:.1f} s "
          f"({args.build_threads} threads)")
    print(json.dumps(result["at_recall_0.95"]))
    print(json.dumps(result["interpolated_qps_at_recall_0.95"]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print("wrote", args.out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--bin", default=os.path.join(ROOT, "target/release/funnel"))
    parser.add_argument("--example", default=os.path.join(ROOT, "target/release/examples/ann_bench"))
    parser.add_argument("--shared", default=os.path.join(ROOT, "../shared"))
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--vectors", help="use this .npy instead of the cached corpus sample")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "ann_speed.json"))
    args = parser.parse_args()
    reexec_in(VENV, ["numpy", "hnswlib"])
    path = args.vectors or prepare(args)
    if args.prepare_only:
        return
    run(args, path)


if __name__ == "__main__":
    main()
