#!/usr/bin/env python3
"""Injects one typo into each query of a BEIR collection, seeded.

For every query one word is picked (letters only, four or more, not a stop word) and one
edit is applied at a random position: a letter inserted, deleted, replaced, or two
neighbours swapped (always changing the word). The output folder holds the new
queries.jsonl and links to the collection's corpus and qrels, so that
`funnel eval search --beir OUT` scores the typed queries against the same judgments.

Usage: python3 scripts/typos.py --beir ir/cranfield/beir --out /tmp/cranfield-typos [--seed 7]
"""

import argparse
import json
import os
import random
import re

# The analyzer's stop words (crates/funnel-text/src/analyzer.rs): a typo there changes nothing.
STOP_WORDS = set(
    "a an and are as at be been but by for from has have if in into is it its no not of on or s such t that the "
    "their then there these they this to was were will with".split()
)
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def misspell(word, rng):
    while True:
        kind = rng.choice(["insert", "delete", "replace", "swap"])
        i = rng.randrange(len(word))
        if kind == "insert":
            typo = word[:i] + rng.choice(LETTERS) + word[i:]
        elif kind == "delete":
            typo = word[:i] + word[i + 1 :]
        elif kind == "replace":
            typo = word[:i] + rng.choice(LETTERS) + word[i + 1 :]
        else:
            i = min(i, len(word) - 2)
            typo = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        if typo.lower() != word.lower():
            return typo


def with_typo(text, rng):
    # Whole words of letters only (not the letters of "f16" or "2nd").
    pattern = r"(?<![0-9A-Za-z])[A-Za-z]{4,}(?![0-9A-Za-z])"
    words = [m for m in re.finditer(pattern, text) if m.group().lower() not in STOP_WORDS]
    if not words:
        return text
    m = rng.choice(words)
    return text[: m.start()] + misspell(m.group(), rng) + text[m.end() :]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.beir, "queries.jsonl")) as f, open(os.path.join(args.out, "queries.jsonl"), "w") as out:
        for line in f:
            if line.strip():
                query = json.loads(line)
                query["text"] = with_typo(query["text"], rng)
                out.write(json.dumps(query) + "\n")
    for name in ("corpus.jsonl", "qrels"):
        link = os.path.join(args.out, name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.abspath(os.path.join(args.beir, name)), link)


if __name__ == "__main__":
    main()
