//! Candidate sources: collaborative filtering, content vectors, popularity, BM25 text
//! retrieval, "more like this".

use funnel_core::Candidate;

use crate::{CandidateSource, RequestContext};

pub(crate) fn by_name(name: &str) -> Box<dyn CandidateSource> {
    match name {
        "cf" => Box::new(CollaborativeFiltering("cf")),
        "cf-ease" => Box::new(CollaborativeFiltering("cf-ease")),
        "cf-item-knn" => Box::new(CollaborativeFiltering("cf-item-knn")),
        "cf-als" => Box::new(CollaborativeFiltering("cf-als")),
        "cf-consumed" => Box::new(CollaborativeFiltering("cf-consumed")),
        "content" => Box::new(Content),
        "segment" => Box::new(SegmentPopular),
        "popular" => Box::new(Popular),
        "unexplored" => Box::new(Unexplored),
        "bm25" => Box::new(Bm25),
        "dense" => Box::new(Dense),
        "similar" => Box::new(SimilarText),
        other => unreachable!("config validation admits only known sources, got {other}"),
    }
}

/// Items a collaborative-filtering model scores highest for the user's history (snapshot
/// history plus items seen since). A user without history gets none. `cf` is the
/// snapshot's configured model (`train.cf_model`); `cf-ease`, `cf-item-knn`, `cf-als`
/// name one model each, trained when a surface lists it (several can feed one ranker);
/// `cf-consumed` is the configured model over every rating, `train.min_rating` or not
/// (what users watch, where `cf` learns what they like).
struct CollaborativeFiltering(&'static str);

impl CandidateSource for CollaborativeFiltering {
    fn name(&self) -> &'static str {
        self.0
    }

    fn generate(&self, ctx: &RequestContext<'_>, limit: usize) -> Vec<Candidate> {
        let model = match self.0 {
            "cf" => ctx.snapshot.cf.as_ref(),
            named => ctx.snapshot.cf_models.get(&named["cf-".len()..]),
        };
        let Some(cf) = model else { return Vec::new() };
        let mut history: Vec<u32> = ctx.seen.iter().copied().collect();
        history.sort_unstable();
        // Only the two-tower model reads the user's segments.
        let segments = if cf.reads_segments() { matching_segments(ctx) } else { Vec::new() };
        let Some(scored) = cf.top(&history, &segments, limit, &|item| ctx.eligible(item)) else { return Vec::new() };
        scored.into_iter().map(|(item, score)| Candidate::new(item, self.name(), score)).collect()
    }
}

/// Nearest items by content vector: to the anchor item on "similar" requests, else to
/// the user's profile (the mean vector of the items they engaged with). Needs content
/// vectors in the snapshot; a user without history gets none.
struct Content;

impl CandidateSource for Content {
    fn name(&self) -> &'static str {
        "content"
    }

    fn generate(&self, ctx: &RequestContext<'_>, limit: usize) -> Vec<Candidate> {
        let Some(content) = &ctx.snapshot.content else { return Vec::new() };
        let query = match ctx.item {
            Some(anchor) => content.vector(anchor).map(<[f32]>::to_vec),
            None => content.profile(ctx.seen.iter().copied()),
        };
        let Some(query) = query else { return Vec::new() };
        // Ask for enough that the user's own items and the anchor can be dropped.
        let wanted = (limit + ctx.seen.len() + 1).min(content.len());
        content
            .nearest(&query, wanted)
            .into_iter()
            .filter(|n| ctx.eligible(n.id))
            .take(limit)
            .map(|n| Candidate::new(n.id, self.name(), n.score))
            .collect()
    }
}

/// The most popular items among users who share the request's segments (the user's
/// stored attributes, overridden by the request's context): cold start by context.
struct SegmentPopular;

impl CandidateSource for SegmentPopular {
    fn name(&self) -> &'static str {
        "segment"
    }

    fn generate(&self, ctx: &RequestContext<'_>, limit: usize) -> Vec<Candidate> {
        let segments = matching_segments(ctx);
        ctx.snapshot
            .segments
            .top(&segments, limit, &|item| ctx.eligible(item))
            .into_iter()
            .map(|(item, score)| Candidate::new(item, self.name(), score))
            .collect()
    }

    fn explain(&self, ctx: &RequestContext<'_>) -> serde_json::Value {
        let names: Vec<&str> = matching_segments(ctx).into_iter().map(|s| ctx.snapshot.segments.name(s)).collect();
        serde_json::json!({ "segments": names })
    }
}

/// The segments of the request's user and context.
pub(crate) fn matching_segments(ctx: &RequestContext<'_>) -> Vec<u32> {
    let snapshot = ctx.snapshot;
    let user = ctx.request.user.as_deref().and_then(|u| snapshot.histories.users.get(u).copied());
    snapshot.segments.matching(user, &ctx.request.context)
}

/// The most popular items (time-decayed, weighted counts), for everyone.
struct Popular;

impl CandidateSource for Popular {
    fn name(&self) -> &'static str {
        "popular"
    }

    fn generate(&self, ctx: &RequestContext<'_>, limit: usize) -> Vec<Candidate> {
        let popularity = &ctx.snapshot.popularity;
        popularity
            .order
            .iter()
            .filter(|&&item| ctx.eligible(item))
            .take(limit)
            .map(|&item| Candidate::new(item, self.name(), popularity.scores[item as usize]))
            .collect()
    }
}

/// The items shown least so far (fewest impressions in the snapshot), scored
/// 1 / (1 + impressions): candidates for an exploration policy to try, which the other
/// sources never propose because nobody has interacted with them yet. Weight it low: a
/// greedy ranker then leaves them below the slate.
struct Unexplored;

impl CandidateSource for Unexplored {
    fn name(&self) -> &'static str {
        "unexplored"
    }

    fn generate(&self, ctx: &RequestContext<'_>, limit: usize) -> Vec<Candidate> {
        let feedback = &ctx.snapshot.feedback;
        feedback
            .least_shown
            .iter()
            .filter(|&&item| ctx.eligible(item))
            .take(limit)
            .map(|&item| Candidate::new(item, self.name(), 1.0 / (1.0 + feedback.item(item).shown as f32)))
            .collect()
    }
}

/// BM25 over item text for the request's query; items in the categories the query names
/// are boosted (or the others filtered out).
struct Bm25;

/// How the query's named categories scale an item's score; `None` when they filter it out.
fn entity_factor(ctx: &RequestContext<'_>, item: u32) -> Option<f32> {
    match &ctx.understanding {
        Some(understanding) => understanding.factor(&ctx.snapshot.catalog.get(item).categories),
        None => Some(1.0),
    }
}

/// Best first, ties by item index.
fn by_score(candidates: &mut [Candidate]) {
    candidates.sort_by(|a, b| b.source_score.total_cmp(&a.source_score).then(a.item.cmp(&b.item)));
}

impl CandidateSource for Bm25 {
    fn name(&self) -> &'static str {
        "bm25"
    }

    fn generate(&self, ctx: &RequestContext<'_>, limit: usize) -> Vec<Candidate> {
        let Some(query) = ctx.query else { return Vec::new() };
        let mut found: Vec<Candidate> = ctx
            .snapshot
            .text
            .search(query, limit, &|item| ctx.eligible(item) && entity_factor(ctx, item).is_some())
            .into_iter()
            .map(|hit| Candidate::new(hit.doc, self.name(), hit.score * entity_factor(ctx, hit.doc).unwrap_or(1.0)))
            .collect();
        by_score(&mut found);
        found
    }
}

/// Dense retrieval: the items whose content vectors are nearest to the query's embedding
/// (needs content vectors in the snapshot and a query embedder in the engine). Named
/// categories act as on BM25, but on the nearest items found: with `filter` and a small
/// category this source may return fewer than its quota.
struct Dense;

impl CandidateSource for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn generate(&self, ctx: &RequestContext<'_>, limit: usize) -> Vec<Candidate> {
        let (Some(content), Some(vector)) = (&ctx.snapshot.content, ctx.query_vector.as_deref()) else {
            return Vec::new();
        };
        let wanted = (limit + ctx.seen.len()).min(content.len());
        let mut found: Vec<Candidate> = content
            .nearest(vector, wanted)
            .into_iter()
            .filter(|n| ctx.eligible(n.id))
            // Cosine may be negative: a boost must still move the item up.
            .filter_map(|n| {
                let boosted = |f: f32| if n.score >= 0.0 { n.score * f } else { n.score / f };
                entity_factor(ctx, n.id).map(|f| Candidate::new(n.id, self.name(), boosted(f)))
            })
            .take(limit)
            .collect();
        by_score(&mut found);
        found
    }
}

/// Items whose text shares the anchor item's most distinctive terms.
struct SimilarText;

impl CandidateSource for SimilarText {
    fn name(&self) -> &'static str {
        "similar"
    }

    fn generate(&self, ctx: &RequestContext<'_>, limit: usize) -> Vec<Candidate> {
        let Some(anchor) = ctx.item else { return Vec::new() };
        ctx.snapshot
            .text
            .more_like_this(anchor, limit, &|item| ctx.eligible(item))
            .into_iter()
            .map(|hit| Candidate::new(hit.doc, self.name(), hit.score))
            .collect()
    }
}
