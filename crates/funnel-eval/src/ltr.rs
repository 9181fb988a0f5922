//! `funnel eval ltr`: learning-to-rank files in SVMlight/LETOR form
//! (`label qid:Q f:v … # comment`, or without `qid` and a `FILE.query` of group sizes
//! beside it), and the ranking baseline that a learned ranker must beat: the single
//! feature whose ordering has the best NDCG@10 on the training queries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use crate::metrics::{Discount, Gain, Judgments, Metric};
use crate::{EvalError, Report, Timing, stats};

/// One query's documents: labels and dense feature rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub query: String,
    pub labels: Vec<f64>,
    pub features: Vec<Vec<f32>>,
    /// Row weights, from `FILE.weight` when it exists (one number per row, LightGBM's
    /// convention): e.g. inverse examination propensities of clicked rows.
    pub weights: Option<Vec<f64>>,
}

/// One parsed line: its qid (if given), label and sparse (0-based index, value) features.
type Row = (Option<String>, f64, Vec<(usize, f32)>);

/// Reads an SVMlight/LETOR file into query groups. Feature indices are 1-based in the
/// file and stored 0-based; missing features are 0.
pub fn read_svmlight(path: &Path) -> Result<Vec<Group>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io { path: path.to_owned(), source })?;
    let mut rows: Vec<Row> = Vec::new();
    let mut width = 0;
    for (number, line) in text.lines().enumerate() {
        let bad = |reason: String| EvalError::BadLine { path: path.to_owned(), line: number as u64 + 1, reason };
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut tokens = line.split_whitespace();
        let label: f64 =
            tokens.next().and_then(|t| t.parse().ok()).ok_or_else(|| bad("the label is not a number".into()))?;
        let mut query = None;
        let mut features = Vec::new();
        for token in tokens {
            let (key, value) = token.split_once(':').ok_or_else(|| bad(format!("`{token}` is not key:value")))?;
            if key == "qid" {
                query = Some(value.to_owned());
                continue;
            }
            let index: usize = key
                .parse()
                .ok()
                .filter(|&i| (1..=funnel_gbdt::MAX_FEATURES).contains(&i))
                .ok_or_else(|| bad(format!("feature index `{key}` (1 to {})", funnel_gbdt::MAX_FEATURES)))?;
            let value: f32 = value
                .parse()
                .ok()
                .filter(|v: &f32| !v.is_infinite())
                .ok_or_else(|| bad(format!("feature value `{value}`")))?;
            width = width.max(index);
            features.push((index - 1, value));
        }
        rows.push((query, label, features));
    }
    let sizes = group_sizes(path, &rows)?;
    let rows_total = rows.len();
    let mut groups = Vec::with_capacity(sizes.len());
    let mut rows = rows.into_iter();
    for (g, size) in sizes.into_iter().enumerate() {
        let mut group = Group { query: g.to_string(), labels: Vec::new(), features: Vec::new(), weights: None };
        for (query, label, sparse) in rows.by_ref().take(size) {
            if let Some(query) = query {
                group.query = query;
            }
            let mut dense = vec![0f32; width];
            for (i, v) in sparse {
                dense[i] = v;
            }
            group.labels.push(label);
            group.features.push(dense);
        }
        groups.push(group);
    }
    if let Some(weights) = read_weights(path, rows_total)? {
        let mut weights = weights.into_iter();
        for group in &mut groups {
            group.weights = Some(weights.by_ref().take(group.labels.len()).collect());
        }
    }
    Ok(groups)
}

/// `FILE.weight`, if it exists: one finite weight >= 0 per row of FILE.
fn read_weights(path: &Path, rows: usize) -> Result<Option<Vec<f64>>, EvalError> {
    let mut weight_file = PathBuf::from(path);
    weight_file.as_mut_os_string().push(".weight");
    let text = match std::fs::read_to_string(&weight_file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(EvalError::Io { path: weight_file, source }),
    };
    let mut weights = Vec::with_capacity(rows);
    for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let weight: f64 = line.trim().parse().ok().filter(|w: &f64| w.is_finite() && *w >= 0.0).ok_or_else(|| {
            EvalError::BadLine {
                path: weight_file.clone(),
                line: number as u64 + 1,
                reason: format!("weight `{}` is not a finite number >= 0", line.trim()),
            }
        })?;
        weights.push(weight);
    }
    if weights.len() != rows {
        return Err(EvalError::Input(format!(
            "{}: {} weights but {} has {rows} rows",
            weight_file.display(),
            weights.len(),
            path.display()
        )));
    }
    Ok(Some(weights))
}

/// Group sizes from `qid:` runs, or from `FILE.query` when the rows carry no qid.
fn group_sizes(path: &Path, rows: &[Row]) -> Result<Vec<usize>, EvalError> {
    if rows.iter().all(|(q, ..)| q.is_some()) {
        let mut sizes: Vec<usize> = Vec::new();
        let mut last: Option<&str> = None;
        for (query, ..) in rows {
            if last == query.as_deref() {
                *sizes.last_mut().expect("a group is open") += 1;
            } else {
                sizes.push(1);
                last = query.as_deref();
            }
        }
        return Ok(sizes);
    }
    let mut query_file = PathBuf::from(path);
    query_file.as_mut_os_string().push(".query");
    let text = std::fs::read_to_string(&query_file).map_err(|_| {
        EvalError::Input(format!(
            "{}: rows have no qid and there is no {} with group sizes",
            path.display(),
            query_file.display()
        ))
    })?;
    let sizes: Vec<usize> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse()
                .map_err(|_| EvalError::Input(format!("{}: `{l}` is not a group size", query_file.display())))
        })
        .collect::<Result<_, _>>()?;
    if sizes.iter().sum::<usize>() != rows.len() {
        return Err(EvalError::Input(format!(
            "{}: group sizes add up to {} but {} has {} rows",
            query_file.display(),
            sizes.iter().sum::<usize>(),
            path.display(),
            rows.len()
        )));
    }
    Ok(sizes)
}

fn ltr_metrics() -> Vec<Metric> {
    vec![Metric::Ndcg(1), Metric::Ndcg(3), Metric::Ndcg(5), Metric::Ndcg(10), Metric::Map]
}

/// One ranker's result on the test queries.
#[derive(Debug, Clone)]
pub struct LtrResult {
    pub report: Report,
    /// Per metric, one value per evaluated test query (those with a relevant document).
    pub per_query: BTreeMap<String, Vec<f64>>,
    /// The score of every test row, per query group.
    pub scores: Vec<Vec<f64>>,
}

impl LtrResult {
    /// Adds the paired comparison of this result against `baseline` on the same queries.
    pub fn compare_with(&mut self, baseline: &LtrResult) {
        self.report.baseline = Some(baseline.report.system.clone());
        self.report.comparison = self
            .per_query
            .iter()
            .filter_map(|(m, v)| Some((m.clone(), stats::compare(v, baseline.per_query.get(m)?, COMPARISON_SEED))))
            .collect();
    }
}

/// Seed of the bootstrap intervals in comparisons.
const COMPARISON_SEED: u64 = 7;

/// Documents of a group ranked by their scores (descending, ties by position in the file).
fn ranked_by_scores(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

fn judgments(group: &Group) -> Judgments<usize> {
    Judgments::new(group.labels.iter().copied().enumerate())
}

fn feature_scores(group: &Group, feature: usize) -> Vec<f64> {
    group.features.iter().map(|row| f64::from(row.get(feature).copied().unwrap_or(0.0))).collect()
}

fn mean_ndcg10(groups: &[Group], feature: usize) -> f64 {
    let values: Vec<f64> = groups
        .iter()
        .map(|g| {
            let ranked = ranked_by_scores(&feature_scores(g, feature));
            Metric::Ndcg(10).compute(&ranked, &judgments(g), Gain::Exponential, Discount::Log2)
        })
        .collect();
    stats::mean(&values)
}

fn width(groups: &[Group]) -> usize {
    groups.iter().flat_map(|g| g.features.iter().map(Vec::len)).max().unwrap_or(0)
}

/// Scores the test groups and computes the metrics: the parts of a result every ranker shares.
fn score_test(
    test: &[Group],
    system: &str,
    dataset: &str,
    params: serde_json::Value,
    fit_s: f64,
    score: impl Fn(&Group) -> Vec<f64>,
) -> LtrResult {
    let started = Instant::now();
    let scores: Vec<Vec<f64>> = test.iter().map(&score).collect();
    let mut per_query: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut evaluated = 0;
    for (group, scores) in test.iter().zip(&scores) {
        if !group.labels.iter().any(|&l| l > 0.0) {
            continue;
        }
        evaluated += 1;
        let ranked = ranked_by_scores(scores);
        for metric in ltr_metrics() {
            let value = metric.compute(&ranked, &judgments(group), Gain::Exponential, Discount::Log2);
            per_query.entry(metric.to_string()).or_default().push(value);
        }
    }
    let eval_s = started.elapsed().as_secs_f64();
    let report = Report {
        task: "ltr",
        dataset: dataset.to_owned(),
        system: system.to_owned(),
        params,
        metrics: per_query.iter().map(|(m, v)| (m.clone(), stats::mean(v))).collect(),
        n_evaluated: evaluated,
        n_skipped: test.len() - evaluated,
        timing: Timing { fit_s, index_s: 0.0, eval_s, qps: evaluated as f64 / eval_s.max(1e-9) },
        baseline: None,
        comparison: BTreeMap::new(),
    };
    LtrResult { report, per_query, scores }
}

/// Picks the best single feature on `train` and reports its metrics on `test`.
pub fn evaluate_best_feature(train: &[Group], test: &[Group], dataset: &str) -> Result<LtrResult, EvalError> {
    let width = width(train).max(width(test));
    if width == 0 {
        return Err(EvalError::Input("the training file has no features".into()));
    }
    let started = Instant::now();
    let (best, train_ndcg) = (0..width)
        .map(|f| (f, mean_ndcg10(train, f)))
        .fold((0, f64::MIN), |best, (f, v)| if v > best.1 { (f, v) } else { best });
    let fit_s = started.elapsed().as_secs_f64();
    let params = json!({ "feature": best + 1, "train_ndcg@10": train_ndcg, "features": width,
                         "train_queries": train.len(), "test_queries": test.len() });
    Ok(score_test(test, "best-feature", dataset, params, fit_s, |g| feature_scores(g, best)))
}

/// Scores the test queries with a trained model (ours or LightGBM's, see
/// `funnel_gbdt::Model::load`).
pub fn evaluate_model(model: &funnel_gbdt::Model, name: &str, test: &[Group], dataset: &str) -> LtrResult {
    let params = json!({ "objective": model.objective.name(), "trees": model.trees.len(), "features": model.width });
    score_test(test, name, dataset, params, 0.0, |g| g.features.iter().map(|row| model.predict(row)).collect())
}

/// Query groups as one row-major GBDT data set, every row padded to `width` features.
pub fn to_dataset(groups: &[Group], width: usize) -> Result<funnel_gbdt::Dataset, EvalError> {
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for group in groups {
        for (row, &label) in group.features.iter().zip(&group.labels) {
            features.extend_from_slice(row);
            features.resize(features.len() + width - row.len(), 0.0);
            labels.push(label);
        }
    }
    let sizes = groups.iter().map(|g| g.labels.len()).collect();
    let data =
        funnel_gbdt::Dataset::new(features, width, labels, sizes).map_err(|e| EvalError::Input(e.to_string()))?;
    if groups.iter().all(|g| g.weights.is_none()) {
        return Ok(data);
    }
    let weights = groups.iter().flat_map(|g| g.weights.clone().unwrap_or_else(|| vec![1.0; g.labels.len()])).collect();
    data.with_weights(weights).map_err(|e| EvalError::Input(e.to_string()))
}

/// Trains gradient-boosted trees on `train` (early stopping on `valid`, if given) and
/// reports their metrics on `test`. `progress` hears each tree's number and validation
/// metric.
pub fn evaluate_gbdt(
    train: &[Group],
    valid: Option<&[Group]>,
    test: &[Group],
    params: &funnel_gbdt::Params,
    dataset: &str,
    progress: &mut (dyn FnMut(usize, Option<f64>) + Send),
) -> Result<(LtrResult, funnel_gbdt::Model), EvalError> {
    let width = width(train).max(width(test)).max(valid.map_or(0, width));
    if width == 0 {
        return Err(EvalError::Input("the training file has no features".into()));
    }
    let train_set = to_dataset(train, width)?;
    let valid_set = valid.map(|v| to_dataset(v, width)).transpose()?;
    let started = Instant::now();
    let (model, fitted) =
        funnel_gbdt::train(&train_set, valid_set.as_ref(), params, progress).map_err(|e| match e {
            funnel_gbdt::GbdtError::Input(message) => EvalError::Input(message),
            other => EvalError::Input(other.to_string()),
        })?;
    let fit_s = started.elapsed().as_secs_f64();
    let top: Vec<_> = model
        .importance()
        .iter()
        .take(10)
        .map(|i| json!({ "feature": i.feature + 1, "splits": i.splits, "gain": i.gain }))
        .collect();
    let report_params = json!({
        "objective": params.objective.name(), "trees": params.trees, "trees_kept": fitted.trees_kept,
        "leaves": params.leaves, "learning_rate": params.learning_rate,
        "min_data_in_leaf": params.min_data_in_leaf, "min_sum_hessian": params.min_sum_hessian,
        "max_bin": params.max_bin, "truncation": params.truncation, "early_stopping": params.early_stopping,
        "stopped": fitted.stopped, "normalize": params.normalize, "weighted": train_set.weights.is_some(),
        "features": width, "train_queries": train.len(), "test_queries": test.len(),
        "importance_top10": top,
    });
    let result = score_test(test, "gbdt", dataset, report_params, fit_s, |g| {
        g.features.iter().map(|row| model.predict(row)).collect()
    });
    Ok((result, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_qid_rows_and_query_files_and_picks_the_informative_feature() {
        let dir = tempfile::tempdir().unwrap();
        let with_qid = dir.path().join("a.txt");
        std::fs::write(
            &with_qid,
            "2 qid:1 1:0.1 2:0.9 # doc a\n0 qid:1 1:0.8 2:0.1\n1 qid:2 2:0.7\n0 qid:2 1:0.3 2:0.2\n",
        )
        .unwrap();
        let groups = read_svmlight(&with_qid).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].features[0], [0.1, 0.9]);
        assert_eq!(groups[1].labels, [1.0, 0.0]);

        let plain = dir.path().join("b.train");
        std::fs::write(&plain, "2 1:0.1 2:0.9\n0 1:0.8 2:0.1\n1 2:0.7\n0 1:0.3 2:0.2\n").unwrap();
        std::fs::write(dir.path().join("b.train.query"), "2\n2\n").unwrap();
        let by_file = read_svmlight(&plain).unwrap();
        assert_eq!(by_file.iter().map(|g| g.labels.clone()).collect::<Vec<_>>(), [vec![2.0, 0.0], vec![1.0, 0.0]]);
        assert!(by_file[0].weights.is_none());
        std::fs::write(dir.path().join("b.train.weight"), "1\n2.5\n1\n4\n").unwrap();
        let weighted = read_svmlight(&plain).unwrap();
        assert_eq!(
            (weighted[0].weights.clone(), weighted[1].weights.clone()),
            (Some(vec![1.0, 2.5]), Some(vec![1.0, 4.0]))
        );
        assert_eq!(to_dataset(&weighted, 2).unwrap().weights, Some(vec![1.0, 2.5, 1.0, 4.0]));
        std::fs::write(dir.path().join("b.train.weight"), "1\n-2\n1\n4\n").unwrap();
        assert!(read_svmlight(&plain).unwrap_err().to_string().contains("b.train.weight:2"));

        let report = evaluate_best_feature(&groups, &groups, "toy").unwrap().report;
        assert_eq!(report.params["feature"], 2);
        assert_eq!(report.metrics["ndcg@10"], 1.0);
    }

    #[test]
    fn mismatched_group_sizes_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("c.train");
        std::fs::write(&plain, "1 1:0.5\n0 1:0.1\n").unwrap();
        std::fs::write(dir.path().join("c.train.query"), "3\n").unwrap();
        assert!(read_svmlight(&plain).unwrap_err().to_string().contains("add up to 3"));
        std::fs::write(&plain, "x 1:0.5\n").unwrap();
        assert!(read_svmlight(&plain).unwrap_err().to_string().contains("c.train:1"));
    }
}
