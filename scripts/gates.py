#!/usr/bin/env python3
"""Real-data quality gates: run the release `funnel` binary on ../shared/data and fail
when a result is wrong or a quality figure drops below its recorded threshold.

Usage: python3 scripts/gates.py [--bin target/release/funnel] [--shared ../shared]
Prints one line per check and a closing 'N passed, N failed' line; exits 1 on failure.
Each command's wall time and peak memory are printed so that runs can be compared (the
peak is an upper bound: a child's ru_maxrss counts the parent's pages copied at fork).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

RESULTS = {"passed": 0, "failed": 0}


def run(binary, data_dir, *args, env=None):
    """Runs funnel (with extra environment `env`); returns (stdout, seconds, peak RSS in
    MiB). Raises on a non-zero exit."""
    started = time.monotonic()
    proc = subprocess.Popen([binary, "--data-dir", data_dir, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, **(env or {})))
    streams = {}
    readers = [
        threading.Thread(target=lambda: streams.__setitem__("out", proc.stdout.read())),
        threading.Thread(target=lambda: streams.__setitem__("err", proc.stderr.read())),
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for reader in readers:
        reader.join()
    code = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    peak_mib = usage.ru_maxrss / 1024
    if code != 0:
        raise RuntimeError(f"funnel {' '.join(args)} failed ({code}):\n{streams['err'].decode()}")
    print(f"  $ funnel {' '.join(args)}  [{seconds:.2f} s, peak RSS {peak_mib:.0f} MiB]")
    return streams["out"].decode(), seconds, peak_mib


def check(name, condition, detail=""):
    RESULTS["passed" if condition else "failed"] += 1
    print(f"{'ok  ' if condition else 'FAIL'} {name}{': ' + detail if detail else ''}")


def ml100k_gate(binary, shared, work):
    data = os.path.join(work, "ml100k")
    base = os.path.join(shared, "data/movielens/ml-100k")
    out, *_ = run(binary, data, "import", "events", f"{base}/u.data", "--format", "movielens", "--json")
    check("ml-100k: 100,000 ratings imported", json.loads(out)["records"] == 100000)
    run(binary, data, "import", "items", f"{base}/u.item", "--json")
    run(binary, data, "train", "--json")
    out, *_ = run(binary, data, "recommend", "--user", "1", "--k", "10", "--explain", "--json")
    body = json.loads(out)
    seen = set()
    with open(f"{base}/u.data") as f:
        for line in f:
            user, item, *_ = line.split("\t")
            if user == "1":
                seen.add(item)
    ids = [i["id"] for i in body["items"]]
    check("ml-100k: user 1 gets 10 items", len(ids) == 10, str(ids))
    check("ml-100k: none of them already rated by user 1", not (set(ids) & seen))
    stages = [s["stage"] for s in body.get("trace", {}).get("stages", [])]
    check("ml-100k: the trace covers every stage", {"candidates", "rank", "rules", "explore"} <= set(stages), str(stages))


def corpus_gate(binary, shared, work):
    data = os.path.join(work, "corpus")
    corpus = os.path.join(shared, "data/corpus/pkg-summaries.jsonl.gz")
    out, *_ = run(binary, data, "import", "items", corpus, "--format", "beir", "--json")
    report = json.loads(out)
    check("corpus: 841,708 documents imported", report["records"] == 841708, f"{report['records_per_second']:.0f} records/s")
    out, *_ = run(binary, data, "train", "--json")
    check("corpus: snapshot holds every document", json.loads(out)["items"] == 841708)
    out, *_ = run(binary, data, "search", "async", "web", "framework", "--k", "10", "--json")
    ids = [i["id"].lower() for i in json.loads(out)["items"]]
    print(f"       results: {ids}")
    check("corpus: 10 results for 'async web framework'", len(ids) == 10)
    # The three query terms must all appear in most results: a sanity floor on ranking.
    with_all_terms = 0
    wanted = set(ids)
    import gzip

    with gzip.open(corpus, "rt") as f:
        for line in f:
            doc = json.loads(line)
            if doc["_id"].lower() in wanted:
                text = (doc.get("title", "") + " " + doc.get("text", "")).lower()
                with_all_terms += all(t in text for t in ("async", "web", "framework"))
    check("corpus: at least 8 of 10 results mention async, web and framework", with_all_terms >= 8, f"{with_all_terms}/10")
    out, *_ = run(binary, data, "search", "asynch", "web", "framwork", "--k", "10", "--json")
    typed = json.loads(out)
    check("corpus: 'asynch web framwork' is searched as 'async web framework'",
          typed.get("did_you_mean") == "async web framework", str(typed.get("did_you_mean")))
    check("corpus: ... with the same results", [i["id"].lower() for i in typed["items"]] == ids)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def thresholds():
    with open(os.path.join(ROOT, "scripts", "thresholds.json")) as f:
        return json.load(f)


def at_least(name, value, floor):
    check(f"{name} = {value:.4f} >= {floor:.4f}", round(value, 4) >= floor)


def eval_recs_gate(binary, shared, work):
    """Popularity on ml-100k fold u1 must give the independently computed figures, the
    same ones every run (same seed, same numbers)."""
    base = os.path.join(shared, "data/movielens/ml-100k")
    args = ("eval", "recs", "--train", f"{base}/u1.base", "--test", f"{base}/u1.test", "--format", "movielens",
            "--models", "pop", "--k", "10", "--min-relevance", "4", "--json")
    first, *_ = run(binary, work, *args)
    second, *_ = run(binary, work, *args)
    metrics = json.loads(first)["metrics"]
    for metric, floor in thresholds()["recs_ml100k_u1_pop"].items():
        at_least(f"eval recs: pop {metric} on ml-100k u1", metrics[metric], floor)
    check("eval recs: the same seed gives the same numbers", json.loads(second)["metrics"] == metrics)
    floors = thresholds()["recs_ml100k_u1_ndcg@10"]
    out, *_ = run(binary, work, *args[:8], "--models", ",".join(floors), "--k", "10", "--min-relevance", "4", "--json")
    for report in map(json.loads, out.splitlines()):
        at_least(f"eval recs: {report['system']} ndcg@10 on ml-100k u1", report["metrics"]["ndcg@10"], floors[report["system"]])


def eval_engine_gate(binary, shared, work):
    """The trained pipeline (sources, merge, ranker, rules), not just one model."""
    data = os.path.join(work, "engine-u1")
    base = os.path.join(shared, "data/movielens/ml-100k")
    run(binary, data, "import", "events", f"{base}/u1.base", "--format", "movielens", "--json")
    run(binary, data, "train", "--json")
    out, *_ = run(binary, data, "eval", "engine", "--test", f"{base}/u1.test", "--format", "movielens",
                  "--min-relevance", "4", "--json")
    at_least("eval engine: home surface ndcg@10 on ml-100k u1", json.loads(out)["metrics"]["ndcg@10"],
             thresholds()["engine_ml100k_u1_home_ndcg@10"])


def ranker_gate(binary, shared, work):
    """A learned ranker (gbdt over five candidate sources: EASE on what users liked, EASE on
    everything they rated, item-kNN, ALS, segment popularity, popularity) trained by
    `funnel train` from five held-out folds of ml-100k u1.base, stored in the snapshot and
    served; compared on u1.test with a surface of each single source, paired by user
    against the best of them."""
    data = os.path.join(work, "ranker-u1")
    base = os.path.join(shared, "data/movielens/ml-100k")
    run(binary, data, "import", "items", f"{base}/u.item", "--json")
    run(binary, data, "import", "users", f"{base}/u.user", "--json")
    run(binary, data, "import", "events", f"{base}/u1.base", "--format", "movielens", "--json")
    singles = {"cf-only": "cf", "consumed-only": "cf-consumed", "knn-only": "cf-item-knn", "als-only": "cf-als",
               "segment-only": "segment", "popular-only": "popular"}
    env = {"FUNNEL__SURFACES__RANKED__SOURCES":
           '[{name="cf", quota=500}, {name="cf-consumed", quota=300, weight=0.5}, '
           '{name="cf-item-knn", quota=300, weight=0.3}, {name="cf-als", quota=300, weight=0.3}, '
           '{name="segment", quota=200, weight=0.25}, {name="popular", quota=500, weight=0.2}]',
           "FUNNEL__SURFACES__RANKED__RANKER": "gbdt",
           "FUNNEL__TRAIN__MIN_RATING": "4", "FUNNEL__TRAIN__RANKER__SPLIT": "holdout",
           "FUNNEL__TRAIN__RANKER__HOLDOUT_FOLDS": "5", "FUNNEL__TRAIN__RANKER__LABEL": "binary"}
    for surface, source in singles.items():
        env[f"FUNNEL__SURFACES__{surface.upper()}__SOURCES"] = f'[{{name="{source}", quota=500}}]'
    out, *_ = run(binary, data, "train", "--json", env=env)
    report = json.loads(out)["rankers"].get("ranked", {})
    check("ranker: trained into the snapshot", report.get("trees", 0) > 0 and report.get("train_groups", 0) > 2500,
          json.dumps({k: v for k, v in report.items() if k != "importance"}))
    check("ranker: beats the merged score on held-out requests",
          report.get("valid_ndcg_model", 0) > report.get("valid_ndcg_merged", 1),
          f"{report.get('valid_ndcg_model', 0):.4f} vs {report.get('valid_ndcg_merged', 0):.4f}")

    def evaluate(*args):
        out, *_ = run(binary, data, "eval", "engine", "--test", f"{base}/u1.test", "--format", "movielens",
                      "--min-relevance", "4", *args, "--json", env=env)
        return {r["system"]: r for r in map(json.loads, out.splitlines())}

    alone = evaluate("--surface", ",".join(singles))
    ndcg = {s: alone[f"engine:{s}"]["metrics"]["ndcg@10"] for s in singles}
    best = max(ndcg, key=ndcg.get)
    print(f"     single sources: {', '.join(f'{s} {v:.4f}' for s, v in ndcg.items())}; best {best}")
    ranked = evaluate("--surface", "ranked", "--baseline", best)["engine:ranked"]
    floors = thresholds()["ranker_ml100k_u1_ndcg@10"]
    at_least("ranker: ranked surface ndcg@10 on ml-100k u1", ranked["metrics"]["ndcg@10"], floors["ranked"])
    at_least("ranker: cf-only surface ndcg@10 on ml-100k u1", ndcg["cf-only"], floors["cf-only"])
    c = ranked["comparison"]["ndcg@10"]
    check(f"ranker: beats the best single source ({best}; paired 95% CI above 0)",
          c["ci95"][0] > 0 and c["p_value"] < 0.05,
          f"{c['diff']:+.4f} [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}] p={c['p_value']:.3f}")


def cold_start_gate(binary, shared, work):
    """Users the snapshot has never seen (a seeded 20% of ml-100k's users, all their
    ratings held out) but whose profile (age, gender, occupation) was imported: items
    popular in their segments beat items popular overall."""
    data = os.path.join(work, "cold-start")
    base = os.path.join(shared, "data/movielens/ml-100k")
    train, test = os.path.join(work, "cold-train.csv"), os.path.join(work, "cold-test.csv")
    run(binary, work, "split", f"{base}/u.data", "--format", "movielens", "--method", "users", "--fraction", "0.2",
        "--seed", "7", "--train", train, "--test", test)
    run(binary, data, "import", "users", f"{base}/u.user", "--json")
    run(binary, data, "import", "items", f"{base}/u.item", "--json")
    run(binary, data, "import", "events", train, "--json")
    env = {"FUNNEL__SURFACES__COLD-POPULAR__SOURCES": '[{name="popular", quota=100}]',
           "FUNNEL__SURFACES__COLD-SEGMENT__SOURCES": '[{name="segment", quota=100}]'}
    run(binary, data, "train", "--json", env=env)
    ndcg = {}
    for surface in ("cold-popular", "cold-segment", "home"):
        out, *_ = run(binary, data, "eval", "engine", "--test", test, "--surface", surface, "--min-relevance", "4",
                      "--json", env=env)
        ndcg[surface] = json.loads(out)["metrics"]["ndcg@10"]
    floors = thresholds()["cold_start_ml100k_users_ndcg@10"]
    at_least("cold start: segment-popular ndcg@10 for unseen ml-100k users", ndcg["cold-segment"], floors["segment"])
    at_least("cold start: home surface ndcg@10 for unseen ml-100k users", ndcg["home"], floors["home"])
    check("cold start: segments beat overall popularity", ndcg["cold-segment"] > ndcg["cold-popular"],
          f"{ndcg['cold-segment']:.4f} vs {ndcg['cold-popular']:.4f}")


def embedding_gate(binary, shared, work):
    """MiniLM through candle equals sentence-transformers (fixture from
    scripts/reference/minilm.py) to cosine >= 0.999 on every sentence."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "crates/funnel-vector/tests/fixtures/minilm.json")) as f:
        fixture = json.load(f)
    texts = os.path.join(work, "sentences.txt")
    with open(texts, "w") as f:
        f.write("\n".join(fixture["sentences"]) + "\n")
    model = os.path.join(shared, "models/all-MiniLM-L6-v2")
    out, *_ = run(binary, work, "embed", "--model", model, "--file", texts, "--json")
    ours = json.loads(out)["vectors"]
    cosines = []
    for a, b in zip(ours, fixture["vectors"]):
        cosines.append(sum(x * y for x, y in zip(a, b)) / ((sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5))
    check(f"embeddings: {len(ours)} vectors equal sentence-transformers' (lowest cosine {min(cosines):.7f})",
          len(ours) == len(fixture["vectors"]) and min(cosines) >= 0.999)


def content_gate(binary, shared, work):
    """Content vectors (MiniLM over each movie's title and genres, built by `funnel train`):
    nearest items by text, and a new item with no events reachable through them."""
    data = os.path.join(work, "content")
    base = os.path.join(shared, "data/movielens/ml-100k")
    env = {"FUNNEL__CONTENT__MODEL": os.path.join(shared, "models/all-MiniLM-L6-v2"),
           "FUNNEL__SURFACES__SIMILAR__SOURCES": '[{name="content"}]'}
    run(binary, data, "import", "items", f"{base}/u.item", "--format", "movielens", "--json")
    run(binary, data, "import", "events", f"{base}/u1.base", "--format", "movielens", "--json")
    new_item = os.path.join(work, "new-item.jsonl")
    with open(new_item, "w") as f:
        f.write(json.dumps({"id": "new-sw", "title": "Star Wars: Episode I - The Phantom Menace (1999)",
                            "categories": ["Action", "Adventure", "Sci-Fi"]}) + "\n")
    run(binary, data, "import", "items", new_item, "--json")
    run(binary, data, "train", "--json", env=env)
    out, *_ = run(binary, data, "similar", "50", "--k", "4", "--json", env=env)
    top = [item["id"] for item in json.loads(out)["items"]]
    check("content: Star Wars (1977)'s 4 nearest items by text include its two sequels", {"181", "172"} <= set(top),
          f"top 4: {top}")
    out, *_ = run(binary, data, "similar", "new-sw", "--k", "5", "--json", env=env)
    top = [item["id"] for item in json.loads(out)["items"]]
    check("content: an item with no events has Star Wars films as neighbours", {"50", "181", "172"} & set(top) != set(),
          f"top 5: {top}")
    # Hybrid search when serving: the query is embedded by the content model and its
    # nearest items fused with BM25's by rank (both find Toy Story here).
    out, *_ = run(binary, data, "search", "toys", "come", "alive", "--k", "3", "--explain", "--json", env=env)
    body = json.loads(out)
    top = [item["id"] for item in body["items"]]
    dense = [s["output"] for s in body["trace"]["stages"] if s["component"] == "dense"]
    check("search: hybrid 'toys come alive' embeds the query and finds Toy Story (1) in the top 3",
          "1" in top and bool(dense) and dense[0] > 0,
          f"top 3: {top}, dense candidates: {dense}")


def eval_search_gate(binary, shared, work):
    for name, floor in thresholds()["search_bm25_ndcg@10"].items():
        out, *_ = run(binary, work, "eval", "search", "--beir", os.path.join(shared, "data/ir", name, "beir"), "--json")
        at_least(f"eval search: bm25 ndcg@10 on {name}", json.loads(out)["metrics"]["ndcg@10"], floor)


def hybrid_search_gate(binary, shared, work):
    """Dense (MiniLM) and hybrid retrieval on the three IR collections: floors per mode, and
    each hybrid at least the better of BM25 and dense on average over the collections."""
    model = os.path.join(shared, "models/all-MiniLM-L6-v2")
    modes = ["bm25", "dense", "hybrid-rrf", "hybrid-weighted"]
    ndcg = {}
    for name in thresholds()["search_bm25_ndcg@10"]:
        out, *_ = run(binary, work, "eval", "search", "--beir", os.path.join(shared, "data/ir", name, "beir"),
                      "--mode", ",".join(modes), "--model", model, "--json")
        ndcg[name] = {r["system"]: r["metrics"]["ndcg@10"] for r in map(json.loads, out.splitlines())}
        for mode in modes[1:]:
            at_least(f"eval search: {mode} ndcg@10 on {name}", ndcg[name][mode],
                     thresholds()[f"search_{mode.replace('-', '_')}_ndcg@10"][name])
    best_single = sum(max(n["bm25"], n["dense"]) for n in ndcg.values()) / len(ndcg)
    for mode in modes[2:]:
        mean = sum(n[mode] for n in ndcg.values()) / len(ndcg)
        check(f"eval search: {mode} beats the better of bm25 and dense on average", mean >= best_single,
              f"{mean:.4f} vs {best_single:.4f}")


def spell_gate(binary, shared, work):
    """Queries with one seeded typo each (scripts/typos.py): with spell correction they
    recover >= 90% of the clean queries' NDCG@10 (BM25), and correction leaves clean
    queries' quality in place."""
    typos = os.path.join(os.path.dirname(os.path.abspath(__file__)), "typos.py")
    for name in thresholds()["search_bm25_ndcg@10"]:
        beir = os.path.join(shared, "data/ir", name, "beir")
        typed = os.path.join(work, f"{name}-typos")
        subprocess.run([sys.executable, typos, "--beir", beir, "--out", typed, "--seed", "7"], check=True)

        def ndcg(folder, *flags):
            out, *_ = run(binary, work, "eval", "search", "--beir", folder, *flags, "--json")
            return json.loads(out)["metrics"]["ndcg@10"]

        clean, clean_spell = ndcg(beir), ndcg(beir, "--spell")
        typo, typo_spell = ndcg(typed), ndcg(typed, "--spell")
        check(f"spell: {name} typo queries recover >= 90% of clean NDCG@10 with correction",
              typo_spell >= 0.9 * clean, f"{typo_spell:.4f} vs clean {clean:.4f} ({typo_spell / clean:.1%}; "
              f"without correction {typo:.4f}, {typo / clean:.1%})")
        check(f"spell: correcting clean {name} queries keeps >= 98% of their NDCG@10", clean_spell >= 0.98 * clean,
              f"{clean_spell:.4f} vs {clean:.4f}")


def cross_encoder_gate(binary, shared, work):
    """The cross-encoder path end to end on real data, kept short: fine-tune MiniLM for one
    epoch on 3% of cranfield's queries (listwise), then rerank the held-out queries' BM25
    top 3 with the model it wrote, blended with BM25, and serve `funnel search` with it.
    (Whether fine-tuning gains on held-out queries takes a longer run, ~30 min with the
    titles as pseudo-queries: README, "What works today".)"""
    beir = os.path.join(shared, "data/ir/cranfield/beir")
    model = os.path.join(shared, "models/all-MiniLM-L6-v2")
    out_dir = os.path.join(work, "cross-encoder")
    out, *_ = run(binary, work, "train", "cross-encoder", "--beir", beir, "--base", model, "--out", out_dir,
                  "--held-out", "0.97", "--max-length", "48", "--loss", "listwise", "--negatives", "3",
                  "--random-negatives", "0", "--json")
    summary = json.loads(out)
    with open(os.path.join(out_dir, "held-out.tsv")) as f:
        held = {line.split("\t")[0] for line in list(f)[1:]}
    check("cross-encoder: training writes the held-out queries' qrels", len(held) == summary["held_out_queries"] > 200,
          f"{len(held)} queries in held-out.tsv, {summary['held_out_queries']} reported; {summary['pairs']} pairs")
    out, *_ = run(binary, work, "eval", "search", "--beir", beir, "--qrels", os.path.join(out_dir, "held-out.tsv"),
                  "--rerank", out_dir, "--rerank-depth", "3", "--rerank-weight", "0.5", "--json")
    reports = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    check("cross-encoder: eval search --rerank reports the mode and the reranked mode on the held-out queries",
          [r["system"] for r in reports] == ["bm25", "bm25+rerank"] and reports[1]["n_evaluated"] == len(held),
          str([(r["system"], r["n_evaluated"], round(r["metrics"]["ndcg@10"], 4)) for r in reports]))
    # Served: `funnel search` on cranfield with search.cross_encoder set to that model.
    data = os.path.join(work, "cranfield-rerank")
    os.makedirs(data)
    with open(os.path.join(data, "funnel.toml"), "w") as f:
        f.write(f"[search]\ncross_encoder = {json.dumps(out_dir)}\n")
    run(binary, data, "import", "items", os.path.join(beir, "corpus.jsonl"), "--format", "beir", "--json")
    run(binary, data, "train", "--json")
    query = "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft"
    plain, *_ = run(binary, data, "search", query, "--k", "20", "--rerank-depth", "0", "--json")
    served, seconds, _ = run(binary, data, "search", query, "--k", "20", "--explain", "--json")
    plain, served = json.loads(plain), json.loads(served)
    stage = [s for s in served["trace"]["stages"] if s["stage"] == "rerank"]
    ids = lambda body: [i["id"] for i in body["items"]]
    check("cross-encoder: `funnel search` reorders BM25's top 20 with search.cross_encoder's model",
          len(stage) == 1 and stage[0]["details"]["model"] == out_dir and len(ids(served)) == 20
          and sorted(ids(served)) == sorted(ids(plain)) and ids(served) != ids(plain),
          f"{stage[0]['micros'] / 1000 if stage else None} ms in the cross-encoder; top 5 {ids(served)[:5]} "
          f"(BM25 alone {ids(plain)[:5]})")


def eval_ltr_gate(binary, shared, work):
    base = os.path.join(shared, "data/ltr/lightgbm-lambdarank")
    model = os.path.join(work, "ltr-model.json")
    out, *_ = run(binary, work, "eval", "ltr", "--train", f"{base}/rank.train", "--test", f"{base}/rank.test",
                  "--threads", "2", "--save-model", model, "--json")
    reports = {r["system"]: r for r in (json.loads(line) for line in out.splitlines() if line.startswith("{"))}
    at_least("eval ltr: best-feature ndcg@10", reports["best-feature"]["metrics"]["ndcg@10"],
             thresholds()["ltr_best_feature_ndcg@10"])
    # The peer's figure on the same data and settings (100 trees, 31 leaves, learning rate
    # 0.1), from the committed output of bench/ltr.py.
    with open(os.path.join(ROOT, "bench/results/ltr.json")) as f:
        peer = next(c for c in json.load(f)["configs"] if (c["trees"], c["leaves"], c["learning_rate"]) == (100, 31, 0.1))
    gbdt = reports["gbdt"]
    # Funnel grows LightGBM's trees: the same NDCG, up to float summation.
    at_least("eval ltr: gbdt (lambdarank) ndcg@10 vs LightGBM's", gbdt["metrics"]["ndcg@10"],
             peer["lightgbm_ndcg@10"] - 1e-9)
    check("eval ltr: gbdt is compared with best-feature and its model is saved",
          gbdt["baseline"] == "best-feature" and "ndcg@10" in gbdt["comparison"] and os.path.getsize(model) > 1000,
          f"{gbdt['comparison'].get('ndcg@10')}; trees kept {gbdt['params']['trees_kept']}")


def propensity_gate(binary, shared, work):
    """Position propensities from the Open Bandit Dataset's uniformly random logs: the
    counts and CTRs recomputed here from the CSV, the first position at 1."""
    import csv
    logs = os.path.join(shared, "data/obd/random/all/all.csv")
    out, *_ = run(binary, work, "eval", "propensity", "--logs", logs, "--json")
    positions = json.loads(out)["positions"]
    counts = {}
    with open(logs) as f:
        for row in csv.DictReader(f):
            n, c = counts.get(int(row["position"]), (0, 0))
            counts[int(row["position"])] = (n + 1, c + int(row["click"]))
    expected = [(k, n, c, c / n, (c / n) / (counts[1][1] / counts[1][0])) for k, (n, c) in sorted(counts.items())]
    got = [(p["position"], p["impressions"], p["clicks"], p["ctr"], p["propensity"]) for p in positions]
    check("eval propensity: OBD random logs' counts, CTRs and relative propensities",
          len(got) == len(expected) == 3 and all(g[:3] == e[:3] and abs(g[3] - e[3]) < 1e-12 and abs(g[4] - e[4]) < 1e-12
                                                 for g, e in zip(got, expected))
          and all(p["ci95"][0] <= p["propensity"] <= p["ci95"][1] for p in positions),
          "; ".join(f"{p['position']}: {p['clicks']}/{p['impressions']} -> {p['propensity']:.3f} "
                    f"[{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}]" for p in positions))


def ope_gate(binary, shared, work):
    """Off-policy estimates of the Bernoulli-TS policy from the random policy's Open Bandit
    logs: IPS and SNIPS recomputed here, and equal to obp's (scripts/reference/obp_ope.json,
    made by scripts/reference/obp_ope.py) to 1e-9; DR inside obp's interval."""
    import gzip
    obd = os.path.join(shared, "data/obd")
    dist_file = os.path.join(obd, "bts_action_dist_all.csv.gz")
    out, *_ = run(binary, work, "eval", "ope", "--logs", f"{obd}/random/all", "--action-dist", dist_file,
                  "--truth", f"{obd}/bts/all", "--json")
    report = json.loads(out)
    metrics = report["metrics"]
    with open(os.path.join(obd, "random/all/all.csv")) as f:
        header = f.readline().rstrip("\n").split(",")
        at = {name: header.index(name) for name in ("item_id", "position", "click", "propensity_score")}
        rows = [line.rstrip("\n").split(",") for line in f]
    logged = {(t, int(r[at["item_id"]]), int(r[at["position"]]) - 1): t for t, r in enumerate(rows)}
    pi = [0.0] * len(rows)
    with gzip.open(dist_file, "rt") as f:
        f.readline()
        for line in f:
            round_, item, position, prob = line.split(",")
            t = logged.get((int(round_), int(item), int(position)))
            if t is not None:
                pi[t] = float(prob)
    w = [pi[t] / float(r[at["propensity_score"]]) for t, r in enumerate(rows)]
    clicks = [float(r[at["click"]]) for r in rows]
    ips = sum(wt * c for wt, c in zip(w, clicks)) / len(rows)
    snips = sum(wt * c for wt, c in zip(w, clicks)) / sum(w)
    check("ope: IPS as recomputed here", abs(metrics["ips"] - ips) < 1e-9, f"{metrics['ips']:.9f} vs {ips:.9f}")
    check("ope: SNIPS as recomputed here", abs(metrics["snips"] - snips) < 1e-9, f"{metrics['snips']:.9f} vs {snips:.9f}")
    with open(os.path.join(ROOT, "scripts/reference/obp_ope.json")) as f:
        obp = json.load(f)
    ref = obp["estimates"]["cell_prior"]
    for name in ("ips", "snips"):
        check(f"ope: {name} equals obp's", abs(metrics[name] - ref[name]["estimate"]) < 1e-9,
              f"{metrics[name]:.9f} vs obp {ref[name]['estimate']:.9f}")
    for name in ("dm", "dr", "sndr"):
        check(f"ope: {name} equals obp's with the same reward model", abs(metrics[name] - ref[name]["estimate"]) < 1e-9,
              f"{metrics[name]:.9f} vs obp {ref[name]['estimate']:.9f}")
    interval = obp["estimates"]["logistic"]["dr"]["interval"]
    low, high = interval["95.0% CI (lower)"], interval["95.0% CI (upper)"]
    check("ope: DR inside obp's DR interval (its logistic reward model)", low <= metrics["dr"] <= high,
          f"{metrics['dr']:.6f} in [{low:.6f}, {high:.6f}]")
    check("ope: the on-policy truth is the bts logs' mean click", abs(report["truth"]["value"] - 0.0042) < 1e-12)
    # Funnel's own policies, trained on the bts logs, evaluated from the random ones. The
    # greedy one (no exploration) always shows the three most clicked items (ties by id):
    # its IPS is recomputed here exactly.
    with open(os.path.join(obd, "bts/all/all.csv")) as f:
        bts_header = f.readline().rstrip("\n").split(",")
        item_at, click_at = bts_header.index("item_id"), bts_header.index("click")
        bts_clicks = {}
        for line in f:
            r = line.rstrip("\n").split(",")
            bts_clicks[int(r[item_at])] = bts_clicks.get(int(r[item_at]), 0) + float(r[click_at])
    slate = sorted(bts_clicks, key=lambda i: (-bts_clicks[i], i))[:3]
    matched = [r for r in rows if int(r[at["item_id"]]) == slate[int(r[at["position"]]) - 1]]
    greedy_ips = sum(float(r[at["click"]]) / float(r[at["propensity_score"]]) for r in matched) / len(rows)
    greedy_weight = sum(1 / float(r[at["propensity_score"]]) for r in matched) / len(rows)
    out, *_ = run(binary, work, "eval", "ope", "--logs", f"{obd}/random/all", "--policy", "none",
                  "--policy-logs", f"{obd}/bts/all", "--policy-samples", "1000", "--bootstrap", "200", "--json")
    own = json.loads(out)
    check("ope: --policy none is the greedy slate of the most clicked items",
          abs(own["metrics"]["ips"] - greedy_ips) < 1e-9 and abs(own["weights"]["mean"] - greedy_weight) < 1e-9,
          f"IPS {own['metrics']['ips']:.6f} vs {greedy_ips:.6f}, mean weight {own['weights']['mean']:.6f} vs "
          f"{greedy_weight:.6f} ({len(matched)} rounds match slate {slate})")
    out, *_ = run(binary, work, "eval", "ope", "--logs", f"{obd}/random/all", "--policy", "thompson",
                  "--policy-logs", f"{obd}/bts/all", "--policy-samples", "20000", "--bootstrap", "200", "--json")
    own = json.loads(out)
    check("ope: --policy thompson is measured as a distribution", abs(own["weights"]["mean"] - 1.0) < 0.1,
          f"mean weight {own['weights']['mean']:.3f}; IPS {own['metrics']['ips']:.6f} "
          f"[{own['ci95']['ips'][0]:.6f}, {own['ci95']['ips'][1]:.6f}], DR {own['metrics']['dr']:.6f}")


def simulate_gate(binary, shared, work):
    """Closed loop: exploration (Thompson sampling over the bandit's own greedy choice) and
    the popularity penalty (over the ranker's greedy order) show more of the catalog and
    spread exposure more evenly."""
    out, *_ = run(binary, work, "simulate", "--rounds", "10", "--users", "300", "--items", "600", "--policies",
                  "bandit-greedy,thompson,greedy,popularity-penalty", "--json")
    runs = {p["name"]: p["summary"] for p in json.loads(out)["policies"]}
    for explorer, baseline in (("thompson", "bandit-greedy"), ("popularity-penalty", "greedy")):
        a, b = runs[explorer], runs[baseline]
        check(f"simulate: {explorer} covers more of the catalog than {baseline}",
              a["cumulative_coverage"] > b["cumulative_coverage"],
              f"{a['cumulative_coverage']:.3f} vs {b['cumulative_coverage']:.3f}")
        check(f"simulate: {explorer} spreads exposure more evenly than {baseline}", a["exposure_gini"] < b["exposure_gini"],
              f"Gini {a['exposure_gini']:.3f} vs {b['exposure_gini']:.3f}; CTR {a['ctr']:.4f} vs {b['ctr']:.4f}, "
              f"short-run {a['early_ctr']:.4f} vs {b['early_ctr']:.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default="target/release/funnel")
    parser.add_argument("--shared", default="../shared")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="funnel-gates-")
    try:
        for gate in (ml100k_gate, eval_recs_gate, eval_engine_gate, ranker_gate, cold_start_gate, embedding_gate, content_gate, eval_search_gate, spell_gate, hybrid_search_gate, cross_encoder_gate, eval_ltr_gate, propensity_gate, ope_gate, simulate_gate, corpus_gate):
            try:
                gate(args.bin, args.shared, work)
            except Exception as error:  # a crash of one gate is a failure, not a skip
                check(gate.__name__, False, str(error))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"gates: {RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
