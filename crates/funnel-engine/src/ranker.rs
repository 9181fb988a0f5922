//! Rankers. The first one orders by the merged source score; learned rankers come
//! behind the same trait.

use funnel_core::Candidate;
use serde_json::{Value, json};

use crate::{Ranker, RequestContext};

pub(crate) fn by_name(name: &str) -> Box<dyn Ranker> {
    match name {
        "score" => Box::new(ByScore),
        other => unreachable!("config validation admits only known rankers, got {other}"),
    }
}

/// Orders by the merged score (the surface's `merge`: weighted normalised source scores,
/// or reciprocal ranks; ties by item index).
struct ByScore;

impl Ranker for ByScore {
    fn name(&self) -> &'static str {
        "score"
    }

    fn rank(&self, _ctx: &RequestContext<'_>, candidates: &mut Vec<Candidate>) -> Value {
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        json!({ "order": "merged source score (see the surface's merge)" })
    }
}
