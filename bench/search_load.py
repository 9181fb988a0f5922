#!/usr/bin/env python3
"""/search under load on loopback: the package corpus served by `funnel serve`, hit by
`funnel bench http` (closed-loop clients with keep-alive connections).

Two set-ups, each imported, trained and served in its own temporary data folder:
- bm25: all 841,708 documents; the default search surface (spell correction, intent,
  BM25; no content model, so no dense source).
- hybrid: a seeded sample of --hybrid-docs documents with content.model = MiniLM, so the
  default search surface embeds each query and fuses BM25 with dense retrieval (RRF).
  The whole corpus is not embedded here: at ~100 documents/s on 2 cores it would take
  over two hours.
Queries: the 1,000 seeded queries of bench/bm25.py. Each set-up is measured at
--concurrency levels (default 1 and 4) for --seconds each. No peer runs here: the figure
is checked against the issue's target (p99 <= 20 ms).

Usage: python3 bench/search_load.py [--hybrid-docs 20000] [--seconds 20]
Writes bench/results/search_load.json.
"""

import argparse
import gzip
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bm25 import CACHE, read_jsonl, speed_queries  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def funnel(args, data, *argv, env=None):
    return subprocess.run([args.bin, "--data-dir", data, *argv], check=True, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {}))).stdout


def measure(args, name, corpus_path, queries_path, env):
    with tempfile.TemporaryDirectory(prefix=f"funnel-load-{name}-") as data:
        started = time.perf_counter()
        funnel(args, data, "import", "items", corpus_path, "--format", "beir", "--json")
        funnel(args, data, "train", "--json", env=env)
        prepared = time.perf_counter() - started
        port = free_port()
        server = subprocess.Popen([args.bin, "--data-dir", data, "serve", "--addr", f"127.0.0.1:{port}"],
                                  env=dict(os.environ, **env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(600):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    time.sleep(0.1)
            runs = []
            for concurrency in args.concurrency:
                out = subprocess.run([args.bin, "bench", "http", "--url", url, "--queries", queries_path,
                                      "--concurrency", str(concurrency), "--seconds", str(args.seconds), "--json"],
                                     check=True, capture_output=True, text=True).stdout
                runs.append(json.loads(out))
                print(f"{name} concurrency {concurrency}: {runs[-1]}", flush=True)
        finally:
            server.terminate()
            server.wait()
    return {"import_and_train_s": prepared, "runs": runs}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hybrid-docs", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 4])
    parser.add_argument("--bin", default=os.path.join(ROOT, "target/release/funnel"))
    parser.add_argument("--shared", default=os.path.join(ROOT, "../shared"))
    parser.add_argument("--out", default=os.path.join(HERE, "results/search_load.json"))
    args = parser.parse_args()
    if not os.path.exists(args.bin):
        subprocess.check_call(["cargo", "build", "--release", "-p", "funnel"], cwd=ROOT)
    os.makedirs(CACHE, exist_ok=True)
    corpus_path = os.path.join(args.shared, "data/corpus/pkg-summaries.jsonl.gz")
    docs = read_jsonl(corpus_path)
    queries_path = os.path.join(CACHE, "bm25-queries-1000.txt")
    if not os.path.exists(queries_path):
        with open(queries_path, "w") as f:
            f.write("".join(q + "\n" for q in speed_queries(docs, 1000)))
    sample_path = os.path.join(CACHE, f"corpus-sample-{args.hybrid_docs}.jsonl")
    if not os.path.exists(sample_path):
        sample = random.Random(20261128).sample(range(len(docs)), args.hybrid_docs)
        with open(sample_path, "w") as f:
            for i in sorted(sample):
                doc = docs[i]
                f.write(json.dumps({"_id": doc["_id"], "title": doc["title"], "text": doc.get("text", "")}) + "\n")
    del docs
    model = os.path.abspath(os.path.join(args.shared, "models/all-MiniLM-L6-v2"))
    results = {
        "command": "python3 bench/search_load.py " + " ".join(sys.argv[1:]),
        "target_p99_ms": 20.0,
        "bm25": {"docs": 841708, **measure(args, "bm25", corpus_path, queries_path, {"FUNNEL__SEARCH__FIELDS": '["text"]'})},
        "hybrid": {"docs": args.hybrid_docs, **measure(args, "hybrid", sample_path, queries_path,
                                                       {"FUNNEL__CONTENT__MODEL": model})},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
