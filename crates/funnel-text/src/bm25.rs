//! Okapi BM25 over an in-memory inverted index.
//!
//! score(q, d) = Σ_{t ∈ q} idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl))
//! with idf(t) = ln(1 + (N − df + 0.5)/(df + 0.5)) (Lucene's non-negative form).
//!
//! Field weights multiply term frequencies and lengths (a simple BM25F). The per-posting
//! factor after idf is computed at build time, so a query is one multiply-add per posting.

use std::cell::RefCell;
use std::collections::BinaryHeap;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::{Analyzer, AnalyzerConfig};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Self { k1: 1.2, b: 0.75 }
    }
}

/// The text of one document: fields with their weights.
#[derive(Debug, Clone, Default)]
pub struct DocText<'a> {
    pub fields: Vec<(&'a str, f32)>,
}

/// A scored document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub doc: u32,
    pub score: f32,
}

/// Terms kept per document for "more like this".
const SIGNATURE_TERMS: usize = 12;

#[derive(Debug, Serialize, Deserialize)]
pub struct Bm25Index {
    analyzer: AnalyzerConfig,
    params: Bm25Params,
    n_docs: u32,
    terms: FxHashMap<String, u32>,
    /// CSR: postings of term t are `offsets[t]..offsets[t+1]`.
    offsets: Vec<u64>,
    docs: Vec<u32>,
    /// tf·(k1+1)/(tf + k1·norm(d)) per posting.
    weights: Vec<f32>,
    idf: Vec<f32>,
    /// CSR: the highest tf-idf terms of each document.
    signature_offsets: Vec<u64>,
    signature_terms: Vec<u32>,
}

type DocTerms = Vec<(String, f32)>;

/// Documents are analysed in parallel chunks of this size, then interned, so that only
/// one chunk's term strings are alive at a time.
const CHUNK: usize = 32_768;

/// A document's distinct terms with their weighted frequencies, sorted by term.
fn analyze_doc(analyzer: &Analyzer, doc: &DocText<'_>) -> (DocTerms, f32) {
    let mut terms: DocTerms = Vec::new();
    let mut length = 0.0;
    for (text, weight) in &doc.fields {
        analyzer.for_each_term(text, |term| {
            terms.push((term.to_owned(), *weight));
            length += weight;
        });
    }
    terms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    terms.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 += later.1;
        }
        same
    });
    (terms, length)
}

/// Every document's (term id, weighted tf) pairs in one flat CSR, plus lengths.
#[derive(Default)]
struct Forward {
    terms: FxHashMap<String, u32>,
    doc_freq: Vec<u64>,
    offsets: Vec<u64>,
    pairs: Vec<(u32, f32)>,
    lengths: Vec<f32>,
}

impl Forward {
    fn push(&mut self, doc_terms: DocTerms, length: f32) {
        for (term, tf) in doc_terms {
            let next = self.terms.len() as u32;
            let id = *self.terms.entry(term).or_insert(next);
            if id as usize == self.doc_freq.len() {
                self.doc_freq.push(0);
            }
            self.doc_freq[id as usize] += 1;
            self.pairs.push((id, tf));
        }
        self.offsets.push(self.pairs.len() as u64);
        self.lengths.push(length);
    }

    fn doc(&self, doc: usize) -> &[(u32, f32)] {
        &self.pairs[self.offsets[doc] as usize..self.offsets[doc + 1] as usize]
    }
}

impl Bm25Index {
    /// Builds an index over `n_docs` documents; `doc(i)` gives document `i`'s text.
    pub fn build<'a>(
        n_docs: usize,
        doc: impl Fn(usize) -> DocText<'a> + Sync,
        analyzer_config: AnalyzerConfig,
        params: Bm25Params,
    ) -> Self {
        let mut forward = Forward { offsets: vec![0], ..Forward::default() };
        for start in (0..n_docs).step_by(CHUNK) {
            let analyzed: Vec<(DocTerms, f32)> = (start..(start + CHUNK).min(n_docs))
                .into_par_iter()
                .map_init(|| Analyzer::new(analyzer_config), |analyzer, i| analyze_doc(analyzer, &doc(i)))
                .collect();
            for (doc_terms, length) in analyzed {
                forward.push(doc_terms, length);
            }
        }
        let n_docs = u32::try_from(n_docs).expect("fewer than 4 billion documents");
        let total_length: f64 = forward.lengths.iter().map(|&len| f64::from(len)).sum();
        let avg_length = if n_docs == 0 { 1.0 } else { (total_length / f64::from(n_docs)).max(1e-6) as f32 };

        let mut offsets = Vec::with_capacity(forward.doc_freq.len() + 1);
        offsets.push(0u64);
        for df in &forward.doc_freq {
            offsets.push(offsets.last().expect("non-empty") + df);
        }
        let total = *offsets.last().expect("non-empty") as usize;
        let mut docs_out = vec![0u32; total];
        let mut weights = vec![0f32; total];
        let mut cursor: Vec<u64> = offsets[..offsets.len() - 1].to_vec();
        for doc in 0..n_docs as usize {
            let norm = 1.0 - params.b + params.b * forward.lengths[doc] / avg_length;
            for &(term, tf) in forward.doc(doc) {
                let slot = cursor[term as usize] as usize;
                cursor[term as usize] += 1;
                docs_out[slot] = doc as u32;
                weights[slot] = tf * (params.k1 + 1.0) / (tf + params.k1 * norm);
            }
        }
        let idf: Vec<f32> = forward.doc_freq.iter().map(|&df| idf(f64::from(n_docs), df as f64)).collect();
        let (signature_offsets, signature_terms) = signatures(&forward, &idf);
        Self {
            analyzer: analyzer_config,
            params,
            n_docs,
            terms: forward.terms,
            offsets,
            docs: docs_out,
            weights,
            idf,
            signature_offsets,
            signature_terms,
        }
    }

    pub fn params(&self) -> Bm25Params {
        self.params
    }

    pub fn n_docs(&self) -> u32 {
        self.n_docs
    }

    pub fn n_terms(&self) -> usize {
        self.terms.len()
    }

    /// Analyses `query` and returns its known term ids (repeats kept).
    pub fn query_terms(&self, query: &str) -> Vec<u32> {
        let analyzer = Analyzer::new(self.analyzer);
        let mut ids = Vec::new();
        analyzer.for_each_term(query, |term| {
            if let Some(&id) = self.terms.get(term) {
                ids.push(id);
            }
        });
        ids
    }

    /// Top `k` documents for `query` among those `allow` accepts, best first.
    pub fn search(&self, query: &str, k: usize, allow: &dyn Fn(u32) -> bool) -> Vec<Hit> {
        self.search_terms(&self.query_terms(query), k, allow)
    }

    /// Top `k` documents for already analysed term ids.
    pub fn search_terms(&self, terms: &[u32], k: usize, allow: &dyn Fn(u32) -> bool) -> Vec<Hit> {
        if k == 0 || terms.is_empty() {
            return Vec::new();
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            scratch.reset(self.n_docs as usize);
            for &term in terms {
                let idf = self.idf[term as usize];
                let range = self.offsets[term as usize] as usize..self.offsets[term as usize + 1] as usize;
                for (&doc, &weight) in self.docs[range.clone()].iter().zip(&self.weights[range]) {
                    scratch.add(doc, idf * weight);
                }
            }
            scratch.top_k(k, allow)
        })
    }

    /// Documents that share the most distinctive terms with `doc` (excluding itself).
    pub fn more_like_this(&self, doc: u32, k: usize, allow: &dyn Fn(u32) -> bool) -> Vec<Hit> {
        let Some(range) = self.signature_range(doc) else { return Vec::new() };
        let terms = &self.signature_terms[range];
        self.search_terms(terms, k, &|d| d != doc && allow(d))
    }

    fn signature_range(&self, doc: u32) -> Option<std::ops::Range<usize>> {
        let doc = doc as usize;
        (doc + 1 < self.signature_offsets.len())
            .then(|| self.signature_offsets[doc] as usize..self.signature_offsets[doc + 1] as usize)
    }
}

/// Lucene's BM25 idf: always positive, so common terms never subtract.
pub(crate) fn idf(n_docs: f64, doc_freq: f64) -> f32 {
    debug_assert!(doc_freq <= n_docs);
    (1.0 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5)).ln() as f32
}

fn signatures(forward: &Forward, idf: &[f32]) -> (Vec<u64>, Vec<u32>) {
    let n_docs = forward.lengths.len();
    let mut offsets = Vec::with_capacity(n_docs + 1);
    let mut terms = Vec::new();
    offsets.push(0);
    for doc in 0..n_docs {
        let ids = forward.doc(doc);
        let mut scored: Vec<(f32, u32)> = ids.iter().map(|&(t, tf)| (tf * idf[t as usize], t)).collect();
        scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        terms.extend(scored.iter().take(SIGNATURE_TERMS).map(|&(_, t)| t));
        offsets.push(terms.len() as u64);
    }
    (offsets, terms)
}

/// A reusable score accumulator: dense scores plus the list of touched documents.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    touched: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Scratch {
    fn reset(&mut self, n_docs: usize) {
        for &doc in &self.touched {
            self.scores[doc as usize] = 0.0;
        }
        self.touched.clear();
        if self.scores.len() < n_docs {
            self.scores.resize(n_docs, 0.0);
        }
    }

    #[inline]
    fn add(&mut self, doc: u32, score: f32) {
        let slot = &mut self.scores[doc as usize];
        if *slot == 0.0 {
            self.touched.push(doc);
        }
        *slot += score;
    }

    /// Best `k` touched documents; ties broken by lower doc id for determinism.
    fn top_k(&self, k: usize, allow: &dyn Fn(u32) -> bool) -> Vec<Hit> {
        let mut heap: BinaryHeap<MinHit> = BinaryHeap::with_capacity(k + 1);
        for &doc in &self.touched {
            let candidate = MinHit(Hit { doc, score: self.scores[doc as usize] });
            if heap.len() == k && heap.peek().is_some_and(|worst| candidate >= *worst) {
                continue;
            }
            if !allow(doc) {
                continue;
            }
            heap.push(candidate);
            if heap.len() > k {
                heap.pop();
            }
        }
        let mut hits: Vec<Hit> = heap.into_iter().map(|h| h.0).collect();
        hits.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc)));
        hits
    }
}

/// Orders hits so that the heap's top is the worst hit kept (lowest score, then highest id).
#[derive(PartialEq)]
struct MinHit(Hit);

impl Eq for MinHit {}

impl Ord for MinHit {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.score.total_cmp(&self.0.score).then(self.0.doc.cmp(&other.0.doc))
    }
}

impl PartialOrd for MinHit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(texts: &[&str]) -> Bm25Index {
        Bm25Index::build(
            texts.len(),
            |i| DocText { fields: vec![(texts[i], 1.0)] },
            AnalyzerConfig::default(),
            Bm25Params::default(),
        )
    }

    #[test]
    fn scores_match_the_formula_to_the_last_digit() {
        let idx = index(&["rust web framework", "python web", "rust rust compiler internals"]);
        let hits = idx.search("rust", 10, &|_| true);
        // N=3, df=2: idf = ln(1 + 1.5/2.5); avgdl = 3; doc 2 has tf 2, |d| = 4.
        let idf = (1.0f32 + 1.5 / 2.5).ln();
        let w2 = 2.0 * 2.2 / (2.0 + 1.2 * (0.25 + 0.75 * 4.0 / 3.0));
        let w0 = 1.0 * 2.2 / (1.0 + 1.2 * (0.25 + 0.75 * 3.0 / 3.0));
        assert_eq!(hits.iter().map(|h| h.doc).collect::<Vec<_>>(), [2, 0]);
        assert!((hits[0].score - idf * w2).abs() < 1e-6, "{} vs {}", hits[0].score, idf * w2);
        assert!((hits[1].score - idf * w0).abs() < 1e-6);
    }

    #[test]
    fn top_k_respects_k_filter_and_ties() {
        let idx = index(&["apple", "apple", "apple", "pear"]);
        let hits = idx.search("apple", 2, &|d| d != 0);
        assert_eq!(hits.iter().map(|h| h.doc).collect::<Vec<_>>(), [1, 2]);
        assert!(idx.search("banana", 5, &|_| true).is_empty());
        assert!(idx.search("", 5, &|_| true).is_empty());
    }

    #[test]
    fn field_weights_favour_title_matches() {
        let docs = [
            DocText { fields: vec![("async", 2.0), ("a library", 1.0)] },
            DocText { fields: vec![("other", 2.0), ("async library", 1.0)] },
        ];
        let idx = Bm25Index::build(docs.len(), |i| docs[i].clone(), AnalyzerConfig::default(), Bm25Params::default());
        assert_eq!(idx.search("async", 2, &|_| true)[0].doc, 0);
    }

    #[test]
    fn more_like_this_finds_topical_neighbours() {
        let idx = index(&[
            "async web framework for python",
            "fast async web server framework",
            "numerical linear algebra routines",
            "matrix algebra and linear solvers",
        ]);
        assert_eq!(idx.more_like_this(0, 1, &|_| true)[0].doc, 1);
        assert_eq!(idx.more_like_this(2, 1, &|_| true)[0].doc, 3);
        assert!(idx.more_like_this(99, 1, &|_| true).is_empty());
    }

    #[test]
    fn scores_are_finite_and_positive_for_every_term() {
        let idx = index(&["the the the", "a b c d e f", "x"]);
        for term in ["b", "x", "f"] {
            for hit in idx.search(term, 10, &|_| true) {
                assert!(hit.score.is_finite() && hit.score > 0.0);
            }
        }
    }
}
