//! Disjoint LinUCB (Li, Chu, Langford and Schapire, 2010): per item, a ridge regression
//! of the reward of an impression on the user's context, served by its upper confidence
//! bound θᵀx + α·√(xᵀA⁻¹x). The context is a bias and the user's membership of the
//! largest segments (`country=de`, `age=25-34`, …), so an item learns how each kind of
//! user responds to it, and an item seldom shown to a kind of user keeps a wide bound.

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::feedback::BanditEvent;
use crate::segments::Segments;

/// Segments in the context (the largest by members); with the bias, the dimension.
pub const CONTEXT_SEGMENTS: usize = 15;

/// The fitted arms: A⁻¹ and θ = A⁻¹b per item that has impressions, with A = I + Σ xxᵀ over
/// its impressions and b = Σ x over its rewards (each matched to an impression, as
/// [`crate::Feedback`] counts them). Kept in f64: the bias and a complete one-hot group
/// are collinear, so xᵀA⁻¹x is a small difference of large terms.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LinUcb {
    /// The segments of context dimensions 1…; dimension 0 is the bias.
    pub segments: Vec<u32>,
    /// Items with impressions, sorted.
    pub items: Vec<u32>,
    /// Per item of `items`, A⁻¹ (dim × dim, row-major) and then θ (dim).
    pub arms: Vec<f64>,
}

impl LinUcb {
    pub fn dim(&self) -> usize {
        self.segments.len() + 1
    }

    /// Fits every arm from the impressions and matched rewards.
    pub(crate) fn fit(events: &[BanditEvent], segments: &Segments) -> Self {
        let mut largest: Vec<u32> = (0..segments.len() as u32).collect();
        largest.sort_by_key(|&s| (std::cmp::Reverse(segments.segments[s as usize].users), s));
        largest.truncate(CONTEXT_SEGMENTS);
        largest.sort_unstable();
        let dim = largest.len() + 1;
        let contexts: Vec<Vec<usize>> = segments
            .of_users()
            .into_iter()
            .map(|of_user| {
                let mut x = vec![0];
                x.extend(of_user.iter().filter_map(|s| largest.binary_search(s).ok().map(|d| d + 1)));
                x
            })
            .collect();
        let bias_only = vec![0usize];
        let mut sums: FxHashMap<u32, (Vec<f64>, Vec<f64>)> = FxHashMap::default();
        for event in events {
            let x = contexts.get(event.user as usize).unwrap_or(&bias_only);
            let (a, b) = sums.entry(event.item).or_insert_with(|| (vec![0.0; dim * dim], vec![0.0; dim]));
            if event.reward {
                x.iter().for_each(|&i| b[i] += 1.0);
            } else {
                for &i in x {
                    x.iter().for_each(|&j| a[i * dim + j] += 1.0);
                }
            }
        }
        let mut items: Vec<u32> = sums.iter().filter(|(_, (a, _))| a[0] > 0.0).map(|(&item, _)| item).collect();
        items.sort_unstable();
        let mut arms = Vec::with_capacity(items.len() * (dim * dim + dim));
        for item in &items {
            let (a, b) = &sums[item];
            let gram = Mat::<f64>::from_fn(dim, dim, |i, j| a[i * dim + j] + f64::from(u8::from(i == j)));
            let inverse = gram.llt(Side::Lower).expect("I + Σxxᵀ is positive definite").inverse();
            arms.extend((0..dim * dim).map(|n| inverse[(n / dim, n % dim)]));
            arms.extend((0..dim).map(|i| (0..dim).map(|j| inverse[(i, j)] * b[j]).sum::<f64>()));
        }
        Self { segments: largest, items, arms }
    }

    /// The context vector of a request that matched `segments`.
    pub fn context(&self, segments: &[u32]) -> Vec<f64> {
        let mut x = vec![0.0; self.dim()];
        x[0] = 1.0;
        for s in segments {
            if let Ok(d) = self.segments.binary_search(s) {
                x[d + 1] = 1.0;
            }
        }
        x
    }

    /// (θᵀx, √(xᵀA⁻¹x)): the expected reward and its uncertainty. An item never shown
    /// has θ = 0 and A = I.
    pub fn estimate(&self, item: u32, x: &[f64]) -> (f64, f64) {
        let dim = self.dim();
        let Ok(at) = self.items.binary_search(&item) else {
            return (0.0, x.iter().map(|v| v * v).sum::<f64>().sqrt());
        };
        let arm = &self.arms[at * (dim * dim + dim)..(at + 1) * (dim * dim + dim)];
        let (inverse, theta) = arm.split_at(dim * dim);
        let mean = theta.iter().zip(x).map(|(t, v)| t * v).sum();
        let spread: f64 = (0..dim).map(|i| x[i] * (0..dim).map(|j| inverse[i * dim + j] * x[j]).sum::<f64>()).sum();
        (mean, spread.max(0.0).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_arm_learns_the_reward_rate_of_each_kind_of_user() {
        let gathered = crate::feedback::tests::log();
        let snapshot = crate::train::snapshot_from(&gathered);
        let events = crate::feedback::bandit_events(&gathered, funnel_core::EventKind::Click, 86_400, i64::MAX);
        let model = LinUcb::fit(&events, &snapshot.segments);
        assert_eq!(model.dim(), 3, "bias, country=a, country=b");
        let a = model.context(&snapshot.segments.matching(Some(0), &Default::default()));
        let b = model.context(&snapshot.segments.matching(Some(39), &Default::default()));
        let (liked_by_a, spread) = model.estimate(0, &a);
        let (shunned_by_a, _) = model.estimate(1, &a);
        // Users of "a" click i0 on half its impressions, never i1 (ridge shrinks a little).
        assert!((liked_by_a - 0.5).abs() < 0.02 && shunned_by_a.abs() < 0.02, "{liked_by_a} {shunned_by_a}");
        assert!((model.estimate(1, &b).0 - 0.5).abs() < 0.02);
        // Shown 400 times, i0 is certain; i2 (40 impressions) less so; i3 (none) not at all.
        let (_, spread_i2) = model.estimate(2, &a);
        let (mean_i3, spread_i3) = model.estimate(3, &a);
        assert!(spread < spread_i2 && spread_i2 < spread_i3, "{spread} {spread_i2} {spread_i3}");
        assert_eq!((mean_i3, spread_i3), (0.0, 2f64.sqrt()));
    }
}
