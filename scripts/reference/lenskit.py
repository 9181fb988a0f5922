#!/usr/bin/env python3
"""Writes the LensKit golden top-N metrics as a small, anonymised fixture.

Reads ../shared/data/reference/lenskit/topn-java-{recs,truth,metrics}.csv (from LensKit's
MIT-licensed test suite) and keeps, for each of the 100 (algorithm, user) lists that
have golden metrics, the ranks of the list, the truth ratings and LensKit-Java's nDCG
and reciprocal rank. User and item ids are replaced by sequence numbers, so no MovieLens
rows are committed: only ranks, ratings and the reference values.

Usage: python3 scripts/reference/lenskit.py [--shared ../shared]
Output: crates/funnel-eval/tests/fixtures/lenskit/{lists,truth,expected}.csv
"""

import argparse
import csv
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "crates/funnel-eval/tests/fixtures/lenskit")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=os.path.join(ROOT, "../shared"))
    args = parser.parse_args()
    src = os.path.join(args.shared, "data/reference/lenskit")
    with open(os.path.join(src, "topn-java-metrics.csv")) as f:
        golden = [(r["Algorithm"], r["user"], r["Java.nDCG"], r["Java.RecipRank"]) for r in csv.DictReader(f)]
    wanted = {(a, u) for a, u, _, _ in golden}
    lists = {}
    with open(os.path.join(src, "topn-java-recs.csv")) as f:
        for r in csv.DictReader(f):
            if (r["Algorithm"], r["user"]) in wanted:
                lists.setdefault((r["Algorithm"], r["user"]), []).append((int(r["rank"]), r["item"]))
    truth = {}
    with open(os.path.join(src, "topn-java-truth.csv")) as f:
        for r in csv.DictReader(f):
            truth.setdefault(r["user"], []).append((r["item"], r["rating"]))
    items = {}

    def item_id(item):
        return items.setdefault(item, f"i{len(items)}")

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "lists.csv"), "w", newline="") as f_lists, \
         open(os.path.join(OUT, "truth.csv"), "w", newline="") as f_truth, \
         open(os.path.join(OUT, "expected.csv"), "w", newline="") as f_expected:
        w_lists, w_truth, w_expected = csv.writer(f_lists), csv.writer(f_truth), csv.writer(f_expected)
        w_lists.writerow(["list", "rank", "item"])
        w_truth.writerow(["list", "item", "rating"])
        w_expected.writerow(["list", "ndcg", "recip_rank"])
        for n, (algorithm, user, ndcg, rr) in enumerate(golden):
            name = f"L{n}"
            for rank, item in sorted(lists.get((algorithm, user), [])):
                w_lists.writerow([name, rank, item_id(item)])
            for item, rating in truth.get(user, []):
                w_truth.writerow([name, item_id(item), rating])
            w_expected.writerow([name, ndcg, rr])
    print(f"wrote {OUT}: {len(golden)} lists")


if __name__ == "__main__":
    main()
