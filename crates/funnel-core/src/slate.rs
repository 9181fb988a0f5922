use serde::Serialize;

/// An item proposed by a candidate source, carried through ranking and re-ranking.
/// `item` is the snapshot's dense index of the item, not its external id.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub item: u32,
    /// Name of the source that proposed it first (after merging: the best-scoring one).
    pub source: &'static str,
    /// The source's own score (BM25, decayed count, …).
    pub source_score: f32,
    /// Current score: set by the ranker, read by rules and exploration.
    pub score: f32,
    /// Probability with which the exploration stage put this item in its position,
    /// given the positions above it.
    pub propensity: f32,
    /// Marginal probability that the exploration stage puts this item in this position.
    pub position_propensity: f32,
}

impl Candidate {
    pub fn new(item: u32, source: &'static str, source_score: f32) -> Self {
        Self { item, source, source_score, score: source_score, propensity: 1.0, position_propensity: 1.0 }
    }
}

/// One entry of a served slate, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoredItem {
    pub id: String,
    pub score: f32,
    /// The probability with which exploration put the item in its slot, given the slots
    /// above it (1 without exploration): log it with the impression
    /// (`context.propensity`) for off-policy evaluation.
    pub propensity: f32,
    /// The probability that exploration puts this item in this slot at all (1 without
    /// exploration): what position-wise estimators (IPS per position, the Open Bandit
    /// Dataset's `propensity_score`) divide by. Equal to `propensity` at the first slot.
    pub position_propensity: f32,
}

/// What one stage of a request did, for `explain=true`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StageTrace {
    /// `understand`, `candidates`, `rank`, `rules`, `explore`.
    pub stage: &'static str,
    /// The component that ran (source, ranker, rule or policy name).
    pub component: String,
    pub micros: u64,
    pub input: usize,
    pub output: usize,
    /// Free-form details: per-item scores, dropped ids and why, …
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Value,
}

/// A request's explanation: every stage in the order it ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Trace {
    pub snapshot: String,
    pub stages: Vec<StageTrace>,
}
