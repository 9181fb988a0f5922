//! `funnel eval recs`: fit each model on training interactions and rank, for every test
//! user, all catalog items not in that user's training data.

use std::collections::BTreeMap;
use std::time::Instant;

use funnel_core::Event;
use funnel_models::{Interactions, Recommender};
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde_json::json;

use crate::metrics::{Discount, Gain, Judgments, Metric};
use crate::trec::Ranking;
use crate::{EvalError, Report, Timing, beyond, stats};

#[derive(Debug, Clone)]
pub struct RecsOptions {
    pub models: Vec<String>,
    /// Cut-offs; metrics are reported at each.
    pub ks: Vec<usize>,
    /// Test rows with a value below this are not relevant; `None`: every row is.
    pub min_relevance: Option<f64>,
    /// A model to compare every other model with (it is evaluated too).
    pub baseline: Option<String>,
    pub seed: u64,
    pub dataset: String,
}

/// Everything one model's evaluation produced.
#[derive(Debug, Clone)]
pub struct ModelResult {
    pub report: Report,
    /// Per metric, the value of each evaluated user (in the same user order for all models).
    pub per_user: BTreeMap<String, Vec<f64>>,
    /// Each evaluated user's top list, for a TREC run file.
    pub rankings: Vec<(String, Ranking)>,
}

/// Users and items interned in order of first appearance (train, then test).
#[derive(Default)]
struct Index {
    users: FxHashMap<String, u32>,
    user_ids: Vec<String>,
    items: FxHashMap<String, u32>,
    item_ids: Vec<String>,
}

impl Index {
    fn intern(map: &mut FxHashMap<String, u32>, ids: &mut Vec<String>, id: &str) -> u32 {
        if let Some(&i) = map.get(id) {
            return i;
        }
        let i = ids.len() as u32;
        map.insert(id.to_owned(), i);
        ids.push(id.to_owned());
        i
    }

    fn user(&mut self, id: &str) -> u32 {
        Self::intern(&mut self.users, &mut self.user_ids, id)
    }

    fn item(&mut self, id: &str) -> u32 {
        Self::intern(&mut self.items, &mut self.item_ids, id)
    }
}

/// The metrics reported at each cut-off.
fn metrics_for(ks: &[usize]) -> Vec<Metric> {
    let mut metrics = Vec::new();
    for &k in ks {
        metrics.extend([Metric::Ndcg(k), Metric::MapAt(k), Metric::Recall(k), Metric::Precision(k), Metric::Hit(k)]);
    }
    metrics.push(Metric::MrrAt(ks.iter().copied().max().unwrap_or(10)));
    metrics
}

/// Evaluates every model (and the baseline) on the same split.
pub fn evaluate(
    train: &[Event],
    test: &[Event],
    categories: &FxHashMap<String, Vec<String>>,
    options: &RecsOptions,
) -> Result<Vec<ModelResult>, EvalError> {
    if options.ks.is_empty() || options.ks.contains(&0) {
        return Err(EvalError::Input("--k needs positive cut-offs, e.g. --k 10,20".into()));
    }
    let mut index = Index::default();
    let triples: Vec<(u32, u32, f32)> =
        train.iter().map(|e| (index.user(&e.user), index.item(&e.item), e.value.unwrap_or(1.0) as f32)).collect();
    let mut relevant: BTreeMap<u32, Vec<(u32, f64)>> = BTreeMap::new();
    let mut test_users = std::collections::BTreeSet::new();
    for event in test {
        let (user, item) = (index.user(&event.user), index.item(&event.item));
        test_users.insert(user);
        let value = event.value.unwrap_or(1.0);
        if options.min_relevance.is_none_or(|min| value >= min) {
            relevant.entry(user).or_default().push((item, 1.0));
        }
    }
    let (n_users, n_items) = (index.user_ids.len() as u32, index.item_ids.len() as u32);
    let data = Interactions::from_triples(n_users, n_items, triples);
    let evaluated: Vec<(u32, Judgments<u32>)> =
        relevant.into_iter().map(|(user, items)| (user, Judgments::new(items))).collect();
    let n_skipped = test_users.len() - evaluated.len();
    let context = Context { data: &data, index: &index, evaluated: &evaluated, n_skipped, categories, options };

    let mut names = options.models.clone();
    if let Some(baseline) = &options.baseline
        && !names.contains(baseline)
    {
        names.insert(0, baseline.clone());
    }
    let mut results: Vec<ModelResult> = Vec::with_capacity(names.len());
    for name in &names {
        results.push(context.evaluate_model(funnel_models::by_name(name)?)?);
    }
    if let Some(baseline) = &options.baseline {
        compare_with_baseline(&mut results, baseline, options.seed);
    }
    Ok(results)
}

struct Context<'a> {
    data: &'a Interactions,
    index: &'a Index,
    evaluated: &'a [(u32, Judgments<u32>)],
    n_skipped: usize,
    categories: &'a FxHashMap<String, Vec<String>>,
    options: &'a RecsOptions,
}

impl Context<'_> {
    fn evaluate_model(&self, mut model: Box<dyn Recommender>) -> Result<ModelResult, EvalError> {
        let started = Instant::now();
        model.fit(self.data, self.options.seed)?;
        let fit_s = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let max_k = self.options.ks.iter().copied().max().expect("checked non-empty");
        let tops: Vec<Vec<(u32, f32)>> =
            self.evaluated.par_iter().map(|(user, _)| top_unseen(model.as_ref(), self.data, *user, max_k)).collect();
        let metrics = metrics_for(&self.options.ks);
        let mut per_user: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for metric in &metrics {
            let values = self
                .evaluated
                .iter()
                .zip(&tops)
                .map(|((_, judged), top)| {
                    let ranked: Vec<u32> = top.iter().map(|&(item, _)| item).collect();
                    metric.compute(&ranked, judged, Gain::Exponential, Discount::Log2)
                })
                .collect();
            per_user.insert(metric.to_string(), values);
        }
        let eval_s = started.elapsed().as_secs_f64();

        let mut averages: BTreeMap<String, f64> = per_user.iter().map(|(m, v)| (m.clone(), stats::mean(v))).collect();
        self.beyond_accuracy(&tops, &mut averages);
        let report = Report {
            task: "recs",
            dataset: self.options.dataset.clone(),
            system: model.name().to_owned(),
            params: json!({ "ks": self.options.ks, "min_relevance": self.options.min_relevance, "seed": self.options.seed,
                            "users": self.data.n_users(), "items": self.data.n_items(), "train_interactions": self.data.nnz() }),
            metrics: averages,
            n_evaluated: self.evaluated.len(),
            n_skipped: self.n_skipped,
            timing: Timing { fit_s, index_s: 0.0, eval_s, qps: self.evaluated.len() as f64 / eval_s.max(1e-9) },
            baseline: None,
            comparison: BTreeMap::new(),
        };
        let rankings = self
            .evaluated
            .iter()
            .zip(&tops)
            .map(|((user, _), top)| {
                let ranking = top.iter().map(|&(item, s)| (self.index.item_ids[item as usize].clone(), f64::from(s)));
                (self.index.user_ids[*user as usize].clone(), ranking.collect())
            })
            .collect();
        Ok(ModelResult { report, per_user, rankings })
    }

    fn beyond_accuracy(&self, tops: &[Vec<(u32, f32)>], metrics: &mut BTreeMap<String, f64>) {
        let n_items = self.data.n_items() as usize;
        let mut item_users = vec![0u32; n_items];
        for user in 0..self.data.n_users() {
            for &item in self.data.items_of(user) {
                item_users[item as usize] += 1;
            }
        }
        let categories = self.category_ids();
        for &k in &self.options.ks {
            let lists: Vec<Vec<u32>> = tops.iter().map(|t| t.iter().take(k).map(|&(i, _)| i).collect()).collect();
            metrics.insert(format!("coverage@{k}"), beyond::coverage(&lists, n_items));
            metrics.insert(format!("novelty@{k}"), beyond::novelty(&lists, &item_users, self.data.n_users() as usize));
            metrics.insert(format!("gini@{k}"), beyond::exposure_gini(&lists, n_items));
            if let Some(categories) = &categories {
                metrics.insert(format!("ild_category@{k}"), beyond::intra_list_diversity(&lists, categories));
            }
        }
    }

    /// Category ids per interned item, when an items file gave any.
    fn category_ids(&self) -> Option<Vec<Vec<u32>>> {
        if self.categories.is_empty() {
            return None;
        }
        let mut names: FxHashMap<&str, u32> = FxHashMap::default();
        let ids = self
            .index
            .item_ids
            .iter()
            .map(|item| {
                let mut ids: Vec<u32> = self
                    .categories
                    .get(item)
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let next = names.len() as u32;
                        *names.entry(c.as_str()).or_insert(next)
                    })
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                ids
            })
            .collect();
        Some(ids)
    }
}

/// The model's best `k` items for `user` among those not in the user's training data;
/// ties go to the lower item index.
fn top_unseen(model: &dyn Recommender, data: &Interactions, user: u32, k: usize) -> Vec<(u32, f32)> {
    let mut scores = vec![0f32; data.n_items() as usize];
    model.score(user, data, &mut scores);
    let seen = data.items_of(user);
    let mut candidates: Vec<(u32, f32)> = (0..data.n_items())
        .filter(|item| seen.binary_search(item).is_err())
        .map(|item| (item, scores[item as usize]))
        .collect();
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if candidates.len() > k {
        candidates.select_nth_unstable_by(k - 1, order);
        candidates.truncate(k);
    }
    candidates.sort_unstable_by(order);
    candidates
}

fn compare_with_baseline(results: &mut [ModelResult], baseline: &str, seed: u64) {
    let Some(base) = results.iter().position(|r| r.report.system == baseline) else { return };
    let base_values = results[base].per_user.clone();
    for (i, result) in results.iter_mut().enumerate() {
        if i == base {
            continue;
        }
        result.report.baseline = Some(baseline.to_owned());
        for (metric, values) in &result.per_user {
            let comparison = stats::compare(values, &base_values[metric], seed);
            result.report.comparison.insert(metric.clone(), comparison);
        }
    }
}

#[cfg(test)]
mod tests {
    use funnel_core::{EventContext, EventKind};

    use super::*;

    fn rating(user: &str, item: &str, value: f64) -> Event {
        Event {
            user: user.into(),
            item: item.into(),
            kind: EventKind::Rating,
            value: Some(value),
            timestamp: 0,
            context: EventContext::default(),
        }
    }

    fn options(models: &[&str]) -> RecsOptions {
        RecsOptions {
            models: models.iter().map(|m| m.to_string()).collect(),
            ks: vec![2],
            min_relevance: Some(4.0),
            baseline: None,
            seed: 1,
            dataset: "toy".into(),
        }
    }

    #[test]
    fn popularity_on_a_toy_split_gives_hand_computed_metrics() {
        // Popularity: a (3 users) > b (2) > c (1) > d (0).
        let train = vec![
            rating("u1", "a", 5.0),
            rating("u2", "a", 5.0),
            rating("u3", "a", 5.0),
            rating("u2", "b", 3.0),
            rating("u3", "b", 3.0),
            rating("u3", "c", 1.0),
            rating("u1", "d", 1.0),
        ];
        // u1 has seen a and d: ranks b, c. Relevant: c. u2 (seen a, b) ranks c, d; relevant: d (5) but not c (2).
        // u3 has only a low rating: skipped.
        let test = vec![rating("u1", "c", 4.0), rating("u2", "c", 2.0), rating("u2", "d", 5.0), rating("u3", "d", 1.0)];
        let results = evaluate(&train, &test, &FxHashMap::default(), &options(&["pop"])).unwrap();
        let report = &results[0].report;
        assert_eq!((report.n_evaluated, report.n_skipped), (2, 1));
        assert_eq!(report.metrics["p@2"], 0.5);
        assert_eq!(report.metrics["recall@2"], 1.0);
        assert_eq!(report.metrics["mrr@2"], 0.5);
        let ndcg_at_rank_2 = 1.0 / 3f64.log2();
        assert!((report.metrics["ndcg@2"] - ndcg_at_rank_2).abs() < 1e-12);
        assert_eq!(results[0].rankings[0], ("u1".to_owned(), vec![("b".to_owned(), 2.0), ("c".to_owned(), 1.0)]));
    }

    #[test]
    fn a_baseline_comparison_pairs_the_same_users() {
        let train: Vec<Event> = (0..30)
            .map(|u| rating(&format!("u{u}"), "hit", 5.0))
            .chain((0..30).map(|u| rating(&format!("u{u}"), &format!("own{u}"), 5.0)))
            .collect();
        let test: Vec<Event> =
            (0..30).map(|u| rating(&format!("u{u}"), &format!("own{}", (u + 1) % 30), 5.0)).collect();
        let mut opts = options(&["random"]);
        opts.baseline = Some("pop".into());
        let results = evaluate(&train, &test, &FxHashMap::default(), &opts).unwrap();
        assert_eq!(results.iter().map(|r| r.report.system.as_str()).collect::<Vec<_>>(), ["pop", "random"]);
        let c = &results[1].report.comparison["ndcg@2"];
        assert_eq!(c.n, 30);
        assert!(c.ci95[0] <= c.diff && c.diff <= c.ci95[1]);
    }

    #[test]
    fn unknown_models_and_bad_cutoffs_are_input_errors() {
        assert!(
            evaluate(&[], &[], &FxHashMap::default(), &options(&["magic"])).unwrap_err().to_string().contains("pop")
        );
        let mut opts = options(&["pop"]);
        opts.ks = vec![0];
        assert!(matches!(evaluate(&[], &[], &FxHashMap::default(), &opts), Err(EvalError::Input(_))));
    }
}
