//! Metrics against trusted implementations, on fixtures that scripts/reference/ wrote:
//! trec_eval (through pytrec_eval) and LensKit-Java's golden top-N metrics.

use std::collections::BTreeMap;
use std::path::PathBuf;

use funnel_eval::metrics::{Discount, Gain, Judgments, Metric, ndcg, reciprocal_rank};
use funnel_eval::trec::{read_run, trec_order};

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

#[test]
fn search_metrics_equal_trec_eval_on_every_query() {
    let expected: BTreeMap<String, BTreeMap<String, f64>> =
        serde_json::from_str(&std::fs::read_to_string(fixture("trec_eval/expected.json")).unwrap()).unwrap();
    let mut judged: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for qrel in funnel_store::import::read_qrels(&fixture("trec_eval/qrels.txt")).unwrap() {
        judged.entry(qrel.query).or_default().push((qrel.doc, f64::from(qrel.grade)));
    }
    let metrics =
        [Metric::Map, Metric::Ndcg(10), Metric::Mrr, Metric::Precision(10), Metric::Recall(100), Metric::Recall(1000)];
    let mut compared = 0;
    for (query, mut ranking) in read_run(&fixture("trec_eval/run.txt")).unwrap() {
        trec_order(&mut ranking);
        let ranked: Vec<String> = ranking.into_iter().map(|(doc, _)| doc).collect();
        let judgments = Judgments::new(judged[&query].clone());
        for metric in metrics {
            // trec_eval's ndcg_cut uses the grade itself as the gain.
            let ours = metric.compute(&ranked, &judgments, Gain::Linear, Discount::Log2);
            let theirs = expected[&query][&metric.to_string()];
            assert!((ours - theirs).abs() < 1e-6, "{query} {metric}: funnel {ours} vs trec_eval {theirs}");
            compared += 1;
        }
    }
    assert_eq!(compared, 30 * metrics.len());
}

fn csv_rows(path: &str) -> Vec<csv::StringRecord> {
    csv::Reader::from_path(fixture(path)).unwrap().records().map(Result::unwrap).collect()
}

#[test]
fn ndcg_and_reciprocal_rank_equal_lenskit_java_per_user() {
    let mut lists: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    for row in csv_rows("lenskit/lists.csv") {
        lists.entry(row[0].to_owned()).or_default().push((row[1].parse().unwrap(), row[2].to_owned()));
    }
    let mut truth: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for row in csv_rows("lenskit/truth.csv") {
        truth.entry(row[0].to_owned()).or_default().push((row[1].to_owned(), row[2].parse().unwrap()));
    }
    let expected = csv_rows("lenskit/expected.csv");
    assert_eq!(expected.len(), 100);
    let mut nonzero = 0;
    for row in expected {
        let name = &row[0];
        let mut list = lists.get(name).cloned().unwrap_or_default();
        list.sort();
        let ranked: Vec<String> = list.into_iter().map(|(_, item)| item).collect();
        let judgments = Judgments::new(truth.get(name).cloned().unwrap_or_default());
        // LensKit-Java: gain = rating, discount 1/max(1, log2 rank), ideal over all truth.
        let everything = usize::MAX;
        let ours = ndcg(&ranked, &judgments, everything, Gain::Linear, Discount::Log2Floor);
        let theirs: f64 = row[1].parse().unwrap();
        assert!((ours - theirs).abs() < 1e-9, "{name}: nDCG funnel {ours} vs LensKit {theirs}");
        let rr = reciprocal_rank(&ranked, &judgments, everything);
        let theirs_rr: f64 = row[2].parse().unwrap();
        assert!((rr - theirs_rr).abs() < 1e-9, "{name}: RR funnel {rr} vs LensKit {theirs_rr}");
        nonzero += usize::from(theirs > 0.0);
    }
    assert!(nonzero > 40, "the fixture must exercise non-trivial lists");
}
