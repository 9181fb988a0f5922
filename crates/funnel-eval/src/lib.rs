//! Offline evaluation: ranking metrics (NDCG, MAP, MRR, recall, precision, hit rate),
//! beyond-accuracy measures (coverage, novelty, diversity, exposure Gini), paired
//! significance against a baseline, train/test splits, TREC run files, and the three
//! evaluations the CLI exposes: recommendation models on interaction files, text
//! retrieval on BEIR collections, and learning to rank on SVMlight files.
//!
//! It reads files and computes numbers; it prints nothing (the CLI renders reports).

pub mod beyond;
pub mod engine;
pub mod ltr;
pub mod metrics;
pub mod ope;
pub mod propensity;
pub mod recs;
mod report;
pub mod search;
pub mod split;
pub mod stats;
pub mod trec;

pub use report::{Report, Timing};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The input is not usable as given (the user's to fix).
    #[error("{0}")]
    Input(String),
    #[error("{}:{line}: {reason}", path.display())]
    BadLine { path: PathBuf, line: u64, reason: String },
    #[error(transparent)]
    Import(#[from] funnel_store::import::ImportError),
    #[error(transparent)]
    Model(#[from] funnel_models::ModelError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}
