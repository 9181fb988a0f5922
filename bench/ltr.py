#!/usr/bin/env python3
"""Learning to rank: Funnel's GBDT against LightGBM, one run, side by side.

Data: ../shared/data/ltr/lightgbm-lambdarank (LightGBM's own lambdarank example: 3,005
training rows in 201 queries, 768 test rows in 50 queries, 300 features, labels 0-4).
Each configuration trains both systems with the same objective, trees, leaves, learning
rate and leaf limits (LightGBM's defaults otherwise: min_data_in_leaf 20,
min_sum_hessian_in_leaf 1e-3, max_bin 255, lambdarank_truncation_level 30), on the same
2 threads.

Quality: test NDCG@k scored by one function here for both systems' scores (gain
2^label - 1, log2 discount, ties by row order, queries with no relevant row left out),
plus Funnel's own figure from `funnel eval ltr`.
LightGBM's model file is also scored by Funnel (`eval ltr --model-file`): the largest
difference from LightGBM's own test scores is reported.
Speed: training wall time, median and best of --repeats runs: for LightGBM from building the
Dataset (binning) to the last tree; for Funnel the `fit` time `funnel eval ltr` reports
(binning to the last tree; file parsing excluded for both).

Usage: python3 bench/ltr.py [--repeats 5]
Writes bench/results/ltr.json.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from peer_env import reexec_in  # noqa: E402

VENV = os.path.join(HERE, ".venv")
DATA = os.path.join(ROOT, "..", "shared", "data", "ltr", "lightgbm-lambdarank")
THREADS = 2
CONFIGS = [
    {"objective": "lambdarank", "trees": 100, "leaves": 31, "learning_rate": 0.1},
    {"objective": "lambdarank", "trees": 300, "leaves": 31, "learning_rate": 0.05},
    {"objective": "lambdarank", "trees": 100, "leaves": 63, "learning_rate": 0.1},
]


def read_svmlight(path, width=300):
    import numpy as np

    rows, labels = [], []
    with open(path) as f:
        for line in f:
            line = line.split("#")[0].split()
            if not line:
                continue
            labels.append(float(line[0]))
            row = np.zeros(width, dtype=np.float32)
            for token in line[1:]:
                key, value = token.split(":")
                if key != "qid":
                    row[int(key) - 1] = float(value)
            rows.append(row)
    with open(path + ".query") as f:
        groups = [int(l) for l in f if l.strip()]
    return np.stack(rows), np.array(labels), groups


def ndcg(labels, scores, groups, k):
    total, counted, start = 0.0, 0, 0
    for size in groups:
        lab = labels[start : start + size]
        sc = scores[start : start + size]
        start += size
        ideal = sorted(lab, reverse=True)[:k]
        best = sum((2**l - 1) / math.log2(i + 2) for i, l in enumerate(ideal))
        if best <= 0:
            continue
        order = sorted(range(size), key=lambda i: (-sc[i], i))[:k]
        total += sum((2 ** lab[d] - 1) / math.log2(i + 2) for i, d in enumerate(order)) / best
        counted += 1
    return total / counted


def lightgbm_run(config, train, test):
    import lightgbm as lgb

    params = {
        "objective": "lambdarank",
        "num_leaves": config["leaves"],
        "learning_rate": config["learning_rate"],
        "min_data_in_leaf": 20,
        "min_sum_hessian_in_leaf": 1e-3,
        "max_bin": 255,
        "lambdarank_truncation_level": 30,
        "num_threads": THREADS,
        "verbose": -1,
        "deterministic": True,
        "force_col_wise": False,
    }
    started = time.perf_counter()
    dataset = lgb.Dataset(train[0], label=train[1], group=train[2], params={"max_bin": 255, "verbose": -1})
    booster = lgb.train(params, dataset, num_boost_round=config["trees"])
    seconds = time.perf_counter() - started
    return seconds, booster.predict(test[0], num_threads=THREADS), booster


def funnel_run(binary, config, work):
    scores_path = os.path.join(work, "scores.txt")
    out = subprocess.run(
        [binary, "eval", "ltr", "--model", "gbdt", "--json", "--threads", str(THREADS),
         "--train", os.path.join(DATA, "rank.train"), "--test", os.path.join(DATA, "rank.test"),
         "--objective", config["objective"], "--trees", str(config["trees"]), "--leaves", str(config["leaves"]),
         "--learning-rate", str(config["learning_rate"]), "--scores", scores_path],
        check=True, capture_output=True, text=True, cwd=work,
    ).stdout
    report = json.loads(out.strip().splitlines()[-1])
    with open(scores_path) as f:
        scores = [float(l) for l in f if l.strip()]
    return report["timing"]["fit_s"], scores, report


def same_scores(binary, booster, lgb_scores, work):
    """LightGBM's model file scored by Funnel (`eval ltr --model-file`): the largest
    difference from LightGBM's own scores on the test rows."""
    path = os.path.join(work, "lightgbm-model.txt")
    booster.save_model(path)
    scores_path = os.path.join(work, "lightgbm-scores.txt")
    subprocess.run(
        [binary, "eval", "ltr", "--model", "best-feature", "--model-file", path, "--lightgbm-indices", "columns",
         "--json", "--scores", scores_path,
         "--train", os.path.join(DATA, "rank.train"), "--test", os.path.join(DATA, "rank.test")],
        check=True, capture_output=True, text=True, cwd=work,
    )
    with open(scores_path) as f:
        funnel = [float(l) for l in f if l.strip()]
    return max(abs(a - b) for a, b in zip(funnel, lgb_scores))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "funnel"))
    args = parser.parse_args()
    reexec_in(VENV, ["numpy", "lightgbm"], env={"OMP_NUM_THREADS": str(THREADS)})
    import lightgbm

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "funnel"], check=True, cwd=ROOT)
    train = read_svmlight(os.path.join(DATA, "rank.train"))
    test = read_svmlight(os.path.join(DATA, "rank.test"))
    results = {"lightgbm_version": lightgbm.__version__, "threads": THREADS, "configs": []}
    with tempfile.TemporaryDirectory() as work:
        for config in CONFIGS:
            lgb_times, funnel_times = [], []
            for _ in range(args.repeats):
                seconds, lgb_scores, booster = lightgbm_run(config, train, test)
                lgb_times.append(seconds)
                seconds, funnel_scores, report = funnel_run(args.binary, config, work)
                funnel_times.append(seconds)
            row = dict(config)
            for k in (1, 5, 10):
                row[f"lightgbm_ndcg@{k}"] = ndcg(test[1], lgb_scores, test[2], k)
                row[f"funnel_ndcg@{k}"] = ndcg(test[1], funnel_scores, test[2], k)
            row["funnel_reported_ndcg@10"] = report["metrics"]["ndcg@10"]
            row["ndcg@10_ratio"] = row["funnel_ndcg@10"] / row["lightgbm_ndcg@10"]
            row["lightgbm_train_s"] = statistics.median(lgb_times)
            row["funnel_train_s"] = statistics.median(funnel_times)
            row["train_time_ratio"] = row["funnel_train_s"] / row["lightgbm_train_s"]
            # This machine's timings are bimodal (runs of the same binary differ by 1.5x):
            # the best of the repeats as well, for both.
            row["lightgbm_train_best_s"] = min(lgb_times)
            row["funnel_train_best_s"] = min(funnel_times)
            row["train_time_best_ratio"] = row["funnel_train_best_s"] / row["lightgbm_train_best_s"]
            row["lightgbm_model_in_funnel_max_abs_diff"] = same_scores(args.binary, booster, lgb_scores, work)
            results["configs"].append(row)
            print(
                f"{config['trees']} trees, {config['leaves']} leaves, lr {config['learning_rate']}: "
                f"NDCG@10 funnel {row['funnel_ndcg@10']:.4f} lightgbm {row['lightgbm_ndcg@10']:.4f} "
                f"(ratio {row['ndcg@10_ratio']:.3f}); train s funnel {row['funnel_train_s']:.3f} "
                f"lightgbm {row['lightgbm_train_s']:.3f} (ratio {row['train_time_ratio']:.2f}; best of "
                f"{args.repeats}: {row['train_time_best_ratio']:.2f}); LightGBM's model "
                f"scored by Funnel: max |diff| {row['lightgbm_model_in_funnel_max_abs_diff']:.1e}",
                flush=True,
            )
    out = os.path.join(HERE, "results", "ltr.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
