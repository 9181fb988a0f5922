//! Recommendation models over a user × item interaction matrix (popularity, item-kNN,
//! EASE, implicit ALS, BPR, a two-tower network), behind one trait so that
//! the engine serves them and `funnel eval recs` compares them the same way.
//!
//! Models see only interned indices; ids, files and snapshots are the callers' business.

mod als;
mod bpr;
mod ease;
mod interactions;
mod knn;
mod linalg;
mod popularity;
mod two_tower;

pub use als::{Als, AlsConfig};
pub use bpr::{Bpr, BprConfig};
pub use ease::{Ease, EaseConfig};
pub use interactions::Interactions;
pub use knn::{ItemKnn, ItemKnnConfig};
pub use popularity::{MostPopular, RandomScores};
pub use two_tower::{TwoTower, TwoTowerConfig};

/// A model that scores every item for a user.
pub trait Recommender: Send + Sync {
    /// The name it is selected by (`pop`, `random`, …).
    fn name(&self) -> &'static str;

    /// Learns from the training interactions. Training is deterministic given `seed`.
    fn fit(&mut self, data: &Interactions, seed: u64) -> Result<(), ModelError>;

    /// Writes a score for every item into `out` (length `data.n_items()`); higher is
    /// better. `user` may have no training interactions (a cold start).
    fn score(&self, user: u32, data: &Interactions, out: &mut [f32]);

    /// Scores every item for a history of items alone (a user unseen in training, or one
    /// with events since), without retraining. Returns `false` when the model cannot
    /// score from a history (its users must have been trained).
    fn score_history(&self, _items: &[u32], _out: &mut [f32]) -> bool {
        false
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model `{name}` (available: {available})")]
    Unknown { name: String, available: String },
    #[error("model `{model}`: {reason}")]
    Invalid { model: &'static str, reason: String },
}

/// Models by name, as `--models` lists them.
pub const MODELS: &[&str] = &["pop", "random", "item-knn", "ease", "als", "bpr", "two-tower"];

pub fn by_name(name: &str) -> Result<Box<dyn Recommender>, ModelError> {
    match name {
        "pop" => Ok(Box::new(MostPopular::default())),
        "random" => Ok(Box::new(RandomScores::default())),
        "item-knn" => Ok(Box::new(ItemKnn::new(ItemKnnConfig::default()))),
        "ease" => Ok(Box::new(Ease::new(EaseConfig::default()))),
        "als" => Ok(Box::new(Als::new(AlsConfig::default()))),
        "bpr" => Ok(Box::new(Bpr::new(BprConfig::default()))),
        "two-tower" => Ok(Box::new(TwoTower::new(TwoTowerConfig::default()))),
        other => Err(ModelError::Unknown { name: other.to_owned(), available: MODELS.join(", ") }),
    }
}
