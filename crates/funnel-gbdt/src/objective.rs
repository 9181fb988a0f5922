//! Training objectives: the gradient and hessian of the loss for each row, given the
//! current scores.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// What the trees are fitted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Pointwise squared error on the label.
    Regression,
    /// Pointwise logistic loss; a label above 0 is a positive.
    Binary,
    /// Pairwise logistic loss over every pair of a query's documents with different labels.
    RankNet,
    /// LambdaMART: RankNet's pairs weighted by the change in NDCG a swap would make.
    LambdaRank,
}

impl Objective {
    pub fn is_ranking(self) -> bool {
        matches!(self, Objective::RankNet | Objective::LambdaRank)
    }

    pub fn name(self) -> &'static str {
        match self {
            Objective::Regression => "regression",
            Objective::Binary => "binary",
            Objective::RankNet => "rank-net",
            Objective::LambdaRank => "lambdarank",
        }
    }
}

impl std::str::FromStr for Objective {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "regression" => Ok(Objective::Regression),
            "binary" => Ok(Objective::Binary),
            "rank-net" | "ranknet" => Ok(Objective::RankNet),
            "lambdarank" => Ok(Objective::LambdaRank),
            other => Err(format!("unknown objective `{other}` (regression, binary, rank-net, lambdarank)")),
        }
    }
}

/// The loss's settings that are not the objective's name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LossSettings {
    /// σ of the pairwise logistic.
    pub sigma: f64,
    /// LambdaRank: only pairs with a document in the top `truncation` (by current score)
    /// count, and NDCG is normalised at that depth.
    pub truncation: usize,
    /// LambdaRank: scale each pair by 1 / (0.01 + |score difference|) and a query's
    /// lambdas by log2(1 + Σλ) / Σλ.
    pub normalize: bool,
    /// Compute the queries' gradients on several threads.
    pub parallel: bool,
}

/// A label's gain: 2^label − 1.
pub(crate) fn gain(label: f64) -> f64 {
    label.exp2() - 1.0
}

/// 1 / log2(rank + 2), from a table for the first ranks.
fn discount(rank: usize) -> f64 {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (0..4096).map(|r| 1.0 / (r as f64 + 2.0).log2()).collect());
    table.get(rank).copied().unwrap_or_else(|| 1.0 / (rank as f64 + 2.0).log2())
}

/// 1 / the best DCG@k of a query's labels (0 when it has no gain).
pub(crate) fn inverse_max_dcg(labels: &[f64], k: usize) -> f64 {
    let mut gains: Vec<f64> = labels.iter().map(|&l| gain(l)).collect();
    gains.sort_unstable_by(|a, b| b.total_cmp(a));
    let best: f64 = gains.iter().take(k).enumerate().map(|(i, g)| g * discount(i)).sum();
    if best > 0.0 { 1.0 / best } else { 0.0 }
}

/// The score every row starts from.
pub(crate) fn initial_score(objective: Objective, labels: &[f64], weights: &[f64]) -> f64 {
    let total: f64 = weights.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    match objective {
        Objective::Regression => labels.iter().zip(weights).map(|(l, w)| l * w).sum::<f64>() / total,
        Objective::Binary => {
            let positive: f64 = labels.iter().zip(weights).filter(|(l, _)| **l > 0.0).map(|(_, w)| w).sum();
            let p = (positive / total).clamp(1e-15, 1.0 - 1e-15);
            (p / (1.0 - p)).ln()
        }
        Objective::RankNet | Objective::LambdaRank => 0.0,
    }
}

/// What the gradients compare: the label itself for pointwise objectives, its gain for
/// ranking ones (the same order, and LambdaRank needs the gains).
pub(crate) fn targets(objective: Objective, labels: &[f64]) -> Vec<f64> {
    if objective.is_ranking() { labels.iter().map(|&l| gain(l)).collect() } else { labels.to_vec() }
}

/// What the gradients are computed against: each row's target (see [`targets`]), the
/// query sizes in row order, and each query's 1 / max DCG (LambdaRank).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Truth<'a> {
    pub targets: &'a [f64],
    /// Each row's weight (1 without weights): a pointwise loss is scaled by it, a pair's
    /// by the weight of its more relevant row — for clicks, the clicked row's inverse
    /// examination propensity (propensity-weighted LambdaMART).
    pub weights: &'a [f64],
    pub groups: &'a [usize],
    pub inverse_max_dcgs: &'a [f64],
}

/// Fills `grad` and `hess` for every row.
pub(crate) fn gradients(
    objective: Objective,
    settings: LossSettings,
    truth: Truth<'_>,
    scores: &[f64],
    grad: &mut [f64],
    hess: &mut [f64],
) {
    let Truth { targets: labels, weights, groups, inverse_max_dcgs } = truth;
    match objective {
        Objective::Regression => {
            for i in 0..labels.len() {
                grad[i] = (scores[i] - labels[i]) * weights[i];
                hess[i] = weights[i];
            }
        }
        Objective::Binary => {
            for i in 0..labels.len() {
                let p = 1.0 / (1.0 + (-scores[i]).exp());
                grad[i] = (p - if labels[i] > 0.0 { 1.0 } else { 0.0 }) * weights[i];
                hess[i] = p * (1.0 - p) * weights[i];
            }
        }
        Objective::RankNet | Objective::LambdaRank => {
            let mut tasks = Vec::with_capacity(groups.len());
            let mut start = 0;
            let (mut grad, mut hess) = (grad, hess);
            for (g, &size) in groups.iter().enumerate() {
                let query = Query {
                    gains: &labels[start..start + size],
                    weights: &weights[start..start + size],
                    scores: &scores[start..start + size],
                    inverse_max_dcg: inverse_max_dcgs[g],
                };
                let (gr, rest_g) = std::mem::take(&mut grad).split_at_mut(size);
                let (he, rest_h) = std::mem::take(&mut hess).split_at_mut(size);
                tasks.push((query, gr, he));
                (grad, hess, start) = (rest_g, rest_h, start + size);
            }
            let one = |(query, gr, he): (Query<'_>, &mut [f64], &mut [f64])| {
                if objective == Objective::LambdaRank {
                    lambdarank_query(settings, query, gr, he);
                } else {
                    ranknet_query(settings.sigma, query, gr, he);
                }
            };
            // Waking a second thread costs more than small sets take.
            if settings.parallel {
                tasks.into_par_iter().for_each(one);
            } else {
                tasks.into_iter().for_each(one);
            }
        }
    }
}

/// Adds one pair's lambda and hessian: `high` should rank above `low`; `weight` scales both.
fn add_pair(
    sigma: f64,
    delta_score: f64,
    weight: f64,
    high: usize,
    low: usize,
    grad: &mut [f64],
    hess: &mut [f64],
) -> f64 {
    let p = 1.0 / (1.0 + (sigma * delta_score).exp());
    let lambda = -sigma * p * weight;
    let h = sigma * sigma * p * (1.0 - p) * weight;
    grad[high] += lambda;
    grad[low] -= lambda;
    hess[high] += h;
    hess[low] += h;
    -2.0 * lambda
}

/// One query's rows.
struct Query<'a> {
    gains: &'a [f64],
    weights: &'a [f64],
    scores: &'a [f64],
    inverse_max_dcg: f64,
}

fn ranknet_query(sigma: f64, query: Query<'_>, grad: &mut [f64], hess: &mut [f64]) {
    let Query { gains, weights, scores, .. } = query;
    grad.fill(0.0);
    hess.fill(0.0);
    for i in 0..gains.len() {
        for j in 0..gains.len() {
            if gains[i] > gains[j] {
                add_pair(sigma, scores[i] - scores[j], weights[i], i, j, grad, hess);
            }
        }
    }
}

/// LambdaMART's gradients of one query, computed as LightGBM 4 computes them so that the
/// same data grow the same trees: the pair's sigmoid read at LightGBM's grid over
/// ±25/σ (2^20 steps), the score-distance normalisation's constant in single precision
/// (0.01f), and the lambdas summed in single precision in LightGBM's pair order.
fn lambdarank_query(settings: LossSettings, query: Query<'_>, grad: &mut [f64], hess: &mut [f64]) {
    let Query { gains: labels, weights, scores, inverse_max_dcg } = query;
    grad.fill(0.0);
    hess.fill(0.0);
    let n = labels.len();
    if n < 2 || inverse_max_dcg == 0.0 {
        return;
    }
    let mut sorted: Vec<usize> = (0..n).collect();
    sorted.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (best, worst) = (scores[sorted[0]], scores[sorted[n - 1]]);
    let sigmoid = GridSigmoid::new(settings.sigma);
    let (mut lambdas, mut hessians) = (vec![0f32; n], vec![0f32; n]);
    let mut sum_lambdas = 0.0;
    for i in 0..(n - 1).min(settings.truncation) {
        for j in i + 1..n {
            let (a, b) = (sorted[i], sorted[j]);
            if labels[a] == labels[b] {
                continue;
            }
            let ((high, high_rank), (low, low_rank)) =
                if labels[a] > labels[b] { ((a, i), (b, j)) } else { ((b, j), (a, i)) };
            let delta_score = scores[high] - scores[low];
            let mut delta_ndcg = (labels[high] - labels[low])
                * (discount(high_rank) - discount(low_rank)).abs()
                * inverse_max_dcg
                * weights[high];
            if settings.normalize && best != worst {
                delta_ndcg /= f64::from(0.01f32) + delta_score.abs();
            }
            let p = sigmoid.at(delta_score);
            let lambda = p * (-settings.sigma * delta_ndcg);
            let h = p * (1.0 - p) * (settings.sigma * settings.sigma * delta_ndcg);
            lambdas[low] -= lambda as f32;
            hessians[low] += h as f32;
            lambdas[high] += lambda as f32;
            hessians[high] += h as f32;
            sum_lambdas -= 2.0 * lambda;
        }
    }
    let factor = match settings.normalize && sum_lambdas > 0.0 {
        true => (1.0 + sum_lambdas).log2() / sum_lambdas,
        false => 1.0,
    };
    for (i, (l, h)) in lambdas.into_iter().zip(hessians).enumerate() {
        grad[i] = f64::from((f64::from(l) * factor) as f32);
        hess[i] = f64::from((f64::from(h) * factor) as f32);
    }
}

/// 1 / (1 + e^(σx)) at x rounded down to LightGBM's grid of 2^20 steps over ±25/σ
/// (clamped at its ends).
struct GridSigmoid {
    sigma: f64,
    min: f64,
    steps_per_unit: f64,
}

impl GridSigmoid {
    const STEPS: usize = 1 << 20;

    fn new(sigma: f64) -> Self {
        let min = -50.0 / sigma / 2.0;
        Self { sigma, min, steps_per_unit: Self::STEPS as f64 / (-min - min) }
    }

    fn at(&self, x: f64) -> f64 {
        let step = if x <= self.min {
            0
        } else if x >= -self.min {
            Self::STEPS - 1
        } else {
            ((x - self.min) * self.steps_per_unit) as usize
        };
        let x = step as f64 / self.steps_per_unit + self.min;
        1.0 / (1.0 + (x * self.sigma).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: LossSettings = LossSettings { sigma: 1.0, truncation: 30, normalize: true, parallel: true };

    #[test]
    fn lambdas_push_the_relevant_document_up_and_sum_to_zero() {
        let labels = [0.0, 2.0, 1.0];
        let scores = [0.5, 0.1, 0.0];
        let (mut grad, mut hess) = ([0.0; 3], [0.0; 3]);
        let inverse = [inverse_max_dcg(&labels, 30)];
        for objective in [Objective::LambdaRank, Objective::RankNet] {
            let targets = targets(objective, &labels);
            let truth = Truth { targets: &targets, weights: &[1.0; 3], groups: &[3], inverse_max_dcgs: &inverse };
            gradients(objective, SETTINGS, truth, &scores, &mut grad, &mut hess);
            assert!(grad[1] < 0.0 && grad[0] > 0.0, "{objective:?}: {grad:?}");
            assert!(grad.iter().sum::<f64>().abs() < 1e-6, "sums to zero (in single precision)");
            assert!(hess.iter().all(|&h| h > 0.0));
        }
    }

    #[test]
    fn ranknet_gradient_is_the_derivative_of_the_pairwise_loss() {
        let labels = [2.0, 0.0, 1.0, 0.0];
        let scores = [0.3, 0.7, -0.2, 0.1];
        let loss = |s: &[f64]| -> f64 {
            let mut total = 0.0;
            for i in 0..4 {
                for j in 0..4 {
                    if labels[i] > labels[j] {
                        total += (1.0 + (-(s[i] - s[j])).exp()).ln();
                    }
                }
            }
            total
        };
        let (mut grad, mut hess) = ([0.0; 4], [0.0; 4]);
        let truth = Truth { targets: &labels, weights: &[1.0; 4], groups: &[4], inverse_max_dcgs: &[1.0] };
        gradients(Objective::RankNet, SETTINGS, truth, &scores, &mut grad, &mut hess);
        for i in 0..4 {
            let (mut up, mut down) = (scores, scores);
            up[i] += 1e-6;
            down[i] -= 1e-6;
            let numeric = (loss(&up) - loss(&down)) / 2e-6;
            assert!((numeric - grad[i]).abs() < 1e-6, "row {i}: {numeric} vs {}", grad[i]);
        }
    }

    #[test]
    fn pointwise_gradients() {
        let (mut grad, mut hess) = ([0.0; 2], [0.0; 2]);
        let truth = Truth { targets: &[1.0, 3.0], weights: &[1.0, 2.0], groups: &[2], inverse_max_dcgs: &[0.0] };
        gradients(Objective::Regression, SETTINGS, truth, &[2.0, 2.0], &mut grad, &mut hess);
        assert_eq!((grad, hess), ([1.0, -2.0], [1.0, 2.0]));
        let truth = Truth { targets: &[1.0, 0.0], weights: &[1.0; 2], groups: &[2], inverse_max_dcgs: &[0.0] };
        gradients(Objective::Binary, SETTINGS, truth, &[0.0, 0.0], &mut grad, &mut hess);
        assert_eq!((grad, hess), ([-0.5, 0.5], [0.25, 0.25]));
        assert!(
            (initial_score(Objective::Binary, &[1.0, 0.0, 0.0, 0.0], &[1.0; 4]) - (1.0f64 / 3.0).ln()).abs() < 1e-12
        );
    }
}
