//! A trained ensemble: prediction, feature importance, saving and loading.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::objective::{self, Objective};
use crate::{Dataset, Forest, GbdtError, Tree, group_ranges};

const FORMAT: &str = "funnel-gbdt";
const VERSION: u32 = 1;

/// Trees whose leaf values add up, on top of `init_score`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub objective: Objective,
    pub init_score: f64,
    /// Features per row the model was trained on.
    pub width: usize,
    pub trees: Vec<Tree>,
}

/// How much each feature is used: splits on it, and the loss reduction they bought.
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    pub feature: usize,
    pub splits: usize,
    pub gain: f64,
}

/// Where a loaded model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFile {
    /// Saved by [`Model::save`].
    Funnel,
    /// LightGBM's text format (`model.txt`).
    LightGbm,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    version: u32,
    model: Model,
}

impl Model {
    /// The raw score of one row (features in training order; missing trailing ones are 0).
    pub fn predict(&self, row: &[f32]) -> f64 {
        // Added in tree order onto the initial score, as `Forest` does.
        self.trees.iter().fold(self.init_score, |score, t| score + t.predict(row))
    }

    /// Scores of a row-major matrix with `width` features per row (through a [`Forest`];
    /// build one with [`Model::compile`] to score many batches).
    pub fn predict_rows(&self, features: &[f32], width: usize) -> Vec<f64> {
        self.compile().predict_rows(features, width)
    }

    /// Renumbers the features: feature `f` becomes `f - by`. For a LightGBM model trained
    /// on SVMlight files (LightGBM numbers their features as written, from 0; Funnel
    /// stores `1:` as its first column), `by` is 1.
    pub fn shift_features(&mut self, by: usize) -> Result<(), GbdtError> {
        if let Some(f) = self.trees.iter().flat_map(|t| &t.feature).find(|&&f| (f as usize) < by) {
            return Err(GbdtError::Input(format!("the model splits on feature {f}, which the shift by {by} removes")));
        }
        for tree in &mut self.trees {
            tree.feature.iter_mut().for_each(|f| *f -= by as u32);
        }
        self.width = self.width.saturating_sub(by);
        Ok(())
    }

    /// The model packed for fast batch scoring.
    pub fn compile(&self) -> Forest {
        Forest::new(self)
    }

    /// Features by total gain, most important first (unused features left out).
    pub fn importance(&self) -> Vec<Importance> {
        let mut all: Vec<Importance> =
            (0..self.width).map(|feature| Importance { feature, splits: 0, gain: 0.0 }).collect();
        for tree in &self.trees {
            for (&f, &gain) in tree.feature.iter().zip(&tree.gain) {
                all[f as usize].splits += 1;
                all[f as usize].gain += gain;
            }
        }
        all.retain(|i| i.splits > 0);
        all.sort_by(|a, b| b.gain.total_cmp(&a.gain).then(a.feature.cmp(&b.feature)));
        all
    }

    pub fn save(&self, path: &Path) -> Result<(), GbdtError> {
        let file = File { format: FORMAT.into(), version: VERSION, model: self.clone() };
        let text = serde_json::to_vec(&file).map_err(|e| GbdtError::Internal(format!("serialising: {e}")))?;
        std::fs::write(path, text).map_err(|source| GbdtError::Io { path: path.to_owned(), source })
    }

    /// Reads a model saved by [`Model::save`], or a LightGBM text model file.
    pub fn load(path: &Path) -> Result<Model, GbdtError> {
        Model::read(path).map(|(model, _)| model)
    }

    /// Like [`Model::load`], also saying which kind of file it was (a LightGBM model may
    /// need its features renumbered, see [`Model::shift_features`]).
    pub fn read(path: &Path) -> Result<(Model, ModelFile), GbdtError> {
        let text = std::fs::read(path).map_err(|source| GbdtError::Io { path: path.to_owned(), source })?;
        if let Ok(text) = std::str::from_utf8(&text)
            && crate::lightgbm::looks_like(text)
        {
            return Ok((crate::lightgbm::parse(path, text)?, ModelFile::LightGbm));
        }
        let bad = |reason: String| GbdtError::Format { path: path.to_owned(), reason };
        let file: File = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        if file.format != FORMAT || file.version != VERSION {
            return Err(bad(format!("format {} version {}, expected {FORMAT} {VERSION}", file.format, file.version)));
        }
        file.model.validate().map_err(bad)?;
        Ok((file.model, ModelFile::Funnel))
    }

    /// Checks a model read from elsewhere (a snapshot, say): a sane width, and trees that
    /// are trees over in-range features. The reason names the bad tree.
    pub fn validate(&self) -> Result<(), String> {
        if self.width > crate::MAX_FEATURES {
            return Err(format!("{} features (at most {})", self.width, crate::MAX_FEATURES));
        }
        for (t, tree) in self.trees.iter().enumerate() {
            tree.check(self.width).map_err(|reason| format!("tree {t}: {reason}"))?;
        }
        Ok(())
    }
}

impl Tree {
    /// Checks that every node and leaf is reachable by in-range indices.
    pub(crate) fn check(&self, width: usize) -> Result<(), String> {
        let nodes = self.feature.len();
        if [self.threshold.len(), self.left.len(), self.right.len(), self.gain.len()].iter().any(|&l| l != nodes) {
            return Err("node arrays differ in length".into());
        }
        if self.leaf_value.len() != nodes + 1 {
            return Err(format!("{} leaves for {nodes} nodes", self.leaf_value.len()));
        }
        // Every node but the root, and every leaf, has exactly one parent: a tree, not a
        // graph whose walks could repeat.
        let (mut node_parents, mut leaf_parents) = (vec![0u8; nodes], vec![0u8; nodes + 1]);
        for n in 0..nodes {
            if self.feature[n] as usize >= width {
                return Err(format!("node {n} splits on feature {} of {width}", self.feature[n]));
            }
            if self.threshold[n].is_nan() {
                return Err(format!("node {n} has a NaN threshold"));
            }
            for child in [self.left[n], self.right[n]] {
                let parents = if child >= 0 {
                    ((child as usize) > n && (child as usize) < nodes).then(|| &mut node_parents[child as usize])
                } else {
                    ((!child as usize) <= nodes).then(|| &mut leaf_parents[!child as usize])
                };
                match parents {
                    Some(count) if *count == 0 => *count = 1,
                    _ => return Err(format!("node {n} has child {child}")),
                }
            }
        }
        if nodes > 0 && (node_parents[1..].contains(&0) || leaf_parents.contains(&0)) {
            return Err("a node or leaf is not reachable from the root".into());
        }
        Ok(())
    }
}

pub(crate) fn higher_is_better(objective: Objective) -> bool {
    objective.is_ranking()
}

/// NDCG@k (ranking objectives; queries without a relevant document left out), RMSE
/// (regression) or log loss (binary) of `scores` on `data`.
pub(crate) fn validation_metric(objective: Objective, data: &Dataset, scores: &[f64], k: usize) -> f64 {
    let n = data.rows().max(1) as f64;
    match objective {
        Objective::Regression => (data.labels.iter().zip(scores).map(|(y, s)| (y - s).powi(2)).sum::<f64>() / n).sqrt(),
        Objective::Binary => {
            -data
                .labels
                .iter()
                .zip(scores)
                .map(|(&y, &s)| {
                    let p = (1.0 / (1.0 + (-s).exp())).clamp(1e-15, 1.0 - 1e-15);
                    if y > 0.0 { p.ln() } else { (1.0 - p).ln() }
                })
                .sum::<f64>()
                / n
        }
        Objective::RankNet | Objective::LambdaRank => mean_ndcg(&data.labels, &data.groups, scores, k),
    }
}

/// Mean NDCG@k over the groups that have a relevant document (gain 2^label − 1, ties by
/// row order).
pub fn mean_ndcg(labels: &[f64], groups: &[usize], scores: &[f64], k: usize) -> f64 {
    let mut total = 0.0;
    let mut counted = 0;
    for (start, len) in group_ranges(groups) {
        let labels = &labels[start..start + len];
        let inverse = objective::inverse_max_dcg(labels, k);
        if inverse == 0.0 {
            continue;
        }
        let scores = &scores[start..start + len];
        let mut order: Vec<usize> = (0..len).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let dcg: f64 =
            order.iter().take(k).enumerate().map(|(i, &d)| objective::gain(labels[d]) / (i as f64 + 2.0).log2()).sum();
        total += dcg * inverse;
        counted += 1;
    }
    if counted == 0 { 0.0 } else { total / counted as f64 }
}
