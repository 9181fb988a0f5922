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

/// One surface's evaluation: the report, each user's value per metric (users in id
/// order, the same for every surface), and the slates for a TREC run file.
pub struct SurfaceResult {
    pub report: Report,
    pub per_user: BTreeMap<String, Vec<f64>>,
    pub rankings: Vec<(String, Ranking)>,
}

/// Evaluates each surface on the same users; with a `baseline` surface, every other one
/// is compared with it, paired by user (mean difference, bootstrap CI, t-test).
pub fn evaluate_surfaces(
    engine: &Engine,
    test: &[Event],
    surfaces: &[String],
    baseline: Option<&str>,
    options: &EngineEvalOptions,
) -> Result<Vec<SurfaceResult>, EvalError> {
    let mut names: Vec<&str> = surfaces.iter().map(String::as_str).collect();
    if let Some(baseline) = baseline.filter(|b| !names.contains(b)) {
        names.insert(0, baseline);
    }
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        results.push(evaluate(engine, test, &EngineEvalOptions { surface: name.to_owned(), ..options.clone() })?);
    }
    if let Some(baseline) = baseline {
        let base = results.iter().position(|r| r.report.system == format!("engine:{baseline}")).expect("evaluated");
        let base_values = results[base].per_user.clone();
        for (_, result) in results.iter_mut().enumerate().filter(|(i, _)| *i != base) {
            result.report.baseline = Some(format!("engine:{baseline}"));
            for (metric, values) in &result.per_user {
                // One seed: a surface's interval does not depend on the order asked for.
                let comparison = stats::compare(values, &base_values[metric], 7);
                result.report.comparison.insert(metric.clone(), comparison);
            }
        }
    }
    Ok(results)
}

/// Serves every test user with a relevant item and scores the slates.
pub fn evaluate(engine: &Engine, test: &[Event], options: &EngineEvalOptions) -> Result<SurfaceResult, EvalError> {
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
    let mut per_user = BTreeMap::new();
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
        per_user.insert(metric.to_string(), values);
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
    Ok(SurfaceResult { report, per_user, rankings })
}
