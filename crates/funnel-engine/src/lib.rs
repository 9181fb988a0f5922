//! The engine: builds immutable snapshots from the log (`train`) and answers requests
//! against one snapshot through configured stages:
//! candidate sources → ranker → cross-encoder (search) → rules → exploration.
//!
//! Plain synchronous Rust: no HTTP, no async runtime, no argument parsing. Time and
//! randomness come in with the request; the same snapshot, request and seed give the
//! same slate.

mod batching;
mod catalog;
mod cf;
mod config;
mod content;
mod cross_rank;
mod engine;
mod explore;
mod features;
mod feedback;
mod intent;
mod learn;
mod linucb;
mod pipeline;
mod ranker;
mod request;
mod rules;
mod segments;
mod snapshot;
mod sources;
mod train;
mod understand;

pub use batching::BatchingEmbedder;
pub use catalog::{Catalog, CatalogItem};
pub use cf::{CfModel, Collaborative, TowerFeatures};
pub use config::{
    ConfigError, ContentConfig, EngineConfig, MAX_RERANK_DEPTH, Merge, RankerTrainConfig, SearchConfig, SegmentConfig,
    SourceConfig, SurfaceConfig, TrainConfig,
};
pub use content::{ContentBuild, ContentIndex, PairScorer, TextEmbedder, content_text};
pub use cross_rank::Reranker;
pub use engine::{Engine, QueryEmbedder, ServingModels};
pub use features::{FEATURE_VERSION, FeatureSchema, Proposals};
pub use feedback::{Counts, Feedback};
pub use intent::{INTENTS, IntentModel, IntentReport, LabelledQuery, read_labels};
pub use linucb::LinUcb;
pub use pipeline::{CandidateSource, ExplorationPolicy, Ranker, Rule};
pub use ranker::{RankerModel, RankerReport};
pub use request::{Request, RequestContext, Response};
pub use segments::{Segment, Segments};
pub use snapshot::{Manifest, Snapshot};
pub use train::{TrainReport, build_text_index, build_vocabulary, snapshot_in_memory, train, train_with_embedder};
pub use understand::{EntityConfig, EntityMode, Intent, QueryFacets, Understanding};

/// Errors of the engine. The first group is the caller's to fix (a 4xx over HTTP);
/// the rest are internal.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("field `{field}`: {reason}")]
    BadRequest { field: &'static str, reason: String },
    #[error("unknown item `{0}`")]
    UnknownItem(String),
    #[error("unknown surface `{0}` (configured: {1})")]
    UnknownSurface(String, String),
    #[error("no snapshot yet: run `funnel train` first")]
    NoSnapshot,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] funnel_store::StoreError),
    #[error("content vectors: {0}")]
    Content(String),
    #[error("learned ranker: {0}")]
    Ranker(String),
    #[error("snapshot {path}: {reason}")]
    Snapshot { path: std::path::PathBuf, reason: String },
}

impl EngineError {
    /// Whether the caller caused this error (bad input) rather than the system.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::BadRequest { .. }
                | Self::UnknownItem(_)
                | Self::UnknownSurface(..)
                | Self::NoSnapshot
                | Self::Config(_)
        )
    }
}
