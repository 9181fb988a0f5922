#!/usr/bin/env python3
"""Cross-checks Funnel's search metrics against trec_eval (through pytrec_eval).

1. `fixture`: writes a seeded synthetic run and qrels (graded labels, ties, unjudged and
   unretrieved documents) with pytrec_eval's per-query values into
   crates/funnel-eval/tests/fixtures/trec_eval/, which a `cargo test` compares to 1e-6.
2. `collections`: runs `funnel eval search --run` on cranfield, cisi and npl and checks
   that pytrec_eval on the run file gives the numbers Funnel printed, to 1e-6. Funnel's
   ndcg uses the gain 2^rel - 1, trec_eval's the grade itself, so pytrec_eval is given
   qrels with every grade g replaced by 2^g - 1 (the binary measures are unchanged).

Usage: python3 scripts/reference/trec_eval.py fixture|collections [--bin target/release/funnel]
Installs pytrec-eval-terrier with pip when it is missing.
"""

import argparse
import json
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(ROOT, "crates/funnel-eval/tests/fixtures/trec_eval")
MEASURES = {"map", "ndcg_cut_10", "recip_rank", "P_10", "recall_100", "recall_1000"}
# trec_eval measure -> Funnel's metric name
NAMES = {"map": "map", "ndcg_cut_10": "ndcg@10", "recip_rank": "mrr", "P_10": "p@10", "recall_100": "recall@100",
         "recall_1000": "recall@1000"}


def pytrec_eval():
    try:
        import pytrec_eval as module
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "pytrec-eval-terrier"])
        import pytrec_eval as module
    return module


def read_run(path):
    run = {}
    with open(path) as f:
        for line in f:
            q, _, d, _, score, _ = line.split()
            run.setdefault(q, {})[d] = float(score)
    return run


def make_fixture():
    rng = random.Random(20261128)
    qrels, run = {}, {}
    for q in range(1, 31):
        qid = f"q{q}"
        docs = [f"d{d}" for d in rng.sample(range(1, 400), 60)]
        judged = rng.sample(docs, 25) + [f"x{q}-{i}" for i in range(3)]  # 3 judged docs never retrieved
        qrels[qid] = {d: rng.choice([0, 0, 1, 1, 2, 3, 4]) for d in judged}
        if q == 30:
            qrels[qid] = {d: 0 for d in judged}  # nothing relevant
        run[qid] = {d: float(rng.randint(0, 20)) / 4 for d in docs}  # many ties
    evaluator = pytrec_eval().RelevanceEvaluator(qrels, MEASURES)
    expected = evaluator.evaluate(run)
    os.makedirs(FIXTURE, exist_ok=True)
    with open(os.path.join(FIXTURE, "qrels.txt"), "w") as f:
        for q, docs in qrels.items():
            for d, g in docs.items():
                f.write(f"{q} 0 {d} {g}\n")
    with open(os.path.join(FIXTURE, "run.txt"), "w") as f:
        for q, docs in run.items():
            # deliberately not in score order: trec_eval re-sorts, and so must the reader
            for rank, (d, s) in enumerate(docs.items(), 1):
                f.write(f"{q} Q0 {d} {rank} {s} synthetic\n")
    with open(os.path.join(FIXTURE, "expected.json"), "w") as f:
        json.dump({q: {NAMES[m]: v for m, v in values.items()} for q, values in sorted(expected.items())}, f, indent=1,
                  sort_keys=True)
    print(f"wrote {FIXTURE}: {len(qrels)} queries")


def check_collections(binary, shared):
    worst = 0.0
    for name in ("cranfield", "cisi", "npl"):
        beir = os.path.join(shared, "data/ir", name, "beir")
        run_path = f"/tmp/funnel-{name}.run"
        out = subprocess.check_output([binary, "eval", "search", "--beir", beir, "--run", run_path, "--json"])
        ours = json.loads(out)["metrics"]
        qrels = {}
        with open(os.path.join(beir, "qrels/test.tsv")) as f:
            next(f)
            for line in f:
                q, d, g = line.split()
                qrels.setdefault(q, {})[d] = 2 ** int(g) - 1
        per_query = pytrec_eval().RelevanceEvaluator(qrels, MEASURES).evaluate(read_run(run_path))
        for measure, metric in NAMES.items():
            theirs = sum(v[measure] for v in per_query.values()) / len(per_query)
            diff = abs(theirs - ours[metric])
            worst = max(worst, diff)
            print(f"{name:<10} {metric:<12} funnel {ours[metric]:.6f}  trec_eval {theirs:.6f}  |diff| {diff:.2e}")
    print(f"largest difference: {worst:.2e}")
    return 0 if worst <= 1e-6 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["fixture", "collections"])
    parser.add_argument("--bin", default=os.path.join(ROOT, "target/release/funnel"))
    parser.add_argument("--shared", default=os.path.join(ROOT, "../shared"))
    args = parser.parse_args()
    if args.what == "fixture":
        make_fixture()
        return 0
    return check_collections(args.bin, args.shared)


if __name__ == "__main__":
    sys.exit(main())
