#!/usr/bin/env python3
"""A small LightGBM model file and LightGBM's own predictions for it.

Writes crates/funnel-gbdt/tests/fixtures/lightgbm/: model.txt (LightGBM's text model
format, as `Booster.save_model` writes it) for a lambdarank model of 8 trees and 7
leaves on seeded synthetic data (6 features, many zeros, one feature never used), and
expected.json with f32 rows (including NaN and the values either side of split thresholds) and the raw
scores `Booster.predict` gives them. The Rust test `lightgbm_models_load_and_predict_
as_lightgbm` loads the file and compares; `training_grows_lightgbms_trees` trains Funnel
on the same data (`train` in expected.json: rows, labels, query sizes, settings) and
compares the trees.

Usage: python3 scripts/reference/lightgbm_model.py
Installs lightgbm into bench/.venv on first use.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(ROOT, "bench", ".venv")
OUT = os.path.join(ROOT, "crates/funnel-gbdt/tests/fixtures/lightgbm")
sys.path.insert(0, os.path.join(ROOT, "bench"))
from peer_env import reexec_in  # noqa: E402


def main():
    reexec_in(VENV, ["numpy", "lightgbm"])
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(5)
    queries, per_query, width = 60, 10, 6
    x = np.round(rng.random((queries * per_query, width)), 2)
    x[rng.random(x.shape) < 0.4] = 0.0
    x[:, 5] = 0.0  # never split on
    signal = 2.0 * x[:, 0] + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] + 0.2 * rng.random(len(x))
    y = np.clip(np.floor(signal * 2), 0, 3)
    x = x.astype(np.float32)  # Funnel's features are f32: both train on the same values
    params = {"objective": "lambdarank", "num_leaves": 7, "min_data_in_leaf": 5, "learning_rate": 0.2,
              "verbose": -1, "num_threads": 1, "deterministic": True, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(x, label=y, group=[per_query] * queries), num_boost_round=8)
    os.makedirs(OUT, exist_ok=True)
    booster.save_model(os.path.join(OUT, "model.txt"))

    rows = [list(r) for r in x[:40]]
    # Funnel's features are f32: on each side of a root threshold, the nearest f32 (at or
    # below goes left, above goes right).
    dump = booster.dump_model()
    for tree in dump["tree_info"][:3]:
        node = tree["tree_structure"]
        if "split_feature" in node:
            below = np.float32(node["threshold"])
            if float(below) > node["threshold"]:
                below = np.nextafter(below, np.float32(-1))
            for value in (below, np.nextafter(below, np.float32(2))):
                row = [0.5] * width
                row[node["split_feature"]] = float(value)
                rows.append(row)
    rows.append([float("nan")] * width)
    rows.append([0.9, float("nan"), 0.3, 0.0, 0.7, 0.0])
    # Predicted from f32 rows, as Funnel reads them.
    rows = np.array(rows, dtype=np.float32)
    scores = booster.predict(rows, raw_score=True)
    rows = [[float(v) for v in r] for r in rows]
    train = {"rows": [[float(v) for v in r] for r in x], "labels": [float(v) for v in y],
             "groups": [per_query] * queries, "trees": 8, "leaves": 7, "min_data_in_leaf": 5, "learning_rate": 0.2}
    expected = {"lightgbm": lgb.__version__, "width": width, "train": train,
                "rows": [[None if v != v else v for v in r] for r in rows],
                "scores": [float(s) for s in scores]}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(f"wrote {OUT}: {booster.num_trees()} trees, {len(rows)} rows")


if __name__ == "__main__":
    main()
