//! `funnel eval search`: build Funnel's text index over a BEIR collection's corpus, run
//! its judged queries, and score the rankings with trec_eval's semantics.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use funnel_engine::{SearchConfig, build_text_index};
use funnel_store::import::{Format, read_beir_queries, read_items, read_qrels};
use serde_json::json;

use crate::metrics::{Discount, Gain, Judgments, Metric};
use crate::trec::{Ranking, trec_order};
use crate::{EvalError, Report, Timing, stats};

/// Retrieval modes; dense and hybrid modes arrive with the search work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bm25,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Self, EvalError> {
        match text {
            "bm25" => Ok(Self::Bm25),
            "dense" | "hybrid-rrf" | "hybrid-weighted" => {
                Err(EvalError::Input(format!("--mode {text} is not built yet; available: bm25")))
            }
            other => Err(EvalError::Input(format!("unknown --mode `{other}`; available: bm25"))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SearchOptions {
    pub mode: Mode,
    /// Documents retrieved per query (the run's depth).
    pub depth: usize,
    /// Qrels file name under `qrels/` without `.tsv`.
    pub split: String,
    pub search: SearchConfig,
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

pub fn evaluate(dir: &Path, options: &SearchOptions) -> Result<SearchResult, EvalError> {
    let missing = |name: &str| EvalError::Input(format!("{}: no {name} (expected the BEIR layout)", dir.display()));
    let corpus = dir.join("corpus.jsonl");
    let queries_path = dir.join("queries.jsonl");
    let qrels_path = dir.join("qrels").join(format!("{}.tsv", options.split));
    for (path, name) in [(&corpus, "corpus.jsonl"), (&queries_path, "queries.jsonl"), (&qrels_path, "qrels file")] {
        if !path.exists() {
            return Err(missing(name));
        }
    }
    let items = read_items(&corpus, Format::Beir)?;
    let started = Instant::now();
    let index = build_text_index(&items, &options.search);
    let index_s = started.elapsed().as_secs_f64();

    let queries: BTreeMap<String, String> =
        read_beir_queries(&queries_path)?.into_iter().map(|q| (q.id, q.text)).collect();
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
    let rankings: Vec<(String, Ranking)> = evaluated
        .iter()
        .map(|(query, _)| {
            let hits = index.search(&queries[query], options.depth, &|_| true);
            let mut ranking: Ranking =
                hits.iter().map(|h| (items[h.doc as usize].id.clone(), f64::from(h.score))).collect();
            trec_order(&mut ranking);
            (query.clone(), ranking)
        })
        .collect();
    let eval_s = started.elapsed().as_secs_f64();

    let mut per_query: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for metric in search_metrics(options.depth) {
        let values = evaluated
            .iter()
            .zip(&rankings)
            .map(|((_, judged), (_, ranking))| {
                let ranked: Vec<String> = ranking.iter().map(|(d, _)| d.clone()).collect();
                metric.compute(&ranked, judged, Gain::Exponential, Discount::Log2)
            })
            .collect();
        per_query.insert(metric.to_string(), values);
    }
    let report = Report {
        task: "search",
        dataset: dir.display().to_string(),
        system: "bm25".into(),
        params: json!({ "k1": shortest(options.search.k1), "b": shortest(options.search.b),
                        "title_weight": shortest(options.search.title_weight),
                        "stem": options.search.stem, "stop_words": options.search.stop_words, "depth": options.depth,
                        "documents": items.len(), "split": options.split }),
        metrics: per_query.iter().map(|(m, v)| (m.clone(), stats::mean(v))).collect(),
        n_evaluated: evaluated.len(),
        n_skipped: n_judged - evaluated.len(),
        timing: Timing { fit_s: 0.0, index_s, eval_s, qps: evaluated.len() as f64 / eval_s.max(1e-9) },
        baseline: None,
        comparison: BTreeMap::new(),
    };
    Ok(SearchResult { report, per_query, rankings })
}
