//! Paired comparison of two systems over the same users or queries.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// How a system differs from a baseline on one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Mean of (system − baseline) over the paired units.
    pub diff: f64,
    /// 95% bootstrap confidence interval of that mean (percentile method).
    pub ci95: [f64; 2],
    /// Two-sided p-value of a paired t-test of "no difference".
    pub p_value: f64,
    pub n: usize,
}

pub const BOOTSTRAP_SAMPLES: usize = 2000;

/// Compares paired per-unit values (same order in both slices).
pub fn compare(system: &[f64], baseline: &[f64], seed: u64) -> Comparison {
    assert_eq!(system.len(), baseline.len(), "paired values");
    let diffs: Vec<f64> = system.iter().zip(baseline).map(|(s, b)| s - b).collect();
    Comparison { diff: mean(&diffs), ci95: bootstrap_ci(&diffs, seed), p_value: paired_t_test(&diffs), n: diffs.len() }
}

pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 }
}

/// The 2.5th and 97.5th percentiles of the mean over resamples with replacement.
pub fn bootstrap_ci(values: &[f64], seed: u64) -> [f64; 2] {
    if values.is_empty() {
        return [0.0, 0.0];
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let n = values.len();
    let mut means: Vec<f64> = (0..BOOTSTRAP_SAMPLES)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (BOOTSTRAP_SAMPLES - 1) as f64).round()) as usize];
    [at(0.025), at(0.975)]
}

/// t = mean / (sd / √n) with n − 1 degrees of freedom; two-sided p.
pub fn paired_t_test(diffs: &[f64]) -> f64 {
    let n = diffs.len();
    if n < 2 {
        return 1.0;
    }
    let m = mean(diffs);
    let variance = diffs.iter().map(|d| (d - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    if variance == 0.0 {
        return if m == 0.0 { 1.0 } else { 0.0 };
    }
    let t = m / (variance / n as f64).sqrt();
    let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("n ≥ 2 gives a valid t distribution");
    2.0 * (1.0 - dist.cdf(t.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_test_matches_a_known_value() {
        // diffs 1,2,3,4,5: mean 3, sd 1.5811, t = 4.2426, df 4 → p = 0.01324 (scipy).
        let p = paired_t_test(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((p - 0.013236).abs() < 1e-5, "{p}");
        assert_eq!(paired_t_test(&[0.0, 0.0]), 1.0);
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_mean() {
        let values: Vec<f64> = (0..200).map(|i| f64::from(i % 7) / 7.0).collect();
        let a = bootstrap_ci(&values, 1);
        assert_eq!(a, bootstrap_ci(&values, 1));
        let m = mean(&values);
        assert!(a[0] < m && m < a[1], "{a:?} around {m}");
    }

    #[test]
    fn a_clear_improvement_is_significant() {
        let base: Vec<f64> = (0..100).map(|i| f64::from(i % 10) / 10.0).collect();
        let better: Vec<f64> = base.iter().map(|b| b + 0.1).collect();
        let c = compare(&better, &base, 3);
        assert!((c.diff - 0.1).abs() < 1e-12 && c.p_value < 1e-6 && c.ci95[0] > 0.09);
    }
}
