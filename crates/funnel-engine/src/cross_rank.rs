//! The cross-encoder stage of search: a query's best candidates after the ranker,
//! reordered by a model that reads the query and each item's text together.

use std::sync::Arc;

use funnel_core::Candidate;
use serde_json::{Value, json};

use crate::{PairScorer, RequestContext};

/// A cross-encoder shared by the threads serving requests.
pub type Reranker = Arc<dyn PairScorer + Send + Sync>;

/// Reorders the first `depth` of `candidates` (best first) by `scorer`'s score of the
/// query and each item's passage. The block keeps its scores, handed out in the new
/// order, so it stays above the rest and later rules see the same score range. Returns
/// what the trace shows, or the scorer's error (the order is then left as it was).
pub(crate) fn rerank(
    ctx: &RequestContext<'_>,
    scorer: &dyn PairScorer,
    (query, passages): (&str, &[String]),
    candidates: &mut [Candidate],
    depth: usize,
) -> Result<Value, String> {
    let depth = depth.min(candidates.len());
    let block = &mut candidates[..depth];
    if block.is_empty() {
        return Ok(json!({ "depth": 0 }));
    }
    let texts: Vec<&str> = block.iter().map(|c| passages.get(c.item as usize).map_or("", String::as_str)).collect();
    let scores = scorer.score(query, &texts)?;
    if scores.len() != block.len() {
        return Err(format!("{} scores for {} documents", scores.len(), block.len()));
    }
    let before: Vec<u32> = block.iter().map(|c| c.item).collect();
    let mut order: Vec<usize> = (0..block.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let reordered: Vec<Candidate> = order
        .iter()
        .zip(block.iter())
        .map(|(&from, kept)| Candidate { score: kept.score, ..block[from].clone() })
        .collect();
    block.clone_from_slice(&reordered);
    let catalog = &ctx.snapshot.catalog;
    Ok(json!({
        "model": scorer.name(),
        "depth": block.len(),
        "top": order.iter().take(20).map(|&from| json!({
            "id": catalog.get(before[from]).id,
            "cross_encoder_score": scores[from],
            "rank_before": from + 1,
        })).collect::<Vec<_>>(),
    }))
}
