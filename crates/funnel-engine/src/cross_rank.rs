//! The cross-encoder stage of search: a query's best candidates after the ranker,
//! reordered by a model that reads the query and each item's text together.

use std::sync::Arc;

use funnel_core::Candidate;
use funnel_text::fusion::blend;
use serde_json::{Value, json};

use crate::{PairScorer, RequestContext};

/// A cross-encoder shared by the threads serving requests.
pub type Reranker = Arc<dyn PairScorer + Send + Sync>;

/// Where each candidate of a reordered block came from: its former position (0-based)
/// and the model's score.
pub(crate) struct Moved {
    pub from: Vec<usize>,
    pub scores: Vec<f32>,
    /// The model's weight in the order (1: the model alone).
    pub weight: f32,
    /// Below weight 1, the blended score that ordered each, in the new order.
    pub blended: Option<Vec<f32>>,
}

/// Reorders `block` (best first) by `scorer`'s score of the query and each item's
/// passage, best first (a NaN score counts as the lowest; ties keep the ranker's order);
/// with `weight` below 1, by `weight` × that score + (1 − `weight`) × the ranker's, each
/// min-max normalised over the block.
/// The block keeps its scores, handed out in the new order, so it stays above the rest
/// and later rules see the same score range. On the scorer's error the block is left as
/// it was.
pub(crate) fn rerank(
    scorer: &dyn PairScorer,
    (query, passages): (&str, &[String]),
    block: &mut [Candidate],
    weight: f32,
) -> Result<Moved, String> {
    if block.is_empty() {
        return Ok(Moved { from: Vec::new(), scores: Vec::new(), weight, blended: None });
    }
    let texts: Vec<&str> = block.iter().map(|c| passages.get(c.item as usize).map_or("", String::as_str)).collect();
    let raw = scorer.score(query, &texts)?;
    if raw.len() != block.len() {
        return Err(format!("{} scores for {} documents", raw.len(), block.len()));
    }
    let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
    let order: Vec<f32> = if weight >= 1.0 {
        raw.iter().map(|&s| key(s)).collect()
    } else {
        blend(&block.iter().map(|c| c.score).collect::<Vec<_>>(), &raw, weight)
    };
    let mut from: Vec<usize> = (0..block.len()).collect();
    from.sort_by(|&a, &b| order[b].total_cmp(&order[a]).then(a.cmp(&b)));
    let reordered: Vec<Candidate> =
        from.iter().zip(block.iter()).map(|(&f, kept)| Candidate { score: kept.score, ..block[f].clone() }).collect();
    block.clone_from_slice(&reordered);
    let scores = from.iter().map(|&f| raw[f]).collect();
    let blended = (weight < 1.0).then(|| from.iter().map(|&f| order[f]).collect());
    Ok(Moved { from, scores, weight, blended })
}

/// The trace of a reordered block: the model, and per item (the first 20) its model
/// score and its rank before (1-based over the whole list).
pub(crate) fn describe(
    ctx: &RequestContext<'_>,
    scorer: &dyn PairScorer,
    block: &[Candidate],
    moved: &Moved,
    after_navigational: bool,
) -> Value {
    let offset = 1 + usize::from(after_navigational);
    let catalog = &ctx.snapshot.catalog;
    json!({
        "model": scorer.name(),
        "depth": block.len(),
        "weight": moved.weight,
        "kept_navigational_first": after_navigational,
        "top": block.iter().zip(&moved.from).zip(&moved.scores).enumerate().take(20).map(|(n, ((c, &from), &score))| {
            let mut entry = json!({
                "id": catalog.get(c.item).id,
                "cross_encoder_score": score,
                "rank_before": from + offset,
            });
            if let Some(blended) = &moved.blended {
                entry["blended_score"] = json!(blended[n]);
            }
            entry
        }).collect::<Vec<_>>(),
    })
}
