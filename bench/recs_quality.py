#!/usr/bin/env python3
"""Recommendation quality: Funnel's models against implicit's ALS, BPR and item-kNN,
side by side on the same files in one run, reported as ratios.

Datasets: ml-100k folds u1..u5 and ml-latest-small with each user's latest 20% of
ratings as test (made with `funnel split --method user-temporal`). Relevance: rating
>= 4; every item not in the user's training data is a candidate; NDCG@10 with gain
2^rel - 1 and the ideal over all relevant items (Funnel's definition). Popularity is
computed here too and must equal Funnel's to 1e-9: that proves both sides use one
protocol.

Usage: python3 bench/recs_quality.py [--bin target/release/funnel] [--shared ../shared] [--folds 5]
Installs implicit, numpy and scipy into bench/.venv on first use (CPU build).
Writes bench/results/recs_quality.json.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

from peer_env import reexec_in

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv")
PEERS = ["implicit", "numpy", "scipy", "threadpoolctl"]


def read_events(path):
    rows = []
    with open(path) as f:
        first = f.readline()
        if "\t" in first:  # MovieLens u*.base / u*.test
            f.seek(0)
            for line in f:
                u, i, r, t = line.rstrip("\n").split("\t")
                rows.append((u, i, float(r)))
        else:  # funnel split CSV: user,item,kind,value,timestamp
            for line in f:
                u, i, _, r, _ = line.rstrip("\n").split(",")
                rows.append((u, i, float(r)))
    return rows


def ndcg_at_10(ranked, relevant):
    dcg = sum(1.0 / math.log2(k + 2) for k, item in enumerate(ranked[:10]) if item in relevant)
    ideal = sum(1.0 / math.log2(k + 2) for k in range(min(10, len(relevant))))
    return dcg / ideal


def implicit_scores(train, test, threads):
    import warnings

    warnings.filterwarnings("ignore", message="Method expects CSR input")
    import numpy as np
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking
    from implicit.nearest_neighbours import CosineRecommender

    users, items = {}, {}
    for u, i, _ in train + test:
        users.setdefault(u, len(users))
        items.setdefault(i, len(items))
    rows = [users[u] for u, _, _ in train]
    cols = [items[i] for _, i, _ in train]
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(users), len(items)))
    matrix.data[:] = 1.0  # duplicates summed by csr_matrix: keep presence only
    relevant = {}
    for u, i, r in test:
        if r >= 4:
            relevant.setdefault(users[u], set()).add(items[i])
    evaluated = sorted(relevant)
    item_ids = {v: k for k, v in items.items()}
    results = {}

    counts = np.asarray((matrix > 0).sum(axis=0)).ravel()
    pop = []
    for u in evaluated:
        seen = set(matrix[u].indices)
        order = sorted((i for i in range(len(items)) if i not in seen), key=lambda i: (-counts[i], i))
        pop.append(ndcg_at_10(order[:10], relevant[u]))
    results["pop"] = (sum(pop) / len(pop), 0.0)

    configs = {
        "implicit-als (defaults)": lambda: AlternatingLeastSquares(random_state=42, num_threads=threads),
        "implicit-als (64 f, reg .05, alpha 2)": lambda: AlternatingLeastSquares(
            factors=64, regularization=0.05, alpha=2.0, random_state=42, num_threads=threads),
        "implicit-bpr (defaults)": lambda: BayesianPersonalizedRanking(random_state=42, num_threads=threads),
        "implicit-bpr (64 f, lr .05, 60 it)": lambda: BayesianPersonalizedRanking(
            factors=64, learning_rate=0.05, iterations=60, random_state=42, num_threads=threads),
        "implicit-item-knn (K=20)": lambda: CosineRecommender(K=20, num_threads=threads),
        "implicit-item-knn (K=100)": lambda: CosineRecommender(K=100, num_threads=threads),
    }
    for name, make in configs.items():
        model = make()
        started = time.time()
        model.fit(matrix, show_progress=False)
        fit_s = time.time() - started
        ids, _ = model.recommend(np.array(evaluated), matrix[evaluated], N=10, filter_already_liked_items=True)
        values = [ndcg_at_10(list(row), relevant[u]) for u, row in zip(evaluated, ids)]
        results[name] = (sum(values) / len(values), fit_s)
    return results


def funnel_scores(binary, train_path, test_path, fmt):
    out = subprocess.check_output([binary, "eval", "recs", "--train", train_path, "--test", test_path, "--format", fmt,
                                   "--models", "pop,item-knn,ease,als,bpr", "--k", "10", "--min-relevance", "4", "--json"])
    return {f"funnel-{r['system']}": (r["metrics"]["ndcg@10"], r["timing"]["fit_s"])
            for r in map(json.loads, out.decode().splitlines())}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(ROOT, "target/release/funnel"))
    parser.add_argument("--shared", default=os.path.join(ROOT, "../shared"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    reexec_in(VENV, PEERS, {"OPENBLAS_NUM_THREADS": "1"})
    ml100k = os.path.join(args.shared, "data/movielens/ml-100k")
    datasets = [(f"ml-100k u{k}", f"{ml100k}/u{k}.base", f"{ml100k}/u{k}.test", "movielens") for k in range(1, args.folds + 1)]
    work = "/tmp/funnel-bench-recs"
    os.makedirs(work, exist_ok=True)
    subprocess.check_call([args.bin, "split", os.path.join(args.shared, "data/movielens/ml-latest-small/ratings.csv"),
                           "--method", "user-temporal", "--fraction", "0.2", "--train", f"{work}/train.csv",
                           "--test", f"{work}/test.csv"], stdout=subprocess.DEVNULL)
    datasets.append(("ml-latest-small user-temporal 20%", f"{work}/train.csv", f"{work}/test.csv", "csv"))

    report = {"command": " ".join(sys.argv), "datasets": {}}
    for name, train_path, test_path, fmt in datasets:
        funnel = funnel_scores(args.bin, train_path, test_path, fmt)
        peers = implicit_scores(read_events(train_path), read_events(test_path), args.threads)
        assert abs(peers["pop"][0] - funnel["funnel-pop"][0]) < 1e-9, f"protocols differ: {peers['pop']} vs {funnel['funnel-pop']}"
        del peers["pop"]
        best_funnel = max((v[0], k) for k, v in funnel.items() if k != "funnel-pop")
        best_peer = max((v[0], k) for k, v in peers.items())
        pop = funnel["funnel-pop"][0]
        report["datasets"][name] = {"ndcg@10": {k: round(v[0], 4) for k, v in {**funnel, **peers}.items()},
                                    "fit_s": {k: round(v[1], 3) for k, v in {**funnel, **peers}.items()},
                                    "best_funnel": best_funnel[1], "best_implicit": best_peer[1],
                                    "ratio_vs_best_implicit": round(best_funnel[0] / best_peer[0], 4),
                                    "ratio_vs_pop": round(best_funnel[0] / pop, 4)}
        print(f"\n{name}")
        for k, v in sorted({**funnel, **peers}.items(), key=lambda kv: -kv[1][0]):
            print(f"  {k:<40} ndcg@10 {v[0]:.4f}   fit {v[1]:7.3f} s")
        print(f"  best Funnel / best implicit = {best_funnel[0] / best_peer[0]:.3f}   best Funnel / pop = {best_funnel[0] / pop:.3f}")
    path = os.path.join(HERE, "results", "recs_quality.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
