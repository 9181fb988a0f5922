//! Examination propensity per position from logs whose items were placed at random.
//!
//! Under the examination hypothesis a shown item is clicked when its position is examined
//! (probability θ_k) and the item is relevant: P(click | item, k) = θ_k · P(relevant | item).
//! When the logging policy put items in positions uniformly at random, relevance is
//! independent of position, so CTR_k / CTR_1 = θ_k / θ_1: the propensity of each position
//! relative to the first. (The Open Bandit Dataset's `random` logs are such logs.)

use std::collections::BTreeMap;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::EvalError;

/// One position's clicks and its estimated propensity relative to the first position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionPropensity {
    pub position: u32,
    pub impressions: u64,
    pub clicks: u64,
    pub ctr: f64,
    /// CTR at this position / CTR at the first (lowest-numbered) position.
    pub propensity: f64,
    /// 95% bootstrap interval of `propensity` (each position's clicks resampled).
    pub ci95: [f64; 2],
}

const BOOTSTRAP_SAMPLES: usize = 1000;

/// Reads `position` and `click` columns (by header name) from a CSV of impressions.
pub fn read_impressions(path: &Path, position: &str, click: &str) -> Result<Vec<(u32, bool)>, EvalError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| EvalError::Input(format!("{}: {e}", path.display())))?;
    let headers = reader.headers().map_err(|e| EvalError::Input(format!("{}: {e}", path.display())))?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            EvalError::Input(format!(
                "{}: no `{name}` column (columns: {})",
                path.display(),
                headers.iter().collect::<Vec<_>>().join(", ")
            ))
        })
    };
    let (position_at, click_at) = (column(position)?, column(click)?);
    let mut impressions = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let bad = |reason: String| EvalError::BadLine { path: path.to_owned(), line, reason };
        let record = record.map_err(|e| bad(e.to_string()))?;
        let field = |at: usize, name: &str| record.get(at).ok_or_else(|| bad(format!("field `{name}` is missing")));
        let value = field(position_at, position)?;
        let k: u32 =
            value.trim().parse().map_err(|_| bad(format!("field `{position}`: `{value}` is not a position")))?;
        let value = field(click_at, click)?;
        let clicked = match value.trim() {
            "1" | "1.0" | "true" => true,
            "0" | "0.0" | "false" => false,
            other => return Err(bad(format!("field `{click}`: `{other}` is not 0 or 1"))),
        };
        impressions.push((k, clicked));
    }
    Ok(impressions)
}

/// Propensities relative to the first position, from randomised impressions.
pub fn from_randomized(impressions: &[(u32, bool)], seed: u64) -> Result<Vec<PositionPropensity>, EvalError> {
    let mut counts: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for &(k, clicked) in impressions {
        let entry = counts.entry(k).or_default();
        entry.0 += 1;
        entry.1 += u64::from(clicked);
    }
    let Some((&first, &(n1, c1))) = counts.iter().next() else {
        return Err(EvalError::Input("no impressions".into()));
    };
    if c1 == 0 {
        return Err(EvalError::Input(format!("no clicks at position {first}: propensities are relative to it")));
    }
    let ctr = |n: u64, c: u64| c as f64 / n as f64;
    // Parametric bootstrap: each position's clicks redrawn from its own CTR.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw = |n: u64, p: f64| (0..n).filter(|_| rng.random::<f64>() < p).count() as f64 / n as f64;
    let mut ratios: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for _ in 0..BOOTSTRAP_SAMPLES {
        let base = draw(n1, ctr(n1, c1));
        for (&k, &(n, c)) in &counts {
            let value = if k == first { base } else { draw(n, ctr(n, c)) };
            ratios.entry(k).or_default().push(if base > 0.0 { value / base } else { f64::NAN });
        }
    }
    Ok(counts
        .iter()
        .map(|(&k, &(n, c))| {
            let mut samples: Vec<f64> = ratios[&k].iter().copied().filter(|r| r.is_finite()).collect();
            samples.sort_by(f64::total_cmp);
            let at = |q: f64| {
                samples.get(((q * (samples.len().max(1) - 1) as f64).round()) as usize).copied().unwrap_or(f64::NAN)
            };
            PositionPropensity {
                position: k,
                impressions: n,
                clicks: c,
                ctr: ctr(n, c),
                propensity: ctr(n, c) / ctr(n1, c1),
                ci95: [at(0.025), at(0.975)],
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_the_examination_curve_of_a_simulated_random_log() {
        // Items of relevance 0.3 on average, placed at random in 3 slots examined with
        // probabilities 1, 0.6 and 0.3.
        let mut rng = StdRng::seed_from_u64(3);
        let theta = [1.0, 0.6, 0.3];
        let impressions: Vec<(u32, bool)> = (0..60_000)
            .map(|i| {
                let k = (i % 3) as u32;
                let relevance: f64 = rng.random::<f64>() * 0.6;
                (k + 1, rng.random::<f64>() < theta[k as usize] * relevance)
            })
            .collect();
        let estimate = from_randomized(&impressions, 7).unwrap();
        assert_eq!(estimate.iter().map(|p| p.position).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(estimate[0].propensity, 1.0);
        for (p, &truth) in estimate.iter().zip(&theta) {
            assert!((p.propensity - truth).abs() < 0.05, "position {}: {} vs {truth}", p.position, p.propensity);
            assert!(p.ci95[0] <= truth && truth <= p.ci95[1], "position {}: {:?} misses {truth}", p.position, p.ci95);
        }
        assert!(
            from_randomized(&[(1, false), (2, true)], 7).unwrap_err().to_string().contains("no clicks at position 1")
        );
    }
}
