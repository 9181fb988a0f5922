//! Response bodies shared by the HTTP API and the CLI's `--json` output.

use funnel_core::{ScoredItem, Trace};
use serde::Serialize;

/// A served slate: `{"items": [{"id", "score", "propensity", "position_propensity"}, …], "trace": …,
/// "snapshot": …, "seed": …}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SlateBody {
    pub items: Vec<ScoredItem>,
    /// The spell-corrected query that was searched instead of the one given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub did_you_mean: Option<String>,
    /// Present when the request asked to explain: what every stage did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
    /// The snapshot that served the request.
    pub snapshot: String,
    /// The seed of the randomised stages: the same request with this seed gives this slate.
    pub seed: u64,
}

impl SlateBody {
    pub fn new(response: funnel_engine::Response, seed: u64) -> Self {
        Self {
            items: response.items,
            did_you_mean: response.did_you_mean,
            trace: response.trace,
            snapshot: response.snapshot,
            seed,
        }
    }
}

/// The answer to an accepted write: every record is durable when this is sent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub accepted: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    /// The snapshot being served; null until the first `funnel train`.
    pub snapshot: Option<String>,
    pub items: Option<usize>,
}
