//! The learned ranker's features of (request, candidate): a named, versioned schema, and
//! the one function that computes it, called both to build training sets and to serve.

use funnel_core::Candidate;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::RequestContext;

/// Bumped whenever a feature's meaning or the order of the names changes: a model trained
/// on one version cannot score rows of another.
pub const FEATURE_VERSION: u32 = 1;

/// Features after the per-source pairs, in column order.
const COMMON: [&str; 11] = [
    // How many of the surface's sources proposed the candidate.
    "source.count",
    // The merged score (the surface's `merge` over all sources).
    "merged.score",
    // ln(1 + time-decayed popularity), less that of the most popular item.
    "item.popularity",
    // ln(1 + positive events) (not decayed), less the most of any item.
    "item.interactions",
    // Mean rating of the item (0: none).
    "item.mean_rating",
    // The user's own mean rating (0: none), and the item's mean less it.
    "user.mean_rating",
    "item.mean_rating_over_user",
    // Days since the item was created (−1: unknown).
    "item.age_days",
    // The largest share of the user's history in one of the item's categories.
    "item.category_affinity",
    // ln((1 + items in the user's history) / (1 + the mean user's)).
    "user.history",
    // Mean item.popularity over the user's history (0 without one).
    "user.mean_popularity",
];

/// The names of a surface's features, in column order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSchema {
    pub version: u32,
    pub names: Vec<String>,
}

impl FeatureSchema {
    /// For a surface with these sources (in its configured order): each source's own
    /// score (over its best in the request) and reciprocal rank (0 when it did not propose the candidate), then the
    /// common features.
    pub fn for_sources<'a>(sources: impl IntoIterator<Item = &'a str>) -> Self {
        let mut names: Vec<String> = Vec::new();
        for (slot, source) in sources.into_iter().enumerate() {
            // A source listed twice gets its slot number.
            let base = match names.contains(&format!("source.{source}.score")) {
                true => format!("source.{source}#{slot}"),
                false => format!("source.{source}"),
            };
            names.push(format!("{base}.score"));
            names.push(format!("{base}.reciprocal_rank"));
        }
        names.extend(COMMON.iter().map(|&n| n.to_owned()));
        Self { version: FEATURE_VERSION, names }
    }

    pub fn width(&self) -> usize {
        self.names.len()
    }
}

/// What each source said about each merged candidate (rows in merge order).
#[derive(Debug, Default)]
pub struct Proposals {
    sources: usize,
    /// (source score, 0-based rank in that source) per row and source; rank `u32::MAX`:
    /// not proposed by that source.
    cells: Vec<(f32, u32)>,
}

impl Proposals {
    pub(crate) fn new(sources: usize) -> Self {
        Self { sources, cells: Vec::new() }
    }

    /// A row for a newly merged candidate.
    pub(crate) fn push_row(&mut self) {
        self.cells.extend(std::iter::repeat_n((0.0, u32::MAX), self.sources));
    }

    /// Records a source's proposal; a source proposing an item twice keeps its first
    /// (better) one.
    pub(crate) fn set(&mut self, row: usize, source: usize, score: f32, rank: usize) {
        let cell = &mut self.cells[row * self.sources + source];
        if cell.1 == u32::MAX {
            *cell = (score, rank as u32);
        }
    }

    fn row(&self, row: usize) -> &[(f32, u32)] {
        &self.cells[row * self.sources..(row + 1) * self.sources]
    }

    pub fn rows(&self) -> usize {
        self.cells.len().checked_div(self.sources).unwrap_or(0)
    }
}

/// The features of each candidate (row-major, `schema.width()` per row). `candidates[i]`
/// must be proposal row `i` (merge order, before ranking) with its merged score.
pub fn compute(ctx: &RequestContext<'_>, candidates: &[Candidate], proposals: &Proposals) -> Vec<f32> {
    debug_assert_eq!(candidates.len(), proposals.rows());
    let snapshot = ctx.snapshot;
    // Volume-free: relative to the most popular item, the user's history relative to the
    // mean user's, each source's score relative to its best in this request. A model
    // trained on a snapshot of the past (less data) then reads the same scale when serving.
    let stats = &snapshot.popularity;
    let top = stats.log_top();
    let popularity = |item: u32| stats.log_score(item) - top;
    let most_interactions = (stats.most_interactions as f32).ln_1p();
    let histories = &snapshot.histories;
    let mean_history = histories.items.len() as f32 / histories.users.len().max(1) as f32;
    let history = ctx.request.user.as_deref().map_or(&[][..], |u| snapshot.histories.of(u));
    let mut per_category: FxHashMap<u32, u32> = FxHashMap::default();
    for &item in history {
        for &category in &snapshot.catalog.get(item).categories {
            *per_category.entry(category).or_default() += 1;
        }
    }
    let mean_popularity = match history.len() {
        0 => 0.0,
        n => history.iter().map(|&i| popularity(i)).sum::<f32>() / n as f32,
    };
    let user_mean = ctx.request.user.as_deref().map_or(f32::NAN, |u| snapshot.histories.mean_rating(u));
    let mut best = vec![0f32; proposals.sources];
    for row in 0..candidates.len() {
        for (best, &(score, rank)) in best.iter_mut().zip(proposals.row(row)) {
            if rank != u32::MAX {
                *best = best.max(score);
            }
        }
    }
    let width = 2 * proposals.sources + COMMON.len();
    let mut rows = Vec::with_capacity(candidates.len() * width);
    for (row, candidate) in candidates.iter().enumerate() {
        let cells = proposals.row(row);
        for (&(score, rank), &best) in cells.iter().zip(&best) {
            let proposed = rank != u32::MAX;
            rows.push(if proposed && best > 0.0 { score / best } else { 0.0 });
            rows.push(if proposed { 1.0 / (1.0 + rank as f32) } else { 0.0 });
        }
        let item = snapshot.catalog.get(candidate.item);
        let affinity = item.categories.iter().filter_map(|c| per_category.get(c)).max().copied().unwrap_or(0);
        let age_days = item.created_at.map_or(-1.0, |t| (ctx.now.saturating_sub(t) as f32 / 86_400.0).max(0.0));
        rows.extend([
            cells.iter().filter(|(_, rank)| *rank != u32::MAX).count() as f32,
            candidate.score,
            popularity(candidate.item),
            stats.interactions.get(candidate.item as usize).map_or(0.0, |&n| (n as f32).ln_1p()) - most_interactions,
            stats.mean_rating.get(candidate.item as usize).copied().unwrap_or(f32::NAN),
            user_mean,
            stats.mean_rating.get(candidate.item as usize).map_or(f32::NAN, |&m| m - user_mean),
            age_days,
            if history.is_empty() { 0.0 } else { affinity as f32 / history.len() as f32 },
            ((1.0 + history.len() as f32) / (1.0 + mean_history)).ln(),
            mean_popularity,
        ]);
    }
    // Rows must be finite for the trees (a source could return an infinite score).
    for value in &mut rows {
        if !value.is_finite() {
            *value = 0.0;
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_each_source_then_the_common_features() {
        let schema = FeatureSchema::for_sources(["cf", "popular", "cf"]);
        assert_eq!(
            &schema.names[..4],
            ["source.cf.score", "source.cf.reciprocal_rank", "source.popular.score", "source.popular.reciprocal_rank"]
        );
        assert_eq!(schema.names[4], "source.cf#2.score", "a repeated source gets its slot");
        assert_eq!(schema.width(), 6 + COMMON.len());
        assert_eq!(schema.version, FEATURE_VERSION);
    }
}
