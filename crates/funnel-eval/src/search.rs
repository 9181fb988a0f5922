//! `funnel eval search`: build Funnel's text index (and, for dense and hybrid modes, the
//! documents' embeddings) over a BEIR collection's corpus, run its judged queries, and
//! score the rankings with trec_eval's semantics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use funnel_engine::{PairScorer, SearchConfig, TextEmbedder, build_text_index, build_vocabulary, content_text};
use funnel_store::import::{Format, read_beir_queries, read_items, read_qrels};
use funnel_text::Speller;
use funnel_text::fusion::{self, Normalisation, Ranked};
use serde_json::json;

use crate::metrics::{Discount, Gain, Judgments, Metric};
use crate::trec::{Ranking, trec_order};
use crate::{EvalError, Report, Timing, stats};

/// Retrieval modes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Bm25,
    /// Nearest documents to the query's embedding (exact inner product).
    Dense,
    /// Reciprocal rank fusion of BM25 and dense with constant `k`.
    HybridRrf {
        k: f32,
        dense_weight: f32,
    },
    /// Weighted sum of normalised BM25 and dense scores.
    HybridWeighted {
        dense_weight: f32,
        normalisation: Normalisation,
    },
}

impl Mode {
    pub const NAMES: &str = "bm25, dense, hybrid-rrf, hybrid-weighted";

    /// `rrf_k`, `dense_weight` and `normalisation` apply to the hybrid modes.
    pub fn parse(text: &str, rrf_k: f32, dense_weight: f32, normalisation: &str) -> Result<Self, EvalError> {
        if !(0.0..=1.0).contains(&dense_weight) {
            return Err(EvalError::Input(format!("--dense-weight must be in [0, 1], got {dense_weight}")));
        }
        if !(rrf_k >= 0.0 && rrf_k.is_finite()) {
            return Err(EvalError::Input(format!("--rrf-k must be ≥ 0, got {rrf_k}")));
        }
        let normalisation = match normalisation {
            "min-max" => Normalisation::MinMax,
            "z-score" => Normalisation::ZScore,
            other => return Err(EvalError::Input(format!("unknown --normalisation `{other}` (min-max, z-score)"))),
        };
        match text {
            "bm25" => Ok(Self::Bm25),
            "dense" => Ok(Self::Dense),
            "hybrid-rrf" => Ok(Self::HybridRrf { k: rrf_k, dense_weight }),
            "hybrid-weighted" => Ok(Self::HybridWeighted { dense_weight, normalisation }),
            other => Err(EvalError::Input(format!("unknown --mode `{other}`; available: {}", Self::NAMES))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Bm25 => "bm25",
            Self::Dense => "dense",
            Self::HybridRrf { .. } => "hybrid-rrf",
            Self::HybridWeighted { .. } => "hybrid-weighted",
        }
    }

    fn params(&self) -> serde_json::Value {
        match *self {
            Self::HybridRrf { k, dense_weight } => json!({ "rrf_k": k, "dense_weight": shortest(dense_weight) }),
            Self::HybridWeighted { dense_weight, normalisation } => json!({ "dense_weight": shortest(dense_weight),
                "normalisation": if normalisation == Normalisation::MinMax { "min-max" } else { "z-score" } }),
            _ => json!({}),
        }
    }

    fn needs_dense(&self) -> bool {
        *self != Self::Bm25
    }
}

/// Unit vectors of the documents, for exact nearest-neighbour search.
struct DenseIndex {
    dim: usize,
    data: Vec<f32>,
}

impl DenseIndex {
    fn build(texts: &[String], embedder: &dyn TextEmbedder) -> Result<Self, EvalError> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = embedder.embed(&refs, &mut |_| {}).map_err(EvalError::Input)?;
        let dim = vectors.first().map_or(0, Vec::len);
        if vectors.len() != texts.len() || dim == 0 || vectors.iter().any(|v| v.len() != dim) {
            return Err(EvalError::Input("the embedder returned vectors of the wrong number or size".into()));
        }
        Ok(Self { dim, data: vectors.concat() })
    }

    fn search(&self, query: &[f32], depth: usize) -> Vec<(u32, f32)> {
        let mut scored: Vec<(u32, f32)> = self
            .data
            .chunks_exact(self.dim.max(1))
            .enumerate()
            .map(|(doc, v)| (doc as u32, v.iter().zip(query).map(|(a, b)| a * b).sum()))
            .collect();
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if scored.len() > depth && depth > 0 {
            scored.select_nth_unstable_by(depth - 1, order);
            scored.truncate(depth);
        }
        scored.sort_unstable_by(order);
        scored
    }
}

#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// One result per mode (the documents are embedded once for all of them).
    pub modes: Vec<Mode>,
    /// Documents retrieved per query (the run's depth).
    pub depth: usize,
    /// Qrels file name under `qrels/` without `.tsv`.
    pub split: String,
    /// A qrels file elsewhere (e.g. the held-out queries of `funnel train cross-encoder`);
    /// overrides `split`.
    pub qrels: Option<PathBuf>,
    /// With a reranker: how many of each mode's top documents it rescores.
    pub rerank_depth: usize,
    /// The reranker's weight in the rescored block: 1 orders it by the model's score
    /// alone; below 1, by the weighted sum of the model's and the mode's scores, each
    /// min-max normalised over the block.
    pub rerank_weight: f32,
    pub search: SearchConfig,
    /// Correct each query's spelling from the corpus's vocabulary before searching.
    pub spell: bool,
}

#[derive(Debug, Clone)]
pub struct SearchResult {
    pub report: Report,
    pub per_query: BTreeMap<String, Vec<f64>>,
    pub rankings: Vec<(String, Ranking)>,
}

/// The metrics of a search evaluation.
pub fn search_metrics(depth: usize) -> Vec<Metric> {
    let mut metrics = vec![Metric::Ndcg(10), Metric::Map, Metric::Mrr, Metric::Precision(10), Metric::Recall(100)];
    if depth >= 1000 {
        metrics.push(Metric::Recall(1000));
    }
    metrics
}

/// An f32 setting as the f64 with the same shortest decimal form (1.2, not 1.2000000476…).
fn shortest(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

/// Evaluates each of `options.modes` on the BEIR folder `dir`, one result per mode; dense
/// and hybrid modes embed the documents and queries with `embedder` (once for all modes).
/// With a `reranker`, each mode's result is followed by `MODE+rerank`: its top
/// `options.rerank_depth` rescored by the cross-encoder, compared with the mode alone.
pub fn evaluate(
    dir: &Path,
    options: &SearchOptions,
    embedder: Option<&dyn TextEmbedder>,
    reranker: Option<&dyn PairScorer>,
) -> Result<Vec<SearchResult>, EvalError> {
    let needs_dense = options.modes.iter().any(Mode::needs_dense);
    let embedder = match (needs_dense, embedder) {
        (true, None) => {
            return Err(EvalError::Input(
                "dense and hybrid modes need an embedding model: --model DIR (or content.model)".into(),
            ));
        }
        (needs, embedder) => embedder.filter(|_| needs),
    };
    let missing = |name: &str| EvalError::Input(format!("{}: no {name} (expected the BEIR layout)", dir.display()));
    let corpus = dir.join("corpus.jsonl");
    let queries_path = dir.join("queries.jsonl");
    let qrels_path = options.qrels.clone().unwrap_or_else(|| dir.join("qrels").join(format!("{}.tsv", options.split)));
    for (path, name) in [(&corpus, "corpus.jsonl"), (&queries_path, "queries.jsonl"), (&qrels_path, "qrels file")] {
        if !path.exists() {
            return Err(missing(name));
        }
    }
    let items = read_items(&corpus, Format::Beir)?;
    let started = Instant::now();
    let index = build_text_index(&items, &options.search);
    let bm25_index_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let dense = match embedder {
        Some(embedder) => Some(DenseIndex::build(&items.iter().map(content_text).collect::<Vec<_>>(), embedder)?),
        None => None,
    };
    let dense_index_s = started.elapsed().as_secs_f64();

    let mut queries: BTreeMap<String, String> =
        read_beir_queries(&queries_path)?.into_iter().map(|q| (q.id, q.text)).collect();
    let corrected = if options.spell { correct_spelling(&items, &options.search, &mut queries) } else { 0 };
    let mut judged: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for qrel in read_qrels(&qrels_path)? {
        judged.entry(qrel.query).or_default().push((qrel.doc, f64::from(qrel.grade)));
    }
    let n_judged = judged.len();
    let evaluated: Vec<(String, Judgments<String>)> = judged
        .into_iter()
        .map(|(q, grades)| (q, Judgments::new(grades)))
        .filter(|(q, j)| j.n_relevant() > 0 && queries.contains_key(q))
        .collect();
    let started = Instant::now();
    let query_vectors = match embedder {
        Some(embedder) => {
            let texts: Vec<&str> = evaluated.iter().map(|(q, _)| queries[q].as_str()).collect();
            embedder.embed(&texts, &mut |_| {}).map_err(EvalError::Input)?
        }
        None => Vec::new(),
    };
    let query_embed_s = started.elapsed().as_secs_f64();

    // Where each document id is among the items, for the reranker to read their text.
    let positions = match reranker {
        Some(_) => items.iter().enumerate().map(|(n, item)| (item.id.as_str(), n)).collect(),
        None => std::collections::HashMap::new(),
    };
    let corpus =
        Corpus { items: &items, positions, index: &index, dense: dense.as_ref(), queries: &queries, query_vectors };
    let mut results = Vec::with_capacity(options.modes.len());
    for &mode in &options.modes {
        let started = Instant::now();
        let rankings: Vec<(String, Ranking)> = evaluated
            .iter()
            .enumerate()
            .map(|(n, (query, _))| (query.clone(), corpus.rank(mode, query, n, options.depth)))
            .collect();
        let uses = |dense: bool| if dense { 1.0 } else { 0.0 };
        let eval_s = started.elapsed().as_secs_f64() + uses(mode.needs_dense()) * query_embed_s;
        let index_s = bm25_index_s + uses(mode.needs_dense()) * dense_index_s;
        let per_query = score(&evaluated, &rankings, options.depth);
        let report = Report {
            task: "search",
            dataset: dir.display().to_string(),
            system: format!("{}{}", mode.name(), if options.spell { "+spell" } else { "" }),
            params: params(options, mode, items.len(), embedder.filter(|_| mode.needs_dense()), corrected),
            metrics: per_query.iter().map(|(m, v)| (m.clone(), stats::mean(v))).collect(),
            n_evaluated: evaluated.len(),
            n_skipped: n_judged - evaluated.len(),
            timing: Timing { fit_s: 0.0, index_s, eval_s, qps: evaluated.len() as f64 / eval_s.max(1e-9) },
            baseline: None,
            comparison: BTreeMap::new(),
        };
        let result = SearchResult { report, per_query, rankings };
        if let Some(reranker) = reranker {
            let reranked = rerank(&corpus, &evaluated, &result, reranker, options)?;
            results.push(result);
            results.push(reranked);
        } else {
            results.push(result);
        }
    }
    Ok(results)
}

/// `base` with each query's top `options.rerank_depth` documents reordered by
/// `reranker`; the rest keep their order below them.
fn rerank(
    corpus: &Corpus<'_>,
    evaluated: &[(String, Judgments<String>)],
    base: &SearchResult,
    reranker: &dyn PairScorer,
    options: &SearchOptions,
) -> Result<SearchResult, EvalError> {
    let started = Instant::now();
    let mut rankings = Vec::with_capacity(base.rankings.len());
    for (query, ranking) in &base.rankings {
        let depth = options.rerank_depth.min(ranking.len());
        let texts: Vec<String> = ranking[..depth]
            .iter()
            .map(|(doc, _)| content_text(&corpus.items[corpus.positions[doc.as_str()]]))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let scores = reranker.score(&corpus.queries[query], &refs).map_err(EvalError::Input)?;
        let scores = blended(&ranking[..depth], &scores, options.rerank_weight);
        let mut top: Ranking = ranking[..depth].iter().zip(scores).map(|((doc, _), s)| (doc.clone(), s)).collect();
        trec_order(&mut top);
        let floor = top.iter().map(|(_, s)| *s).fold(f64::INFINITY, f64::min);
        let floor = if floor.is_finite() { floor } else { 0.0 };
        top.extend(ranking[depth..].iter().enumerate().map(|(i, (doc, _))| (doc.clone(), floor - 1.0 - i as f64)));
        rankings.push((query.clone(), top));
    }
    let rerank_s = started.elapsed().as_secs_f64();
    let per_query = score(evaluated, &rankings, options.depth);
    let mut report = base.report.clone();
    report.system = format!("{}+rerank", base.report.system);
    report.params["rerank"] =
        json!({ "model": reranker.name(), "depth": options.rerank_depth, "weight": options.rerank_weight });
    report.metrics = per_query.iter().map(|(m, v)| (m.clone(), stats::mean(v))).collect();
    report.timing.eval_s += rerank_s;
    report.timing.qps = evaluated.len() as f64 / report.timing.eval_s.max(1e-9);
    report.baseline = Some(base.report.system.clone());
    report.comparison = per_query
        .iter()
        .map(|(metric, values)| (metric.clone(), stats::compare(values, &base.per_query[metric], RERANK_SEED)))
        .collect();
    Ok(SearchResult { report, per_query, rankings })
}

/// A rescored block's scores: the model's alone at `weight` 1, else blended with the first
/// stage's ([`fusion::blend`], as serving does).
fn blended(first: &[(String, f64)], model: &[f32], weight: f32) -> Vec<f64> {
    if weight >= 1.0 {
        return model.iter().map(|&s| f64::from(s)).collect();
    }
    let first: Vec<f32> = first.iter().map(|(_, s)| *s as f32).collect();
    fusion::blend(&first, model, weight).into_iter().map(f64::from).collect()
}

/// Seed of the bootstrap intervals in the rerank comparison.
const RERANK_SEED: u64 = 7;

/// What the modes search: the documents, their BM25 index and vectors, the queries.
struct Corpus<'a> {
    items: &'a [funnel_core::Item],
    /// Item index by document id (filled when a reranker runs).
    positions: std::collections::HashMap<&'a str, usize>,
    index: &'a funnel_text::Bm25Index,
    dense: Option<&'a DenseIndex>,
    queries: &'a BTreeMap<String, String>,
    /// The vectors of the evaluated queries, in order.
    query_vectors: Vec<Vec<f32>>,
}

impl Corpus<'_> {
    /// The ranking of `mode` for the `n`-th evaluated query.
    fn rank(&self, mode: Mode, query: &str, n: usize, depth: usize) -> Ranking {
        let bm25 = || -> Vec<(u32, f32)> {
            self.index.search(&self.queries[query], depth, &|_| true).iter().map(|h| (h.doc, h.score)).collect()
        };
        let vector = || self.dense.map(|d| d.search(&self.query_vectors[n], depth)).unwrap_or_default();
        let both = |dense_weight: f32| (bm25(), vector(), dense_weight);
        let hits = match mode {
            Mode::Bm25 => bm25(),
            Mode::Dense => vector(),
            Mode::HybridRrf { k, dense_weight } => {
                let (text, vectors, w) = both(dense_weight);
                let lists = [Ranked { hits: &text, weight: 1.0 - w }, Ranked { hits: &vectors, weight: w }];
                fusion::reciprocal_rank(&lists, k, depth)
            }
            Mode::HybridWeighted { dense_weight, normalisation } => {
                let (text, vectors, w) = both(dense_weight);
                let lists = [Ranked { hits: &text, weight: 1.0 - w }, Ranked { hits: &vectors, weight: w }];
                fusion::weighted(&lists, normalisation, depth)
            }
        };
        let mut ranking: Ranking =
            hits.iter().map(|&(doc, score)| (self.items[doc as usize].id.clone(), f64::from(score))).collect();
        trec_order(&mut ranking);
        ranking
    }
}

/// Each metric per evaluated query.
fn score(
    evaluated: &[(String, Judgments<String>)],
    rankings: &[(String, Ranking)],
    depth: usize,
) -> BTreeMap<String, Vec<f64>> {
    let mut per_query = BTreeMap::new();
    for metric in search_metrics(depth) {
        let values = evaluated
            .iter()
            .zip(rankings)
            .map(|((_, judged), (_, ranking))| {
                let ranked: Vec<String> = ranking.iter().map(|(d, _)| d.clone()).collect();
                metric.compute(&ranked, judged, Gain::Exponential, Discount::Log2)
            })
            .collect();
        per_query.insert(metric.to_string(), values);
    }
    per_query
}

fn params(
    options: &SearchOptions,
    mode: Mode,
    documents: usize,
    embedder: Option<&dyn TextEmbedder>,
    corrected: usize,
) -> serde_json::Value {
    let search = &options.search;
    let mut params = json!({ "k1": shortest(search.k1), "b": shortest(search.b),
                "title_weight": shortest(search.title_weight), "stem": search.stem, "stop_words": search.stop_words,
                "depth": options.depth, "documents": documents, "split": options.split });
    if let Some(qrels) = &options.qrels {
        params["qrels"] = json!(qrels.display().to_string());
    }
    if let (Some(map), serde_json::Value::Object(extra)) = (params.as_object_mut(), mode.params()) {
        map.extend(extra);
    }
    if let Some(embedder) = embedder {
        params["model"] = json!(embedder.name());
    }
    if options.spell {
        params["spell"] = json!({ "corrected_queries": corrected });
    }
    params
}

/// Replaces each query by its spelling corrected against the corpus's vocabulary (as
/// `funnel train` builds it); returns how many queries changed.
fn correct_spelling(
    items: &[funnel_core::Item],
    config: &SearchConfig,
    queries: &mut BTreeMap<String, String>,
) -> usize {
    let speller = Speller::new(build_vocabulary(items, config), config.spell, config.stem);
    let mut changed = 0;
    for text in queries.values_mut() {
        let corrected = speller.correct(text);
        if !corrected.corrections.is_empty() {
            *text = corrected.text;
            changed += 1;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One dimension per known word: a toy model in which "flutter" and "oscillation"
    /// mean the same (what BM25 cannot see).
    struct Synonyms;

    impl TextEmbedder for Synonyms {
        fn name(&self) -> String {
            "synonyms".into()
        }

        fn embed(&self, texts: &[&str], _: &mut dyn FnMut(usize)) -> Result<Vec<Vec<f32>>, String> {
            let words = [["flutter", "oscillation"], ["wing", "wing"], ["heat", "thermal"], ["shell", "shells"]];
            Ok(texts
                .iter()
                .map(|text| {
                    let mut v: Vec<f32> = words
                        .iter()
                        .map(|pair| {
                            text.split_whitespace().filter(|w| pair.contains(&w.to_lowercase().as_str())).count() as f32
                        })
                        .collect();
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                    v.iter_mut().for_each(|x| *x /= norm);
                    v
                })
                .collect())
        }
    }

    fn beir(dir: &Path) {
        std::fs::create_dir_all(dir.join("qrels")).unwrap();
        let corpus = [
            r#"{"_id": "d1", "title": "wing oscillation", "text": "oscillation of a wing"}"#,
            r#"{"_id": "d2", "title": "thermal loads", "text": "heat in a thin shell"}"#,
            r#"{"_id": "d3", "title": "shell buckling", "text": "buckling of thin shells"}"#,
        ];
        std::fs::write(dir.join("corpus.jsonl"), corpus.join("\n")).unwrap();
        std::fs::write(dir.join("queries.jsonl"), r#"{"_id": "1", "text": "flutter"}"#).unwrap();
        std::fs::write(dir.join("qrels/test.tsv"), "query-id\tcorpus-id\tscore\n1\td1\t1\n").unwrap();
    }

    #[test]
    fn dense_and_hybrid_modes_find_what_bm25_cannot() {
        let dir = tempfile::tempdir().unwrap();
        beir(dir.path());
        let parse = |m| Mode::parse(m, 60.0, 0.5, "min-max").unwrap();
        let modes = ["bm25", "dense", "hybrid-rrf", "hybrid-weighted"].map(parse).to_vec();
        let options = options(modes);
        let results = evaluate(dir.path(), &options, Some(&Synonyms), None).unwrap();
        let ndcg: Vec<f64> = results.iter().map(|r| r.report.metrics["ndcg@10"]).collect();
        assert_eq!(ndcg, [0.0, 1.0, 1.0, 1.0], "\"flutter\" is in no document; its synonym is in d1");
        assert_eq!(results[2].report.params["rrf_k"], 60.0);
        assert!(evaluate(dir.path(), &options, None, None).unwrap_err().to_string().contains("embedding model"));
    }

    fn options(modes: Vec<Mode>) -> SearchOptions {
        SearchOptions {
            modes,
            depth: 10,
            split: "test".into(),
            qrels: None,
            rerank_depth: 2,
            rerank_weight: 1.0,
            search: SearchConfig::default(),
            spell: false,
        }
    }

    /// A reranker that likes shells: the number of times "shell" occurs.
    struct Shells;

    impl PairScorer for Shells {
        fn name(&self) -> String {
            "shells".into()
        }

        fn score(&self, _query: &str, documents: &[&str]) -> Result<Vec<f32>, String> {
            Ok(documents.iter().map(|d| d.matches("shell").count() as f32).collect())
        }
    }

    #[test]
    fn a_reranker_reorders_the_top_and_is_compared_with_the_mode_alone() {
        let dir = tempfile::tempdir().unwrap();
        beir(dir.path());
        let options = options(vec![Mode::Dense]);
        let results = evaluate(dir.path(), &options, Some(&Synonyms), Some(&Shells)).unwrap();
        let systems: Vec<&str> = results.iter().map(|r| r.report.system.as_str()).collect();
        assert_eq!(systems, ["dense", "dense+rerank"]);
        let order = |r: &SearchResult| r.rankings[0].1.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>();
        // Dense: d1 (the synonym), then d3 and d2 tied at 0 (trec_eval's order: higher docno
        // first). The top two are rescored (d3 has two "shell", d1 none); d2 stays below
        // them although it has one.
        assert_eq!(order(&results[0]), ["d1", "d3", "d2"]);
        assert_eq!(order(&results[1]), ["d3", "d1", "d2"]);
        let rerank = &results[1].report;
        let expected = 1.0 / 3f64.log2();
        assert!((rerank.metrics["ndcg@10"] - expected).abs() < 1e-12);
        assert_eq!(rerank.baseline.as_deref(), Some("dense"));
        assert!((rerank.comparison["ndcg@10"].diff - (expected - 1.0)).abs() < 1e-12);
        assert_eq!(rerank.params["rerank"]["depth"], 2);
    }

    #[test]
    fn a_reranker_weighted_below_one_is_blended_with_the_first_stage() {
        let dir = tempfile::tempdir().unwrap();
        beir(dir.path());
        // Over the top two, dense puts d1 at 1 and d3 at 0 (min-max), the model the reverse:
        // the heavier side wins.
        for (weight, expected) in [(0.4, ["d1", "d3", "d2"]), (0.6, ["d3", "d1", "d2"])] {
            let options = SearchOptions { rerank_weight: weight, ..options(vec![Mode::Dense]) };
            let results = evaluate(dir.path(), &options, Some(&Synonyms), Some(&Shells)).unwrap();
            let order: Vec<&str> = results[1].rankings[0].1.iter().map(|(d, _)| d.as_str()).collect();
            assert_eq!(order, expected, "weight {weight}");
            assert_eq!(results[1].report.params["rerank"]["weight"], f64::from(weight));
        }
    }
}
