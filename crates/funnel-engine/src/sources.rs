//! Candidate sources: popularity, BM25 text retrieval, "more like this".

use funnel_core::Candidate;

use crate::{CandidateSource, RequestContext};

pub(crate) fn by_name(name: &str) -> Box<dyn CandidateSource> {
    match name {
        "popular" => Box::new(Popular),
        "bm25" => Box::new(Bm25),
        "similar" => Box::new(SimilarText),
        other => unreachable!("config validation admits only known sources, got {other}"),
    }
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

/// BM25 over item text for the request's query.
struct Bm25;

impl CandidateSource for Bm25 {
    fn name(&self) -> &'static str {
        "bm25"
    }

    fn generate(&self, ctx: &RequestContext<'_>, limit: usize) -> Vec<Candidate> {
        let Some(query) = ctx.request.query.as_deref() else { return Vec::new() };
        ctx.snapshot
            .text
            .search(query, limit, &|item| ctx.eligible(item))
            .into_iter()
            .map(|hit| Candidate::new(hit.doc, self.name(), hit.score))
            .collect()
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
