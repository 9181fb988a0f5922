//! `funnel eval engine`: the whole serving pipeline (sources, merge, ranker, rules) of a
//! trained snapshot, scored on held-out events as `eval recs` scores a single model.

use std::collections::BTreeMap;
use std::time::Instant;

use funnel_core::Event;
use funnel_engine::{Engine, Request};
use serde_json::json;

use crate::metrics::{Discount, Gain, Judgments, Metric};
use crate::trec::Ranking;
use crate::{EvalError, Report, Timing, stats};

#[derive(Debug, Clone)]
pub struct EngineEvalOptions {
    pub surface: String,
    pub ks: Vec<usize>,
    pub min_relevance: Option<f64>,
    pub dataset: String,
}

/// Serves every test user with a relevant item and scores the slates.
pub fn evaluate(
    engine: &Engine,
    test: &[Event],
    options: &EngineEvalOptions,
) -> Result<(Report, Vec<(String, Ranking)>), EvalError> {
    let max_k = options
        .ks
        .iter()
        .copied()
        .max()
        .filter(|&k| k > 0)
        .ok_or_else(|| EvalError::Input("--k needs positive cut-offs".into()))?;
    let mut relevant: BTreeMap<&str, Vec<(String, f64)>> = BTreeMap::new();
    let mut users = std::collections::BTreeSet::new();
    for event in test {
        users.insert(event.user.as_str());
        if options.min_relevance.is_none_or(|min| event.value.unwrap_or(1.0) >= min) {
            relevant.entry(&event.user).or_default().push((event.item.clone(), 1.0));
        }
    }
    let started = Instant::now();
    let mut rankings = Vec::with_capacity(relevant.len());
    for user in relevant.keys() {
        let request = Request {
            surface: options.surface.clone(),
            user: Some((*user).to_owned()),
            k: max_k,
            ..Request::default()
        };
        let response = engine.run(&request).map_err(|e| EvalError::Input(e.to_string()))?;
        rankings.push((
            (*user).to_owned(),
            response.items.into_iter().map(|i| (i.id, f64::from(i.score))).collect::<Ranking>(),
        ));
    }
    let eval_s = started.elapsed().as_secs_f64();
    let mut metrics = BTreeMap::new();
    let mut all = Vec::new();
    for &k in &options.ks {
        all.extend([Metric::Ndcg(k), Metric::MapAt(k), Metric::Recall(k), Metric::Precision(k), Metric::Hit(k)]);
    }
    for metric in all {
        let values: Vec<f64> = relevant
            .values()
            .zip(&rankings)
            .map(|(grades, (_, ranking))| {
                let ranked: Vec<String> = ranking.iter().map(|(id, _)| id.clone()).collect();
                metric.compute(&ranked, &Judgments::new(grades.clone()), Gain::Exponential, Discount::Log2)
            })
            .collect();
        metrics.insert(metric.to_string(), stats::mean(&values));
    }
    let report = Report {
        task: "recs",
        dataset: options.dataset.clone(),
        system: format!("engine:{}", options.surface),
        params: json!({ "snapshot": engine.snapshot().manifest.id, "cf_model": engine.snapshot().manifest.cf_model,
                        "ks": options.ks, "min_relevance": options.min_relevance }),
        metrics,
        n_evaluated: relevant.len(),
        n_skipped: users.len() - relevant.len(),
        timing: Timing { fit_s: 0.0, index_s: 0.0, eval_s, qps: relevant.len() as f64 / eval_s.max(1e-9) },
        baseline: None,
        comparison: BTreeMap::new(),
    };
    Ok((report, rankings))
}
