#!/usr/bin/env python3
"""ALS training speed: Funnel against implicit (CPU) on the same seeded synthetic matrix,
2 threads, at 64 and 128 factors; seconds per iteration and peak memory, as ratios.

The matrix: USERS x ITEMS with NNZ draws, users uniform, items Zipf-like (p(rank r) ~
r^-0.9), duplicates dropped, written once as little-endian u32 (user, item) pairs that
both sides read. Defaults are the issue's 200k x 100k x 20M.

Usage: python3 bench/als_speed.py [--users 200000 --items 100000 --nnz 20000000] [--iterations 3]
Installs implicit into bench/.venv on first use. Writes bench/results/als_speed.json.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from peer_env import reexec_in

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv")
PEERS = ["implicit", "numpy", "scipy", "threadpoolctl"]


def make_pairs(path, users, items, nnz, seed=7):
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, items + 1) ** 0.9
    weights /= weights.sum()
    u = rng.integers(0, users, size=nnz, dtype=np.uint32)
    i = rng.choice(items, size=nnz, p=weights).astype(np.uint32)
    i = rng.permutation(items).astype(np.uint32)[i]  # popular items anywhere in the id range
    keys = np.unique(u.astype(np.uint64) * items + i)
    pairs = np.empty((len(keys), 2), dtype="<u4")
    pairs[:, 0] = keys // items
    pairs[:, 1] = keys % items
    pairs.tofile(path)
    return len(keys)


def implicit_child(path, users, items, factors, iterations, threads):
    """Runs in its own process so that its peak memory is its own."""
    import numpy as np
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares

    pairs = np.fromfile(path, dtype="<u4").reshape(-1, 2)
    matrix = sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), (pairs[:, 0], pairs[:, 1])), shape=(users, items))
    del pairs
    seconds = []
    for it in range(iterations):
        model = AlternatingLeastSquares(factors=factors, iterations=1, regularization=0.05, alpha=2.0,
                                        num_threads=threads, random_state=it, calculate_training_loss=False)
        started = time.time()
        model.fit(matrix, show_progress=False)
        seconds.append(time.time() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds_per_iteration": seconds, "peak_mib": peak}))


def child_result(argv, env=None):
    """Runs a child that prints JSON with its own peak memory: the parent's ru_maxrss for
    a child would count the parent's pages copied at fork, before exec."""
    out = subprocess.check_output(argv, env=env)
    result = json.loads(out.decode().strip().splitlines()[-1])
    return result, result["peak_mib"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--nnz", type=int, default=20_000_000)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--factors", default="64,128")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    reexec_in(VENV, PEERS, {"OPENBLAS_NUM_THREADS": "1"})
    if args.child:
        path, factors, iterations, threads = args.child
        implicit_child(path, args.users, args.items, int(factors), int(iterations), int(threads))
        return
    example = os.path.join(ROOT, "target/release/examples/als_speed")
    subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "funnel-models", "--example", "als_speed"], cwd=ROOT)
    path = f"/tmp/funnel-als-{args.users}x{args.items}x{args.nnz}.u32"
    if not os.path.exists(path):
        kept = make_pairs(path, args.users, args.items, args.nnz)
        print(f"wrote {path}: {kept} distinct pairs")
    report = {"command": " ".join(sys.argv), "users": args.users, "items": args.items, "draws": args.nnz, "results": {}}
    for factors in map(int, args.factors.split(",")):
        env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
        ours, our_peak = child_result([example, path, str(args.users), str(args.items), str(factors), str(args.iterations)], env)
        theirs, their_peak = child_result([sys.executable, __file__, "--users", str(args.users), "--items", str(args.items),
                                             "--child", path, str(factors), str(args.iterations), str(args.threads)])
        ours_s = min(ours["seconds_per_iteration"])
        theirs_s = min(theirs["seconds_per_iteration"])
        report["results"][f"{factors} factors"] = {
            "funnel_s_per_iteration": ours["seconds_per_iteration"], "implicit_s_per_iteration": theirs["seconds_per_iteration"],
            "ratio_funnel_over_implicit": round(ours_s / theirs_s, 3), "funnel_peak_mib": round(our_peak),
            "implicit_peak_mib": round(their_peak), "nnz": ours["nnz"]}
        print(f"{factors} factors: funnel {ours_s:.2f} s/it (peak {our_peak:.0f} MiB), implicit {theirs_s:.2f} s/it "
              f"(peak {their_peak:.0f} MiB): ratio {ours_s / theirs_s:.2f}")
    out = os.path.join(HERE, "results", "als_speed.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
