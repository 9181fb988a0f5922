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
            let index: usize =
                key.parse().ok().filter(|&i| i >= 1).ok_or_else(|| bad(format!("feature index `{key}`")))?;
            let value: f32 = value.parse().map_err(|_| bad(format!("feature value `{value}`")))?;
            width = width.max(index);
            features.push((index - 1, value));
        }
        rows.push((query, label, features));
    }
    let sizes = group_sizes(path, &rows)?;
    let mut groups = Vec::with_capacity(sizes.len());
    let mut rows = rows.into_iter();
    for (g, size) in sizes.into_iter().enumerate() {
        let mut group = Group { query: g.to_string(), labels: Vec::new(), features: Vec::new() };
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
    Ok(groups)
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

/// Documents of a group ranked by `score` (descending, ties by position in the file).
fn ranked_by(group: &Group, score: impl Fn(&[f32]) -> f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..group.labels.len()).collect();
    order.sort_by(|&a, &b| score(&group.features[b]).total_cmp(&score(&group.features[a])).then(a.cmp(&b)));
    order
}

fn judgments(group: &Group) -> Judgments<usize> {
    Judgments::new(group.labels.iter().copied().enumerate())
}

fn mean_ndcg10(groups: &[Group], feature: usize) -> f64 {
    let values: Vec<f64> = groups
        .iter()
        .map(|g| {
            let ranked = ranked_by(g, |row| row.get(feature).copied().unwrap_or(0.0));
            Metric::Ndcg(10).compute(&ranked, &judgments(g), Gain::Exponential, Discount::Log2)
        })
        .collect();
    stats::mean(&values)
}

/// Picks the best single feature on `train` and reports its metrics on `test`.
pub fn evaluate_best_feature(train: &[Group], test: &[Group], dataset: &str) -> Result<Report, EvalError> {
    let width = train.iter().chain(test).flat_map(|g| g.features.first()).map(Vec::len).max().unwrap_or(0);
    if width == 0 {
        return Err(EvalError::Input("the training file has no features".into()));
    }
    let started = Instant::now();
    let (best, train_ndcg) = (0..width)
        .map(|f| (f, mean_ndcg10(train, f)))
        .fold((0, f64::MIN), |best, (f, v)| if v > best.1 { (f, v) } else { best });
    let fit_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let evaluated: Vec<&Group> = test.iter().filter(|g| g.labels.iter().any(|&l| l > 0.0)).collect();
    let mut metrics = BTreeMap::new();
    for metric in ltr_metrics() {
        let values: Vec<f64> = evaluated
            .iter()
            .map(|g| {
                let ranked = ranked_by(g, |row| row.get(best).copied().unwrap_or(0.0));
                metric.compute(&ranked, &judgments(g), Gain::Exponential, Discount::Log2)
            })
            .collect();
        metrics.insert(metric.to_string(), stats::mean(&values));
    }
    let eval_s = started.elapsed().as_secs_f64();
    Ok(Report {
        task: "ltr",
        dataset: dataset.to_owned(),
        system: "best-feature".into(),
        params: json!({ "feature": best + 1, "train_ndcg@10": train_ndcg, "features": width,
                        "train_queries": train.len(), "test_queries": test.len() }),
        metrics,
        n_evaluated: evaluated.len(),
        n_skipped: test.len() - evaluated.len(),
        timing: Timing { fit_s, index_s: 0.0, eval_s, qps: evaluated.len() as f64 / eval_s.max(1e-9) },
        baseline: None,
        comparison: BTreeMap::new(),
    })
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

        let report = evaluate_best_feature(&groups, &groups, "toy").unwrap();
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
