//! Ranking metrics as small pure functions over one ranking (best first) and the
//! judgments of its query or user. A document is relevant when its grade is > 0;
//! unjudged documents have grade 0.

use std::collections::HashMap;
use std::hash::Hash;

/// How a grade becomes a gain in DCG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gain {
    /// 2^grade − 1 (Burges et al.; the default).
    Exponential,
    /// The grade itself (trec_eval's `ndcg_cut`, LensKit-Java).
    Linear,
}

/// How DCG discounts rank i (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discount {
    /// 1 / log2(i + 1) (the default; trec_eval).
    Log2,
    /// 1 / max(1, log2 i) (LensKit-Java's nDCG).
    Log2Floor,
}

impl Gain {
    fn of(self, grade: f64) -> f64 {
        match self {
            Self::Exponential => grade.exp2() - 1.0,
            Self::Linear => grade,
        }
    }
}

impl Discount {
    fn of(self, rank: usize) -> f64 {
        match self {
            Self::Log2 => 1.0 / ((rank + 1) as f64).log2(),
            Self::Log2Floor => 1.0 / (rank as f64).log2().max(1.0),
        }
    }
}

/// The judgments of one query (or one user's test items).
#[derive(Debug, Clone)]
pub struct Judgments<K> {
    grades: HashMap<K, f64>,
    /// Positive grades, highest first: the ideal ranking's grades.
    ideal: Vec<f64>,
}

impl<K: Eq + Hash> Judgments<K> {
    pub fn new(grades: impl IntoIterator<Item = (K, f64)>) -> Self {
        let grades: HashMap<K, f64> = grades.into_iter().collect();
        let mut ideal: Vec<f64> = grades.values().copied().filter(|&g| g > 0.0).collect();
        ideal.sort_by(|a, b| b.total_cmp(a));
        Self { grades, ideal }
    }

    pub fn grade(&self, doc: &K) -> f64 {
        self.grades.get(doc).copied().unwrap_or(0.0)
    }

    pub fn is_relevant(&self, doc: &K) -> bool {
        self.grade(doc) > 0.0
    }

    /// Number of relevant (grade > 0) judged documents.
    pub fn n_relevant(&self) -> usize {
        self.ideal.len()
    }
}

fn hits_at<K: Eq + Hash>(ranked: &[K], judged: &Judgments<K>, k: usize) -> usize {
    ranked.iter().take(k).filter(|d| judged.is_relevant(d)).count()
}

/// DCG@k / IDCG@k, where the ideal ranking orders every relevant judged document by
/// grade. 0 when nothing is relevant.
pub fn ndcg<K: Eq + Hash>(ranked: &[K], judged: &Judgments<K>, k: usize, gain: Gain, discount: Discount) -> f64 {
    let dcg: f64 = ranked.iter().take(k).enumerate().map(|(i, d)| gain.of(judged.grade(d)) * discount.of(i + 1)).sum();
    let ideal: f64 = judged.ideal.iter().take(k).enumerate().map(|(i, &g)| gain.of(g) * discount.of(i + 1)).sum();
    if ideal > 0.0 { dcg / ideal } else { 0.0 }
}

/// Relevant documents in the top k, divided by k (trec_eval's `P_k`).
pub fn precision<K: Eq + Hash>(ranked: &[K], judged: &Judgments<K>, k: usize) -> f64 {
    hits_at(ranked, judged, k) as f64 / k as f64
}

/// Relevant documents in the top k, divided by all relevant ones.
pub fn recall<K: Eq + Hash>(ranked: &[K], judged: &Judgments<K>, k: usize) -> f64 {
    match judged.n_relevant() {
        0 => 0.0,
        n => hits_at(ranked, judged, k) as f64 / n as f64,
    }
}

/// 1 when a relevant document is in the top k.
pub fn hit<K: Eq + Hash>(ranked: &[K], judged: &Judgments<K>, k: usize) -> f64 {
    f64::from(u8::from(hits_at(ranked, judged, k) > 0))
}

/// 1 / rank of the first relevant document in the top k (0 if none).
pub fn reciprocal_rank<K: Eq + Hash>(ranked: &[K], judged: &Judgments<K>, k: usize) -> f64 {
    ranked.iter().take(k).position(|d| judged.is_relevant(d)).map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Σ over relevant documents at ranks i ≤ k of precision@i, divided by `denominator`.
fn precision_sum<K: Eq + Hash>(ranked: &[K], judged: &Judgments<K>, k: usize) -> f64 {
    let mut hits = 0;
    let mut sum = 0.0;
    for (i, doc) in ranked.iter().take(k).enumerate() {
        if judged.is_relevant(doc) {
            hits += 1;
            sum += f64::from(hits) / (i + 1) as f64;
        }
    }
    sum
}

/// Average precision with trec_eval's semantics: over the whole ranking, divided by the
/// number of relevant judged documents.
pub fn average_precision<K: Eq + Hash>(ranked: &[K], judged: &Judgments<K>) -> f64 {
    match judged.n_relevant() {
        0 => 0.0,
        n => precision_sum(ranked, judged, ranked.len()) / n as f64,
    }
}

/// AP@k for recommendations: over the top k, divided by min(|relevant|, k).
pub fn average_precision_at<K: Eq + Hash>(ranked: &[K], judged: &Judgments<K>, k: usize) -> f64 {
    match judged.n_relevant().min(k) {
        0 => 0.0,
        n => precision_sum(ranked, judged, k) / n as f64,
    }
}

/// A metric by name: `ndcg@10`, `map`, `map@10`, `mrr`, `mrr@10`, `recall@100`, `p@10`,
/// `hit@10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Ndcg(usize),
    Map,
    MapAt(usize),
    Mrr,
    MrrAt(usize),
    Recall(usize),
    Precision(usize),
    Hit(usize),
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ndcg(k) => write!(f, "ndcg@{k}"),
            Self::Map => write!(f, "map"),
            Self::MapAt(k) => write!(f, "map@{k}"),
            Self::Mrr => write!(f, "mrr"),
            Self::MrrAt(k) => write!(f, "mrr@{k}"),
            Self::Recall(k) => write!(f, "recall@{k}"),
            Self::Precision(k) => write!(f, "p@{k}"),
            Self::Hit(k) => write!(f, "hit@{k}"),
        }
    }
}

impl Metric {
    pub fn compute<K: Eq + Hash>(self, ranked: &[K], judged: &Judgments<K>, gain: Gain, discount: Discount) -> f64 {
        match self {
            Self::Ndcg(k) => ndcg(ranked, judged, k, gain, discount),
            Self::Map => average_precision(ranked, judged),
            Self::MapAt(k) => average_precision_at(ranked, judged, k),
            Self::Mrr => reciprocal_rank(ranked, judged, ranked.len()),
            Self::MrrAt(k) => reciprocal_rank(ranked, judged, k),
            Self::Recall(k) => recall(ranked, judged, k),
            Self::Precision(k) => precision(ranked, judged, k),
            Self::Hit(k) => hit(ranked, judged, k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(grades: &[(&'static str, f64)]) -> Judgments<&'static str> {
        Judgments::new(grades.iter().copied())
    }

    #[test]
    fn ndcg_matches_a_hand_computation() {
        let j = judged(&[("a", 3.0), ("b", 1.0), ("c", 2.0), ("x", 0.0)]);
        let ranked = ["b", "x", "a", "z"];
        // DCG = (2^1-1)/log2 2 + 0 + (2^3-1)/log2 4 = 1 + 3.5; IDCG@4 = 7 + 3/log2 3 + 1/2.
        let expected = 4.5 / (7.0 + 3.0 / 3f64.log2() + 0.5);
        assert!((ndcg(&ranked, &j, 4, Gain::Exponential, Discount::Log2) - expected).abs() < 1e-12);
        // Linear gain, LensKit discount: 1/1 + 0 + 3/log2 3; ideal 3/1 + 2/1 + 1/log2 3.
        let expected = (1.0 + 3.0 / 3f64.log2()) / (3.0 + 2.0 + 1.0 / 3f64.log2());
        assert!((ndcg(&ranked, &j, 4, Gain::Linear, Discount::Log2Floor) - expected).abs() < 1e-12);
    }

    #[test]
    fn the_ideal_ranking_scores_one_and_nothing_relevant_scores_zero() {
        let j = judged(&[("a", 3.0), ("b", 1.0), ("c", 2.0)]);
        for k in [1, 2, 3, 10] {
            assert!((ndcg(&["a", "c", "b"], &j, k, Gain::Exponential, Discount::Log2) - 1.0).abs() < 1e-12);
        }
        let none = judged(&[("a", 0.0)]);
        assert_eq!(ndcg(&["a"], &none, 10, Gain::Exponential, Discount::Log2), 0.0);
        assert_eq!(average_precision(&["a"], &none), 0.0);
        assert_eq!(recall(&["a"], &none, 10), 0.0);
    }

    #[test]
    fn precision_recall_hit_rr_and_ap() {
        let j = judged(&[("a", 1.0), ("b", 1.0), ("c", 1.0)]);
        let ranked = ["x", "a", "y", "b"];
        assert_eq!(precision(&ranked, &j, 2), 0.5);
        assert_eq!(precision(&ranked, &j, 10), 0.2, "trec_eval divides by k even past the end");
        assert!((recall(&ranked, &j, 4) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(hit(&ranked, &j, 1), 0.0);
        assert_eq!(hit(&ranked, &j, 2), 1.0);
        assert_eq!(reciprocal_rank(&ranked, &j, 10), 0.5);
        assert_eq!(reciprocal_rank(&ranked, &j, 1), 0.0);
        // Precision at the hits: 1/2 and 2/4.
        assert!((average_precision(&ranked, &j) - (0.5 + 0.5) / 3.0).abs() < 1e-12);
        assert!((average_precision_at(&ranked, &j, 2) - 0.5 / 2.0).abs() < 1e-12);
    }

    #[test]
    fn metric_names_round_trip() {
        let names: Vec<String> = [
            Metric::Ndcg(10),
            Metric::Map,
            Metric::MapAt(5),
            Metric::Mrr,
            Metric::Recall(100),
            Metric::Precision(10),
            Metric::Hit(20),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(names, ["ndcg@10", "map", "map@5", "mrr", "recall@100", "p@10", "hit@20"]);
    }
}
