#!/usr/bin/env python3
"""obp 0.5.7's off-policy estimates of Bernoulli TS on the Open Bandit Dataset sample.

Evaluates the Bernoulli-TS policy (its action distribution as obp computes it,
../shared/data/obd/bts_action_dist_all.csv.gz) on the uniform-random logs of campaign
"all" (obd/random/all, loaded by obp's own OpenBanditDataset) with obp's
OffPolicyEvaluation: IPS, SNIPS, DM, DR and SNDR, point estimates and bootstrap
intervals (10,000 resamples, alpha 0.05, seed 12345), under two reward models:
- "logistic": obp's RegressionModel over sklearn LogisticRegression(C=100,
  max_iter=10000, random_state=12345), one per position, on OBD's default context and
  action context, cross-fitted with 3 folds (seed 12345);
- "cell_prior": for each (item, position), (clicks + 100 * ctr_pos) / (n + 100), where
  ctr_pos is the logged click rate at that position (not cross-fitted), as Funnel does.
The truth is the on-policy value, the mean click of obd/bts/all. Writes obp_ope.json
beside this script and prints a table.

Usage: python3 scripts/reference/obp_ope.py [--shared ../shared]
Installs its peers into bench/.venv on first use, and obp itself with --no-deps (obp
0.5.7 declares Python < 3.11 and pulls torch with CUDA, which its OPE code never calls;
a stand-in module satisfies its imports when torch is absent).
"""

import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(ROOT, "bench", ".venv")
OUT = os.path.join(HERE, "obp_ope.json")
PEERS = ["numpy", "scipy", "pandas<3", "scikit-learn", "matplotlib", "seaborn", "tqdm", "pyyaml"]
OBP = "0.5.7"
SEED = 12345
sys.path.insert(0, os.path.join(ROOT, "bench"))
from peer_env import reexec_in  # noqa: E402


class _Stub(type):
    """Any attribute of a stub is another stub class (usable as a base or a type hint)."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub(name, (), {})


class _TorchStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves `torch` and `torch.*` as stub modules: obp imports torch at module level for
    its neural policy learners (obp.policy) and one type hint (obp.utils) only."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda name: _Stub(name, (), {})
        return module

    def exec_module(self, module):
        pass


def import_obp():
    if importlib.util.find_spec("obp") is None:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                               "--ignore-requires-python", f"obp=={OBP}"])
    if importlib.util.find_spec("torch") is None:
        sys.meta_path.append(_TorchStandIn())
    import obp
    assert obp.__version__ == OBP, obp.__version__
    return obp


def cell_prior_rewards(action, position, reward, n_actions, len_list, prior=100.0):
    """q(item, pos) = (clicks + prior * ctr_pos) / (n + prior), shape (n_actions, len_list)."""
    import numpy as np

    n = np.zeros((n_actions, len_list))
    clicks = np.zeros((n_actions, len_list))
    np.add.at(n, (action, position), 1.0)
    np.add.at(clicks, (action, position), reward)
    ctr_pos = clicks.sum(axis=0) / n.sum(axis=0)
    return (clicks + prior * ctr_pos) / (n + prior)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=os.path.join(ROOT, "../shared"))
    args = parser.parse_args()
    reexec_in(VENV, PEERS)
    obp = import_obp()
    import numpy as np
    import pandas as pd
    from obp.dataset import OpenBanditDataset
    from obp.ope import (DirectMethod, DoublyRobust, InverseProbabilityWeighting, OffPolicyEvaluation,
                         RegressionModel, SelfNormalizedDoublyRobust,
                         SelfNormalizedInverseProbabilityWeighting)
    from sklearn.linear_model import LogisticRegression

    data = os.path.join(args.shared, "data")
    obd = os.path.join(data, "obd")
    dataset = OpenBanditDataset(behavior_policy="random", campaign="all", data_path=obd)
    # OpenBanditDataset sorts by timestamp; the file is in timestamp order already.
    in_file_order = bool((dataset.data.index.values == np.arange(dataset.n_rounds)).all())
    feedback = dataset.obtain_batch_bandit_feedback()
    n, n_actions, len_list = feedback["n_rounds"], dataset.n_actions, dataset.len_list

    dist = pd.read_csv(os.path.join(obd, "bts_action_dist_all.csv.gz"))
    action_dist = np.zeros((n, n_actions, len_list))
    action_dist[dist["round"], dist["item"], dist["position"]] = dist["prob"]
    assert len(dist) == action_dist.size and np.allclose(action_dist.sum(axis=1), 1.0)

    truth = OpenBanditDataset.calc_on_policy_policy_value_estimate(
        behavior_policy="bts", campaign="all", data_path=obd)

    logistic = RegressionModel(
        base_model=LogisticRegression(C=100, max_iter=10000, random_state=SEED),
        n_actions=n_actions, len_list=len_list, action_context=dataset.action_context)
    q_logistic = logistic.fit_predict(
        context=feedback["context"], action=feedback["action"], reward=feedback["reward"],
        position=feedback["position"], n_folds=3, random_state=SEED)
    q_cell = cell_prior_rewards(feedback["action"], feedback["position"], feedback["reward"],
                                n_actions, len_list)
    reward_models = {"logistic": q_logistic, "cell_prior": np.broadcast_to(q_cell, action_dist.shape)}

    names = {"ipw": "ips", "snipw": "snips", "dm": "dm", "dr": "dr", "sndr": "sndr"}
    ope = OffPolicyEvaluation(bandit_feedback=feedback, ope_estimators=[
        InverseProbabilityWeighting(), SelfNormalizedInverseProbabilityWeighting(), DirectMethod(),
        DoublyRobust(), SelfNormalizedDoublyRobust()])
    results = {}
    for model, q_hat in reward_models.items():
        q_hat = np.ascontiguousarray(q_hat)
        points = ope.estimate_policy_values(action_dist=action_dist, estimated_rewards_by_reg_model=q_hat)
        intervals = ope.estimate_intervals(action_dist=action_dist, estimated_rewards_by_reg_model=q_hat,
                                           n_bootstrap_samples=10000, alpha=0.05, random_state=SEED)
        results[model] = {names[k]: {"estimate": float(v),
                                     "interval": {key: float(x) for key, x in intervals[k].items()},
                                     "relative_error": abs(float(v) - truth) / truth}
                          for k, v in points.items()}

    # The README's figures, and the same IPS/SNIPS from its definitions in file order.
    raw = pd.read_csv(os.path.join(obd, "random/all/all.csv"), index_col=0)
    w = action_dist[np.arange(n), raw["item_id"].values, raw["position"].values - 1] / raw["propensity_score"].values
    click = raw["click"].values
    direct = {"ips": float(np.mean(click * w)), "snips": float(np.sum(click * w) / np.sum(w))}
    expected = {"ips": 0.004553, "snips": 0.004776}
    matched = {k: abs(results["logistic"][k]["estimate"] - v) < 5e-7 and abs(direct[k] - v) < 5e-7
               for k, v in expected.items()}

    rel = lambda p: os.path.relpath(os.path.join(obd, p), data)  # noqa: E731
    out = {
        "obp": obp.__version__,
        "produced_by": "scripts/reference/obp_ope.py",
        "inputs": {"logs": rel("random/all/all.csv"), "item_context": rel("random/all/item_context.csv"),
                   "action_dist": rel("bts_action_dist_all.csv.gz"), "truth": rel("bts/all/all.csv")},
        "n_rounds": int(n), "n_actions": int(n_actions), "len_list": int(len_list),
        "logs_in_file_order": in_file_order,
        "bootstrap": {"n_bootstrap_samples": 10000, "alpha": 0.05, "random_state": SEED},
        "reward_models": {
            "logistic": "obp RegressionModel(LogisticRegression(C=100, max_iter=10000, random_state=12345)), "
                        "one model per position, OBD default context + action_context, fit_predict n_folds=3, "
                        "random_state=12345",
            "cell_prior": "q(item, pos) = (clicks + 100 * ctr_pos) / (n + 100) over all logged rows, "
                          "ctr_pos = logged click rate at that position"},
        "ground_truth": truth,
        "readme_check": {"expected": expected, "direct_file_order": direct, "matched": matched},
        "estimates": results,
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")

    print(f"obp {obp.__version__}, {n} rounds, truth (mean click of bts/all) {truth:.6f}")
    print(f"{'model':<11} {'estimator':<6} {'estimate':>9} {'boot mean':>9} {'95% CI':>21} {'rel err':>8}")
    for model, by_name in results.items():
        for name, r in by_name.items():
            lo, hi = (v for k, v in r["interval"].items() if k != "mean")
            print(f"{model:<11} {name:<6} {r['estimate']:9.6f} {r['interval']['mean']:9.6f} "
                  f"[{lo:.6f}, {hi:.6f}] {r['relative_error']:8.3f}")
    print(f"README check (IPS 0.004553, SNIPS 0.004776): {matched}; direct in file order {direct}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
