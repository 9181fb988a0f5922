#!/usr/bin/env python3
"""BM25: Funnel against bm25s and tantivy (Python bindings), one run, side by side.

Quality: NDCG@10 on cranfield, cisi and npl (../shared/data/ir, BEIR layout), scored by
one function for every system (gain 2^rel - 1, trec_eval's tie order does not matter at
this depth for the peers, Funnel's own figure comes from `funnel eval search`). Peers are
tried in several configurations (bm25s: five BM25 variants with k1 1.2 and 1.5; tantivy:
its English stemming tokenizer); the ratio is Funnel's default configuration against the
best peer configuration per collection, and on the mean over the collections.

Speed: the 841,708-document package corpus (title + summary). Index build time (every
system on the same 2 threads where it can use them), then 1,000 seeded queries (1-4
consecutive words of random summaries) one at a time on one thread, top 10, three passes
after an untimed one. bm25s runs on its numba backend and is also given its batched
retrieval (all queries in one call, one thread), its fastest single-thread mode. Peak memory is each system's own process.

Usage: python3 bench/bm25.py [--part quality,speed] [--queries 1000]
Writes bench/results/bm25.json.
"""

import argparse
import gzip
import json
import math
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from peer_env import reexec_in  # noqa: E402

VENV = os.path.join(HERE, ".venv")
CACHE = os.path.join(HERE, ".cache")
COLLECTIONS = ["cranfield", "cisi", "npl"]
BM25S_METHODS = ["robertson", "lucene", "atire", "bm25l", "bm25+"]


def read_jsonl(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path):
    qrels = {}
    with open(path) as f:
        next(f)
        for line in f:
            query, doc, grade = line.split("\t")[:3]
            qrels.setdefault(query, {})[doc] = int(grade)
    return qrels


def ndcg10(ranked, judged):
    dcg = sum((2 ** judged.get(doc, 0) - 1) / math.log2(i + 2) for i, doc in enumerate(ranked[:10]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else None


def mean_ndcg(runs, qrels):
    scores = [ndcg10(runs.get(q, []), judged) for q, judged in qrels.items()]
    scores = [s for s in scores if s is not None]
    return sum(scores) / len(scores)


def clean_query(text):
    """Query text without the characters tantivy's query parser would read as syntax."""
    return " ".join(re.findall(r"[\w]+", text))


def doc_text(doc):
    return f"{doc.get('title', '')} {doc.get('text', '')}".strip()


def bm25s_runs(corpus, queries, method, k1, k=10, threads=1):
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    tokens = bm25s.tokenize([doc_text(d) for d in corpus], stopwords="en", stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25(method=method, k1=k1, b=0.75)
    retriever.index(tokens, show_progress=False)
    query_tokens = bm25s.tokenize([q["text"] for q in queries], stopwords="en", stemmer=stemmer, show_progress=False)
    k = min(k, len(corpus))
    docs, _ = retriever.retrieve(query_tokens, k=k, show_progress=False, n_threads=threads)
    return {q["_id"]: [corpus[i]["_id"] for i in row] for q, row in zip(queries, docs)}


def tantivy_index(corpus, threads, heap=1 << 30, with_text=True):
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    builder.add_text_field("title", tokenizer_name="en_stem")
    builder.add_text_field("body", tokenizer_name="en_stem")
    index = tantivy.Index(builder.build())
    writer = index.writer(heap_size=heap, num_threads=threads)
    for doc in corpus:
        writer.add_document(tantivy.Document(id=str(doc["_id"]), title=doc.get("title", ""), body=doc.get("text", "")))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    return index


def tantivy_runs(corpus, queries, k=10):
    index = tantivy_index(corpus, threads=1)
    searcher = index.searcher()
    runs = {}
    for q in queries:
        text = clean_query(q["text"])
        if not text:
            runs[q["_id"]] = []
            continue
        query = index.parse_query(text, ["title", "body"])
        hits = searcher.search(query, k).hits
        runs[q["_id"]] = [searcher.doc(address)["id"][0] for _, address in hits]
    return runs


def funnel_ndcg(args, beir):
    out = subprocess.run(
        [args.bin, "eval", "search", "--beir", beir, "--json"], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.splitlines()[0])["metrics"]["ndcg@10"]


def quality(args):
    results = {}
    for name in COLLECTIONS:
        beir = os.path.join(args.shared, "data/ir", name, "beir")
        corpus = read_jsonl(os.path.join(beir, "corpus.jsonl"))
        queries = read_jsonl(os.path.join(beir, "queries.jsonl"))
        qrels = read_qrels(os.path.join(beir, "qrels/test.tsv"))
        queries = [q for q in queries if q["_id"] in qrels]
        systems = {"funnel": funnel_ndcg(args, beir)}
        for method in BM25S_METHODS:
            for k1 in (1.2, 1.5):
                systems[f"bm25s-{method}-k1={k1}"] = mean_ndcg(bm25s_runs(corpus, queries, method, k1), qrels)
        systems["tantivy-en_stem"] = mean_ndcg(tantivy_runs(corpus, queries), qrels)
        best = max((s for s in systems if s != "funnel"), key=systems.get)
        results[name] = {
            "ndcg@10": systems,
            "best_peer": best,
            "ratio_vs_best_peer": systems["funnel"] / systems[best],
        }
        print(f"{name}: funnel {systems['funnel']:.4f}, best peer {best} {systems[best]:.4f}", flush=True)
    peers = [s for s in results[COLLECTIONS[0]]["ndcg@10"] if s != "funnel"]
    mean = {s: sum(results[c]["ndcg@10"][s] for c in COLLECTIONS) / len(COLLECTIONS) for s in ["funnel", *peers]}
    best = max(peers, key=mean.get)
    results["mean"] = {"ndcg@10": mean, "best_peer": best, "ratio_vs_best_peer": mean["funnel"] / mean[best]}
    return results


def speed_queries(corpus, n):
    rng = random.Random(20261128)
    queries = []
    while len(queries) < n:
        words = [w for w in re.findall(r"[a-z]+", corpus[rng.randrange(len(corpus))].get("text", "").lower()) if len(w) > 2]
        if len(words) < 2:
            continue
        length = rng.choice([1, 2, 2, 3, 3, 4])
        start = rng.randrange(max(1, len(words) - length + 1))
        queries.append(" ".join(words[start : start + length]))
    return queries


def timed_passes(run_one, queries, passes):
    for q in queries:
        run_one(q)
    latencies = []
    started = time.perf_counter()
    for _ in range(passes):
        for q in queries:
            t = time.perf_counter()
            run_one(q)
            latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    latencies.sort()
    return {
        "qps": len(latencies) / total,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int((len(latencies) - 1) * 0.99)] * 1e3,
    }


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed_tantivy(corpus_path, queries_path, passes, threads):
    """Runs in its own process (peak memory is the process's own)."""
    corpus = read_jsonl(corpus_path)
    queries = open(queries_path).read().split("\n")[:-1]
    started = time.perf_counter()
    index = tantivy_index(corpus, threads=threads)
    build = time.perf_counter() - started
    searcher = index.searcher()

    def one(q):
        return searcher.search(index.parse_query(q, ["title", "body"]), 10).hits

    return {"build_s": build, **timed_passes(one, queries, passes), "peak_rss_mb": peak_rss_mb()}


def speed_bm25s(corpus_path, queries_path, passes, threads):
    import bm25s
    import Stemmer

    corpus = read_jsonl(corpus_path)
    queries = open(queries_path).read().split("\n")[:-1]
    stemmer = Stemmer.Stemmer("english")
    started = time.perf_counter()
    tokens = bm25s.tokenize([doc_text(d) for d in corpus], stopwords="en", stemmer=stemmer, show_progress=False)
    # The numba backend is bm25s's fastest (about 50 times its default's speed here).
    retriever = bm25s.BM25(method="lucene", k1=1.2, b=0.75, backend="numba")
    retriever.index(tokens, show_progress=False)
    build = time.perf_counter() - started
    del tokens

    def tokens_of(texts):
        return bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False)

    def one(q):
        tokens = tokens_of([q])
        # bm25s refuses a query with no indexed words (all stop words): nothing to find.
        if not tokens[0]:
            return []
        return retriever.retrieve(tokens, k=10, show_progress=False, n_threads=1)

    result = {"build_s": build, **timed_passes(one, queries, passes)}
    batch = [tokens for tokens in tokens_of(queries) if tokens]
    started = time.perf_counter()
    for _ in range(passes):
        retriever.retrieve(batch, k=10, show_progress=False, n_threads=1)
    result["batched_qps"] = len(batch) * passes / (time.perf_counter() - started)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def speed(args):
    os.makedirs(CACHE, exist_ok=True)
    corpus_path = os.path.join(args.shared, "data/corpus/pkg-summaries.jsonl.gz")
    queries_path = os.path.join(CACHE, f"bm25-queries-{args.queries}.txt")
    if not os.path.exists(queries_path):
        queries = speed_queries(read_jsonl(corpus_path), args.queries)
        with open(queries_path, "w") as f:
            f.write("".join(q + "\n" for q in queries))
    results = {"docs": None, "queries": args.queries, "passes": args.passes, "build_threads": args.threads}
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    out = subprocess.run(
        [args.bin, "bench", "search", "--corpus", corpus_path, "--queries", queries_path, "--fields", "text",
         "--repeat", str(args.passes), "--json"],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    funnel = json.loads(out)
    results["docs"] = funnel["docs"]
    results["funnel"] = {k: funnel[k] for k in ("build_s", "qps", "p50_ms", "p99_ms", "peak_rss_mb")}
    print(f"funnel: {results['funnel']}", flush=True)
    for peer in ("tantivy", "bm25s"):
        out = subprocess.run(
            [sys.executable, __file__, "--peer-speed", peer, "--peer-args", json.dumps([corpus_path, queries_path,
             args.passes, args.threads])],
            capture_output=True, text=True,
        )
        if out.returncode != 0:
            sys.exit(f"{peer} failed:\n{out.stderr}")
        results[peer] = json.loads(out.stdout.splitlines()[-1])
        print(f"{peer}: {results[peer]}", flush=True)
    f, t, b = results["funnel"], results["tantivy"], results["bm25s"]
    results["ratios"] = {
        "qps_vs_tantivy": f["qps"] / t["qps"],
        "qps_vs_bm25s": f["qps"] / b["qps"],
        "qps_vs_bm25s_batched": f["qps"] / b["batched_qps"],
        "build_time_vs_tantivy": f["build_s"] / t["build_s"],
    }
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="quality,speed")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bin", default=os.path.join(ROOT, "target/release/funnel"))
    parser.add_argument("--shared", default=os.path.join(ROOT, "../shared"))
    parser.add_argument("--out", default=os.path.join(HERE, "results/bm25.json"))
    parser.add_argument("--peer-speed", help=argparse.SUPPRESS)
    parser.add_argument("--peer-args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    reexec_in(VENV, ["numpy", "scipy", "bm25s", "PyStemmer", "tantivy", "numba"])
    if args.peer_speed:
        run = {"tantivy": speed_tantivy, "bm25s": speed_bm25s}[args.peer_speed]
        print(json.dumps(run(*json.loads(args.peer_args))))
        return
    parts = args.part.split(",")
    results = {"command": "python3 bench/bm25.py --part " + args.part}
    if not os.path.exists(args.bin):
        subprocess.check_call(["cargo", "build", "--release", "-p", "funnel"], cwd=ROOT)
    if "quality" in parts:
        results["quality"] = quality(args)
    if "speed" in parts:
        results["speed"] = speed(args)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
