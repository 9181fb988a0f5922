use std::collections::BTreeMap;

use funnel_core::{ScoredItem, Timestamp, Trace};
use rustc_hash::FxHashSet;

use crate::{Snapshot, Understanding};

/// Largest slate a request may ask for.
pub const MAX_K: usize = 1000;

/// One request to a surface. What it must carry depends on the surface's sources: a
/// `query` for text search, an `item` for "similar items"; `user` is always optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub surface: String,
    pub user: Option<String>,
    pub query: Option<String>,
    /// Search the query as typed, without spell correction.
    pub exact_query: bool,
    pub item: Option<String>,
    /// Attributes of this request (`country`, `device`, …) that pick the user's segments
    /// for the `segment` source, over the user's stored attributes of the same name.
    pub context: BTreeMap<String, String>,
    pub k: usize,
    pub explain: bool,
    /// Items the caller knows the user has seen since the snapshot was built.
    pub recently_seen: Vec<String>,
    /// The request's clock; defaults to the snapshot's `as_of`.
    pub now: Option<Timestamp>,
    /// Seed for any randomised stage; the same seed gives the same slate.
    pub seed: u64,
    /// This request's weights for some of the surface's sources, over the configured ones
    /// (hybrid search tuned per query: `bm25` 0.3, `dense` 0.7).
    pub weights: BTreeMap<String, f32>,
    /// How many of the best candidates the cross-encoder reorders, at most the surface's
    /// `rerank.cross_encoder_depth` (0: none); read only where one is loaded.
    pub rerank_depth: Option<usize>,
}

/// What every stage of one request can read.
#[derive(Debug)]
pub struct RequestContext<'a> {
    pub snapshot: &'a Snapshot,
    pub request: &'a Request,
    /// The query the sources search: the request's, after spell correction.
    pub query: Option<&'a str>,
    /// The query's intent and named categories, when there is a query.
    pub understanding: Option<Understanding>,
    /// The query's embedding, when a source reads it and the engine has an embedder.
    pub query_vector: Option<Vec<f32>>,
    pub now: Timestamp,
    /// Snapshot history plus `recently_seen`, as item indices.
    pub seen: FxHashSet<u32>,
    /// The anchor item of a "similar items" request.
    pub item: Option<u32>,
}

impl RequestContext<'_> {
    /// Whether a source may propose this item: servable and not seen.
    pub fn eligible(&self, item: u32) -> bool {
        self.snapshot.catalog.servable(item) && !self.seen.contains(&item) && Some(item) != self.item
    }
}

/// A served slate.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub items: Vec<ScoredItem>,
    /// The corrected query that was searched instead of the one typed, if any.
    pub did_you_mean: Option<String>,
    /// Filled when the request asked to explain.
    pub trace: Option<Trace>,
    /// Microseconds spent per stage, always filled (for latency metrics).
    pub stage_micros: Vec<(&'static str, u64)>,
    pub snapshot: String,
}
