//! Rankers: `score` orders by the merged source score; `gbdt` scores every candidate with
//! gradient-boosted trees trained by `funnel train` on the surface's own candidates and
//! stored in the snapshot.

use funnel_core::Candidate;
use funnel_gbdt::{Forest, Model};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::features::{self, FeatureSchema, Proposals};
use crate::{EngineError, Merge, Ranker, RequestContext, Snapshot, SourceConfig, SurfaceConfig};

pub(crate) fn by_name(
    surface: &str,
    config: &SurfaceConfig,
    snapshot: &Snapshot,
) -> Result<Box<dyn Ranker>, EngineError> {
    match config.ranker.as_str() {
        "score" => Ok(Box::new(ByScore)),
        "gbdt" => Ok(Box::new(Learned::for_surface(surface, config, snapshot)?)),
        other => unreachable!("config validation admits only known rankers, got {other}"),
    }
}

/// A surface's trained ranker as the snapshot stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankerModel {
    pub schema: FeatureSchema,
    /// The candidate stage it was trained on.
    pub candidates: CandidateStage,
    pub model: Model,
    pub report: RankerReport,
}

/// What a surface's candidate stage is: changing any of it (a quota, a weight, the merge)
/// changes the ranks and merged scores a model reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateStage {
    pub sources: Vec<SourceConfig>,
    pub merge: Merge,
    pub rrf_k: f32,
    pub max_candidates: usize,
}

impl CandidateStage {
    pub fn of(surface: &SurfaceConfig) -> Self {
        Self {
            sources: surface.sources.clone(),
            merge: surface.merge,
            rrf_k: surface.rrf_k,
            max_candidates: surface.max_candidates,
        }
    }
}

/// How a ranker was trained, for the manifest and `funnel train`'s output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RankerReport {
    /// `time` (labels after a cut) or `holdout` (a seeded share of each user's events).
    pub split: String,
    /// Features as of this time (`time` split; the snapshot's time for `holdout`).
    pub features_as_of: i64,
    pub label: String,
    pub objective: String,
    /// Requests (users) and candidate rows trained on, and held out for early stopping.
    pub train_groups: usize,
    pub train_rows: usize,
    pub valid_groups: usize,
    pub trees: usize,
    /// NDCG@10 of the validation requests: the merged score's order, and the model's.
    pub valid_ndcg_merged: f64,
    pub valid_ndcg_model: f64,
    /// Features by total split gain, most important first.
    pub importance: Vec<(String, f64)>,
}

/// Orders by the merged score (the surface's `merge`: weighted normalised source scores,
/// or reciprocal ranks; ties by item index).
struct ByScore;

impl Ranker for ByScore {
    fn name(&self) -> &'static str {
        "score"
    }

    fn rank(&self, _ctx: &RequestContext<'_>, candidates: &mut Vec<Candidate>, _proposals: &Proposals) -> Value {
        sort(candidates);
        json!({ "order": "merged source score (see the surface's merge)" })
    }
}

fn sort(candidates: &mut [Candidate]) {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
}

/// Gradient-boosted trees over the feature schema.
struct Learned {
    forest: Forest,
    width: usize,
    trees: usize,
    version: u32,
}

impl Learned {
    /// The snapshot's model for `surface`, which must have been trained on the features
    /// this surface computes now (same sources in the same order, same version).
    fn for_surface(surface: &str, config: &SurfaceConfig, snapshot: &Snapshot) -> Result<Self, EngineError> {
        let problem = |reason: String| EngineError::Snapshot {
            path: std::path::PathBuf::from(&snapshot.manifest.id),
            reason: format!("surface `{surface}` ranks with `gbdt`, but {reason}; run `funnel train` to train it"),
        };
        let stored = snapshot.rankers.get(surface).ok_or_else(|| problem("the snapshot has no model for it".into()))?;
        let wanted = FeatureSchema::for_sources(config.sources.iter().map(|s| s.name.as_str()));
        if stored.schema != wanted {
            return Err(problem(format!(
                "its model was trained on other features (version {}: {}) than the surface computes now (version {}: {})",
                stored.schema.version,
                stored.schema.names.join(", "),
                wanted.version,
                wanted.names.join(", ")
            )));
        }
        let now = CandidateStage::of(config);
        if stored.candidates != now {
            let show = |stage: &CandidateStage| serde_json::to_string(stage).unwrap_or_default();
            return Err(problem(format!(
                "its model was trained on other candidates ({}) than the surface has now ({})",
                show(&stored.candidates),
                show(&now)
            )));
        }
        Ok(Self {
            forest: stored.model.compile(),
            width: wanted.width(),
            trees: stored.model.trees.len(),
            version: wanted.version,
        })
    }
}

impl Ranker for Learned {
    fn name(&self) -> &'static str {
        "gbdt"
    }

    fn rank(&self, ctx: &RequestContext<'_>, candidates: &mut Vec<Candidate>, proposals: &Proposals) -> Value {
        let rows = features::compute(ctx, candidates, proposals);
        let scores = self.forest.predict_rows(&rows, self.width);
        // Ties (trees give few distinct scores) keep the merged order.
        let mut order: Vec<(f64, Candidate)> = scores.into_iter().zip(candidates.drain(..)).collect();
        order.sort_by(|(a, x), (b, y)| b.total_cmp(a).then(y.score.total_cmp(&x.score)).then(x.item.cmp(&y.item)));
        candidates.extend(order.into_iter().map(|(score, mut candidate)| {
            candidate.score = score as f32;
            candidate
        }));
        json!({ "model": "gradient-boosted trees", "trees": self.trees, "features": self.width, "feature_version": self.version })
    }
}
