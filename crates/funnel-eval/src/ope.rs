//! Off-policy evaluation: the value (mean reward) a target policy would have had, estimated
//! from rounds logged under another policy that recorded its propensities. Logs come in the
//! Open Bandit Dataset layout (a campaign folder: one CSV of rounds with `item_id`,
//! `position` (from 1), `click`, `propensity_score`, and `item_context.csv`); the target
//! policy as its action distribution π(item, position | round) (CSV `round,item,position,prob`,
//! positions from 0, gzip allowed).
//!
//! Per logged round t with item a_t at position k_t, reward r_t and propensity p_t:
//! w_t = π(a_t, k_t | t) / p_t, and with a reward model q̂(a, k):
//! IPS = mean(w·r); SNIPS = Σ w·r / Σ w; DM = mean(Σ_a π(a, k_t | t) q̂(a, k_t)) (π over its
//! sum at the slot);
//! DR = mean(DM_t + w (r − q̂(a_t, k_t))); SNDR = DR with w / mean(w) in the correction.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::EvalError;

/// One logged round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Logged {
    pub item: u32,
    /// From 0.
    pub position: u32,
    pub reward: f64,
    pub propensity: f64,
}

/// The rounds of a campaign folder and the number of items its `item_context.csv` lists.
#[derive(Debug, Clone)]
pub struct Logs {
    pub file: PathBuf,
    pub rounds: Vec<Logged>,
    pub n_items: usize,
    pub n_positions: usize,
}

/// π(item, k_t | round t) at each round's logged position k_t (the only slot the
/// estimators read), dense over items.
#[derive(Debug, Clone)]
pub struct ActionDist {
    n_items: usize,
    probs: Vec<f64>,
}

impl ActionDist {
    fn prob(&self, round: usize, item: u32) -> f64 {
        self.probs[round * self.n_items + item as usize]
    }

    /// A policy that ignores the round's context: `prob(item, position)` (from 0) at every
    /// round's logged position.
    pub fn context_free(logs: &Logs, prob: impl Fn(u32, u32) -> f64) -> Result<Self, EvalError> {
        let n_items = logs.n_items;
        if logs.rounds.len().saturating_mul(n_items) > MAX_CELLS {
            return Err(EvalError::Input(format!(
                "{} rounds × {n_items} items is more than {MAX_CELLS} probabilities; split the logs",
                logs.rounds.len()
            )));
        }
        let probs: Vec<f64> =
            logs.rounds.iter().flat_map(|r| (0..n_items as u32).map(|item| prob(item, r.position))).collect();
        for (round, logged) in logs.rounds.iter().enumerate() {
            let sum: f64 = probs[round * n_items..(round + 1) * n_items].iter().sum();
            if (sum - 1.0).abs() > 1e-6 {
                return Err(EvalError::Input(format!(
                    "the policy's probabilities at position {} (from 0) sum to {sum:.6}, not 1",
                    logged.position
                )));
            }
        }
        Ok(Self { n_items, probs })
    }
}

/// Largest rounds × items an action distribution may span (1.6 GB of probabilities).
const MAX_CELLS: usize = 200_000_000;
/// Largest item id and position the logs may name.
const MAX_ITEMS: usize = 10_000_000;
const MAX_POSITIONS: usize = 1000;

#[derive(Debug, Clone, Copy)]
pub struct OpeOptions {
    /// Reward model: each (item, position) cell's click rate shrunk toward its position's
    /// with this many pseudo-rounds.
    pub prior_strength: f64,
    pub bootstrap: usize,
    pub seed: u64,
}

impl Default for OpeOptions {
    fn default() -> Self {
        Self { prior_strength: 100.0, bootstrap: 1000, seed: 12345 }
    }
}

pub const ESTIMATORS: [&str; 5] = ["ips", "snips", "dm", "dr", "sndr"];

#[derive(Debug, Clone, Serialize)]
pub struct OpeReport {
    pub logs: String,
    pub rounds: usize,
    pub rewards: f64,
    /// The logging policy's own value: the mean logged reward.
    pub logged_value: f64,
    pub metrics: BTreeMap<&'static str, f64>,
    /// 95% percentile-bootstrap intervals (rounds resampled; the reward model is held
    /// fixed, so DM's interval leaves out the model's own error).
    pub ci95: BTreeMap<&'static str, [f64; 2]>,
    /// Per position (from 1): IPS and SNIPS over the rounds logged there.
    pub by_position: BTreeMap<u32, BTreeMap<&'static str, f64>>,
    pub weights: WeightStats,
    pub reward_model: String,
}

/// How far the target policy is from the logging one: large weights mean noisy estimates.
#[derive(Debug, Clone, Serialize)]
pub struct WeightStats {
    pub mean: f64,
    pub max: f64,
    /// (Σ w)² / Σ w²: how many rounds the weighted sample is worth.
    pub effective_rounds: f64,
}

fn bad_line(path: &Path, line: u64, reason: String) -> EvalError {
    EvalError::BadLine { path: path.to_owned(), line, reason }
}

fn csv_reader(path: &Path) -> Result<csv::Reader<Box<dyn Read>>, EvalError> {
    let file = std::fs::File::open(path).map_err(|source| EvalError::Io { path: path.to_owned(), source })?;
    let input: Box<dyn Read> = match path.extension().is_some_and(|e| e == "gz") {
        true => Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file))),
        false => Box::new(std::io::BufReader::new(file)),
    };
    Ok(csv::Reader::from_reader(input))
}

/// Column positions by header name, or an error listing the columns there are.
fn columns<R: Read>(reader: &mut csv::Reader<R>, path: &Path, names: &[&str]) -> Result<Vec<usize>, EvalError> {
    let headers = reader.headers().map_err(|e| EvalError::Input(format!("{}: {e}", path.display())))?.clone();
    names
        .iter()
        .map(|name| {
            headers.iter().position(|h| h == *name).ok_or_else(|| {
                let found: Vec<&str> = headers.iter().collect();
                EvalError::Input(format!("{}: no `{name}` column (columns: {})", path.display(), found.join(", ")))
            })
        })
        .collect()
}

/// Reads every row of a CSV as the named fields parsed to numbers; `check` may refuse one.
fn read_numbers(
    path: &Path,
    names: &[&str],
    mut row: impl FnMut(&[f64]) -> Result<(), String>,
) -> Result<u64, EvalError> {
    let mut reader = csv_reader(path)?;
    let at = columns(&mut reader, path, names)?;
    let mut values = vec![0f64; names.len()];
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    loop {
        let line = match reader.read_record(&mut record) {
            Ok(true) => record.position().map_or(0, csv::Position::line),
            Ok(false) => return Ok(rows),
            Err(e) => return Err(bad_line(path, e.position().map_or(0, csv::Position::line), e.to_string())),
        };
        rows += 1;
        for ((value, &column), name) in values.iter_mut().zip(&at).zip(names) {
            let text = record.get(column).unwrap_or("").trim();
            *value = text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad_line(path, line, format!("field `{name}`: `{text}` is not a number")))?;
        }
        row(&values).map_err(|reason| bad_line(path, line, reason))?;
    }
}

/// The campaign folder's rounds (its one CSV besides `item_context.csv`), in file order.
pub fn read_logs(dir: &Path) -> Result<Logs, EvalError> {
    let entries = std::fs::read_dir(dir).map_err(|source| EvalError::Io { path: dir.to_owned(), source })?;
    let mut csvs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv") && !p.ends_with("item_context.csv"))
        .collect();
    csvs.sort();
    let file = match csvs.as_slice() {
        [one] => one.clone(),
        [] => return Err(EvalError::Input(format!("{}: no CSV of logged rounds", dir.display()))),
        many => {
            let names: Vec<String> = many.iter().map(|p| p.display().to_string()).collect();
            return Err(EvalError::Input(format!(
                "{}: several CSVs, expected one: {}",
                dir.display(),
                names.join(", ")
            )));
        }
    };
    let mut n_items = 0usize;
    let context = dir.join("item_context.csv");
    read_numbers(&context, &["item_id"], |v| {
        n_items = n_items.max(index(v[0], "item_id", MAX_ITEMS)? + 1);
        Ok(())
    })?;
    let mut rounds = Vec::new();
    read_numbers(&file, &["item_id", "position", "click", "propensity_score"], |v| {
        let item = index(v[0], "item_id", MAX_ITEMS)?;
        if item >= n_items {
            return Err(format!("field `item_id`: {item} is not in item_context.csv ({n_items} items)"));
        }
        let position = index(v[1], "position", MAX_POSITIONS)?;
        if position == 0 {
            return Err("field `position`: positions count from 1".into());
        }
        if v[2] < 0.0 {
            return Err(format!("field `click`: {} is negative", v[2]));
        }
        if !(v[3] > 0.0 && v[3] <= 1.0) {
            return Err(format!("field `propensity_score`: {} is not in (0, 1]", v[3]));
        }
        rounds.push(Logged { item: item as u32, position: position as u32 - 1, reward: v[2], propensity: v[3] });
        Ok(())
    })?;
    if rounds.is_empty() {
        return Err(EvalError::Input(format!("{}: no rounds", file.display())));
    }
    let n_positions = rounds.iter().map(|r| r.position as usize + 1).max().unwrap_or(1);
    Ok(Logs { file, rounds, n_items, n_positions })
}

fn index(value: f64, name: &str, limit: usize) -> Result<usize, String> {
    match value >= 0.0 && value.fract() == 0.0 && value <= limit as f64 {
        true => Ok(value as usize),
        false => Err(format!("field `{name}`: {value} is not an integer between 0 and {limit}")),
    }
}

/// The target policy's action distribution at the logged rounds' positions (rows for other
/// positions are read and skipped); each round's probabilities at its logged position must
/// sum to 1 (within 1e-3: files round them).
pub fn read_action_dist(path: &Path, logs: &Logs) -> Result<ActionDist, EvalError> {
    let (n_rounds, n_items) = (logs.rounds.len(), logs.n_items);
    if n_rounds.saturating_mul(n_items) > MAX_CELLS {
        return Err(EvalError::Input(format!(
            "{} rounds × {n_items} items is more than {MAX_CELLS} probabilities; split the logs",
            n_rounds
        )));
    }
    let mut dist = ActionDist { n_items, probs: vec![0.0; n_rounds * n_items] };
    read_numbers(path, &["round", "item", "position", "prob"], |v| {
        let round = index(v[0], "round", n_rounds.saturating_sub(1))?;
        let item = index(v[1], "item", n_items.saturating_sub(1))?;
        let position = index(v[2], "position", MAX_POSITIONS)?;
        if !(0.0..=1.0).contains(&v[3]) {
            return Err(format!("field `prob`: {} is not a probability", v[3]));
        }
        if logs.rounds[round].position as usize == position {
            dist.probs[round * n_items + item] = v[3];
        }
        Ok(())
    })?;
    for (round, logged) in logs.rounds.iter().enumerate() {
        let sum: f64 = (0..n_items as u32).map(|item| dist.prob(round, item)).sum();
        if (sum - 1.0).abs() > 1e-3 {
            return Err(EvalError::Input(format!(
                "{}: the probabilities of round {round} at position {} (from 0; the logs' {}) sum to {sum:.6}, not 1",
                path.display(),
                logged.position,
                logged.position + 1
            )));
        }
    }
    Ok(dist)
}

/// Per-round terms every estimator is built from.
struct Terms {
    weight: Vec<f64>,
    reward: Vec<f64>,
    /// Σ_a π(a, k_t | t) q̂(a, k_t).
    direct: Vec<f64>,
    /// q̂(a_t, k_t).
    factual: Vec<f64>,
}

impl Terms {
    fn estimate(&self, rounds: &mut dyn Iterator<Item = usize>) -> [f64; 5] {
        let (mut n, mut w, mut wr, mut dm, mut correction) = (0f64, 0f64, 0f64, 0f64, 0f64);
        for t in rounds {
            n += 1.0;
            w += self.weight[t];
            wr += self.weight[t] * self.reward[t];
            dm += self.direct[t];
            correction += self.weight[t] * (self.reward[t] - self.factual[t]);
        }
        // Without weight (the target never picks what was logged) the self-normalised
        // estimators are undefined: NaN, `null` in JSON.
        let mean_w = w / n;
        let sndr = if mean_w > 0.0 { (dm + correction / mean_w) / n } else { f64::NAN };
        [wr / n, if w > 0.0 { wr / w } else { f64::NAN }, dm / n, (dm + correction) / n, sndr]
    }
}

/// q̂(item, position): the cell's reward rate shrunk toward its position's.
fn reward_model(logs: &Logs, strength: f64) -> Vec<f64> {
    let (n_items, n_positions) = (logs.n_items, logs.n_positions);
    let mut cells = vec![(0f64, 0f64); n_items * n_positions];
    let mut positions = vec![(0f64, 0f64); n_positions];
    for r in &logs.rounds {
        let cell = &mut cells[r.item as usize * n_positions + r.position as usize];
        *cell = (cell.0 + r.reward, cell.1 + 1.0);
        let at = &mut positions[r.position as usize];
        *at = (at.0 + r.reward, at.1 + 1.0);
    }
    let position_rate: Vec<f64> = positions.iter().map(|&(sum, n)| if n > 0.0 { sum / n } else { 0.0 }).collect();
    cells
        .iter()
        .enumerate()
        .map(|(i, &(sum, n))| (sum + strength * position_rate[i % n_positions]) / (n + strength).max(f64::MIN_POSITIVE))
        .collect()
}

pub fn evaluate(logs: &Logs, dist: &ActionDist, options: &OpeOptions) -> OpeReport {
    let q = reward_model(logs, options.prior_strength);
    let n_positions = logs.n_positions;
    let n = logs.rounds.len();
    let mut terms = Terms { weight: vec![0.0; n], reward: vec![0.0; n], direct: vec![0.0; n], factual: vec![0.0; n] };
    for (t, r) in logs.rounds.iter().enumerate() {
        let k = r.position;
        terms.weight[t] = dist.prob(t, r.item) / r.propensity;
        terms.reward[t] = r.reward;
        terms.factual[t] = q[r.item as usize * n_positions + k as usize];
        // Over the probabilities' own sum (files round them), as obp does.
        let (mut expected, mut total) = (0f64, 0f64);
        for a in 0..logs.n_items as u32 {
            let p = dist.prob(t, a);
            expected += p * q[a as usize * n_positions + k as usize];
            total += p;
        }
        terms.direct[t] = if total > 0.0 { expected / total } else { 0.0 };
    }
    let point = terms.estimate(&mut (0..n));
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut samples: Vec<[f64; 5]> = (0..options.bootstrap)
        .map(|_| {
            let picks: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            terms.estimate(&mut picks.into_iter())
        })
        .collect();
    let mut ci95 = BTreeMap::new();
    for (e, name) in ESTIMATORS.iter().enumerate() {
        samples.sort_by(|a, b| a[e].total_cmp(&b[e]));
        let at = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).map_or(f64::NAN, |s| s[e]);
        ci95.insert(*name, [at(0.025), at(0.975)]);
    }
    let mut by_position = BTreeMap::new();
    for k in 0..n_positions as u32 {
        if !logs.rounds.iter().any(|r| r.position == k) {
            continue;
        }
        let estimate = terms.estimate(&mut (0..n).filter(|&t| logs.rounds[t].position == k));
        by_position.insert(k + 1, BTreeMap::from([("ips", estimate[0]), ("snips", estimate[1])]));
    }
    let (sum_w, sum_w2) = terms.weight.iter().fold((0f64, 0f64), |(s, s2), &w| (s + w, s2 + w * w));
    let rewards: f64 = terms.reward.iter().sum();
    OpeReport {
        logs: logs.file.display().to_string(),
        rounds: n,
        rewards,
        logged_value: rewards / n as f64,
        metrics: ESTIMATORS.iter().copied().zip(point).collect(),
        ci95,
        by_position,
        weights: WeightStats {
            mean: sum_w / n as f64,
            max: terms.weight.iter().copied().fold(0.0, f64::max),
            effective_rounds: if sum_w2 > 0.0 { sum_w * sum_w / sum_w2 } else { 0.0 },
        },
        reward_model: format!(
            "each (item, position) cell's reward rate shrunk toward its position's with {} pseudo-rounds",
            options.prior_strength
        ),
    }
}

#[cfg(test)]
mod tests;
