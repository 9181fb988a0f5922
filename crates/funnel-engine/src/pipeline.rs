//! The stage traits and a surface's pipeline that runs them in order:
//! candidate sources (merged under quotas) → ranker → cross-encoder (search) → rules →
//! exploration.

use std::collections::BTreeMap;
use std::time::Instant;

use funnel_core::{Candidate, StageTrace};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use crate::config::{Merge, PinConfig};
use crate::features::{self, Proposals};
use crate::{
    EngineError, Intent, PairScorer, RequestContext, Snapshot, SurfaceConfig, cross_rank, explore, ranker, rules,
    sources,
};

/// Proposes candidates for a request, best first.
pub trait CandidateSource: Send + Sync {
    fn name(&self) -> &'static str;
    /// Up to `limit` eligible candidates. A source that does not apply to this request
    /// (no query for a text source, say) returns none.
    fn generate(&self, ctx: &RequestContext<'_>, limit: usize) -> Vec<Candidate>;
    /// What the source read from the request, for the trace (e.g. the matched segments).
    fn explain(&self, _ctx: &RequestContext<'_>) -> Value {
        Value::Null
    }
}

/// Sets `score` on every candidate and sorts them best first. `candidates` come in merge
/// order, row `i` of `proposals` saying what each source said about candidate `i`.
pub trait Ranker: Send + Sync {
    fn name(&self) -> &'static str;
    fn rank(&self, ctx: &RequestContext<'_>, candidates: &mut Vec<Candidate>, proposals: &Proposals) -> Value;
}

/// A business rule over the ranked list: filters, boosts, pins. Returns what it did.
pub trait Rule: Send + Sync {
    fn name(&self) -> &'static str;
    fn apply(&self, ctx: &RequestContext<'_>, candidates: &mut Vec<Candidate>) -> Value;
}

/// Picks the final `k` items and sets each one's propensity (the probability with which
/// the policy put it in its position).
pub trait ExplorationPolicy: Send + Sync {
    fn name(&self) -> &'static str;
    fn choose(&self, ctx: &RequestContext<'_>, ranked: Vec<Candidate>, k: usize, rng: &mut StdRng) -> Vec<Candidate>;
}

struct SourceSlot {
    source: Box<dyn CandidateSource>,
    quota: usize,
    weight: f32,
}

/// A surface's configured stages.
pub(crate) struct Pipeline {
    sources: Vec<SourceSlot>,
    ranker: Box<dyn Ranker>,
    rules: Vec<Box<dyn Rule>>,
    exploration: Box<dyn ExplorationPolicy>,
    /// By position.
    pins: Vec<PinConfig>,
    /// Whether pins skip items the user has seen (the surface has the `seen` rule).
    pins_skip_seen: bool,
    /// Whether a pinned item drops the candidates with its title (the `dedupe` rule).
    pins_dedupe: bool,
    max_candidates: usize,
    merge: Merge,
    rrf_k: f32,
    cross_encoder_depth: usize,
    cross_encoder_weight: f32,
}

/// The score of a navigational query's item over the best merged candidate.
const NAVIGATIONAL_LIFT: f32 = 1.25;

/// A stage's result as the trace records it.
pub(crate) struct Stages {
    pub traces: Vec<StageTrace>,
    pub explain: bool,
}

impl Stages {
    pub(crate) fn record(
        &mut self,
        stage: &'static str,
        component: &str,
        started: Instant,
        sizes: (usize, usize),
        details: impl FnOnce() -> Value,
    ) {
        self.traces.push(StageTrace {
            stage,
            component: component.to_owned(),
            micros: started.elapsed().as_micros() as u64,
            input: sizes.0,
            output: sizes.1,
            details: if self.explain { details() } else { Value::Null },
        });
    }
}

fn describe(ctx: &RequestContext<'_>, candidates: &[Candidate], limit: usize) -> Value {
    let catalog = &ctx.snapshot.catalog;
    Value::Array(
        candidates
            .iter()
            .take(limit)
            .map(|c| {
                json!({
                    "id": catalog.get(c.item).id,
                    "title": catalog.get(c.item).title,
                    "source": c.source,
                    "source_score": c.source_score,
                    "score": c.score,
                })
            })
            .collect(),
    )
}

impl Pipeline {
    pub fn from_config(surface: &str, config: &SurfaceConfig, snapshot: &Snapshot) -> Result<Self, EngineError> {
        for kind in config.sources.iter().filter_map(|s| s.name.strip_prefix("cf-")) {
            if !snapshot.cf_models.contains_key(kind) {
                tracing::warn!(surface, source = %format!("cf-{kind}"), "the snapshot has no such CF model (run `funnel train`): the source proposes nothing");
            }
        }
        for pin in config.rerank.pins.iter().filter(|p| snapshot.catalog.index_of(&p.item).is_none()) {
            tracing::warn!(surface, item = %pin.item, "a pinned item is not in the snapshot's catalog: never shown");
        }
        for boost in &config.rerank.boosts {
            let known = match (&boost.item, &boost.category) {
                (Some(item), _) => snapshot.catalog.index_of(item).is_some(),
                (_, Some(category)) => {
                    (0..snapshot.catalog.n_categories() as u32).any(|c| snapshot.catalog.category_name(c) == category)
                }
                (None, None) => true,
            };
            if !known {
                tracing::warn!(surface, ?boost, "a boost names an item or category the snapshot does not have");
            }
        }
        if config.exploration == "linucb" && snapshot.linucb.is_none() {
            tracing::warn!(
                surface,
                "the snapshot has no LinUCB arms (run `funnel train`): the ranker's order is served"
            );
        }
        let sources = config
            .sources
            .iter()
            .map(|s| SourceSlot { source: sources::by_name(&s.name), quota: s.quota, weight: s.weight })
            .collect();
        Ok(Self {
            sources,
            ranker: ranker::by_name(surface, config, snapshot)?,
            rules: config.rules.iter().map(|r| rules::by_name(r, &config.rerank)).collect(),
            exploration: explore::by_name(&config.exploration, &config.rerank),
            pins: {
                let mut pins = config.rerank.pins.clone();
                pins.sort_by_key(|p| p.position);
                pins
            },
            pins_skip_seen: config.rules.iter().any(|r| r == "seen"),
            pins_dedupe: config.rules.iter().any(|r| r == "dedupe"),
            max_candidates: config.max_candidates,
            merge: config.merge,
            rrf_k: config.rrf_k,
            cross_encoder_depth: config.rerank.cross_encoder_depth,
            cross_encoder_weight: config.rerank.cross_encoder_weight,
        })
    }

    /// Checks a request's per-source weights against this surface.
    pub fn check_weights(&self, surface: &str, weights: &BTreeMap<String, f32>) -> Result<(), EngineError> {
        let bad = |reason: String| Err(EngineError::BadRequest { field: "weight", reason });
        for (name, weight) in weights {
            if !self.sources.iter().any(|s| s.source.name() == name) {
                let names: Vec<&str> = self.sources.iter().map(|s| s.source.name()).collect();
                return bad(format!(
                    "`weight.{name}`: `{name}` is not a source of surface `{surface}` (its sources: {})",
                    names.join(", ")
                ));
            }
            if !(weight.is_finite() && (0.0..=1000.0).contains(weight)) {
                return bad(format!("`weight.{name}`: {weight} is not between 0 and 1000"));
            }
        }
        if !weights.is_empty() && self.ranker.name() == "gbdt" {
            return bad(format!(
                "surface `{surface}` is ranked by a model trained on its configured weights; they cannot change per request"
            ));
        }
        Ok(())
    }

    pub fn needs_query(&self) -> bool {
        self.sources.iter().any(|s| matches!(s.source.name(), "bm25" | "dense"))
    }

    /// Whether a source reads the query's embedding.
    pub fn needs_query_vector(&self) -> bool {
        self.sources.iter().any(|s| s.source.name() == "dense")
    }

    pub fn needs_item(&self) -> bool {
        self.sources.iter().any(|s| s.source.name() == "similar")
    }

    /// The slate for `ctx`; `reranker` reorders the top of a query's candidates when the
    /// snapshot has the items' passages.
    pub fn run(
        &self,
        ctx: &RequestContext<'_>,
        reranker: Option<&dyn PairScorer>,
        stages: &mut Stages,
    ) -> Vec<Candidate> {
        let (mut candidates, proposals) = self.candidates(ctx, stages);

        let started = Instant::now();
        let input = candidates.len();
        let details = self.ranker.rank(ctx, &mut candidates, &proposals);
        stages.record(
            "rank",
            self.ranker.name(),
            started,
            (input, candidates.len()),
            || json!({ "ranker": details, "top": describe(ctx, &candidates, 20) }),
        );

        if let Some(reranker) = reranker {
            self.cross_encode(ctx, reranker, &mut candidates, stages);
        }

        for rule in &self.rules {
            let started = Instant::now();
            let input = candidates.len();
            let details = rule.apply(ctx, &mut candidates);
            stages.record("rules", rule.name(), started, (input, candidates.len()), || details);
        }

        let started = Instant::now();
        let (pinned, skipped) = self.take_pins(ctx, &mut candidates);
        let input = candidates.len();
        let mut rng = StdRng::seed_from_u64(ctx.request.seed);
        let rest = ctx.request.k - pinned.len();
        let mut slate = match rest {
            0 => Vec::new(),
            rest => self.exploration.choose(ctx, candidates, rest, &mut rng),
        };
        stages.record("explore", self.exploration.name(), started, (input, slate.len()), || {
            json!({ "slate": describe(ctx, &slate, slate.len()), "propensities": slate.iter().map(|c| c.propensity).collect::<Vec<_>>() })
        });
        if !self.pins.is_empty() {
            let started = Instant::now();
            let input = slate.len();
            let mut placed: Vec<(usize, u32)> = Vec::with_capacity(pinned.len());
            for (position, candidate) in pinned {
                // A slate shorter than the pin's position takes it at its end.
                let at = (position - 1).min(slate.len());
                placed.push((at + 1, candidate.item));
                slate.insert(at, candidate);
            }
            stages.record("rules", "pin", started, (input, slate.len()), || {
                let id = |item: u32| ctx.snapshot.catalog.get(item).id.clone();
                json!({ "pinned": placed.iter().map(|&(p, i)| json!({ "id": id(i), "position": p })).collect::<Vec<_>>(), "skipped": skipped })
            });
        }
        slate
    }

    /// How many candidates the cross-encoder reorders for `request`: the surface's
    /// depth, or less if the request asks (a request cannot raise the cost per query).
    pub fn rerank_depth(&self, request: &crate::Request) -> usize {
        request.rerank_depth.map_or(self.cross_encoder_depth, |d| d.min(self.cross_encoder_depth))
    }

    /// Reorders the best candidates of a query with the cross-encoder; a navigational
    /// query's item stays first. A model error is logged and leaves the order.
    fn cross_encode(
        &self,
        ctx: &RequestContext<'_>,
        reranker: &dyn PairScorer,
        candidates: &mut [Candidate],
        stages: &mut Stages,
    ) {
        let navigational = match ctx.understanding.as_ref().map(|u| &u.intent) {
            Some(Intent::Navigational(item)) => candidates.first().is_some_and(|c| c.item == *item),
            _ => false,
        };
        let rest = &mut candidates[usize::from(navigational)..];
        let depth = self.rerank_depth(ctx.request).min(rest.len());
        let (Some(query), Some(passages), true) = (ctx.query, ctx.snapshot.passages.as_deref(), depth > 0) else {
            return;
        };
        let started = Instant::now();
        match cross_rank::rerank(reranker, (query, passages), &mut rest[..depth], self.cross_encoder_weight) {
            Ok(moved) => stages.record("rerank", "cross-encoder", started, (depth, depth), || {
                cross_rank::describe(ctx, reranker, &rest[..depth], &moved, navigational)
            }),
            Err(error) => {
                tracing::warn!(%error, "the cross-encoder failed: the ranker's order is kept");
                stages.record("rerank", "cross-encoder", started, (depth, depth), || json!({ "error": error }));
            }
        }
    }

    /// The pins that apply to this request, with their positions, taken out of
    /// `candidates` (a pinned item keeps its score if it was a candidate, else takes the
    /// best score); and the ids of pins skipped (unknown, unservable or seen).
    fn take_pins(
        &self,
        ctx: &RequestContext<'_>,
        candidates: &mut Vec<Candidate>,
    ) -> (Vec<(usize, Candidate)>, Vec<String>) {
        let (mut pinned, mut skipped) = (Vec::new(), Vec::new());
        let mut pinned_titles: Vec<u64> = Vec::new();
        let best = candidates.first().map_or(0.0, |c| c.score);
        for pin in self.pins.iter().filter(|p| p.position <= ctx.request.k) {
            let item = ctx.snapshot.catalog.index_of(&pin.item).filter(|&i| {
                ctx.snapshot.catalog.servable(i)
                    && Some(i) != ctx.item
                    && !(self.pins_skip_seen && ctx.seen.contains(&i))
            });
            let title = item.filter(|_| self.pins_dedupe).and_then(|i| ctx.snapshot.catalog.title_key(i));
            // Under `dedupe`, a second pin with a pinned item's title is skipped too.
            let (Some(item), false) = (item, title.is_some_and(|t| pinned_titles.contains(&t))) else {
                skipped.push(pin.item.clone());
                continue;
            };
            let candidate = match candidates.iter().position(|c| c.item == item) {
                Some(at) => candidates.remove(at),
                None => Candidate { score: best, ..Candidate::new(item, "pin", best) },
            };
            if let Some(title) = title {
                candidates.retain(|c| ctx.snapshot.catalog.title_key(c.item) != Some(title));
                pinned_titles.push(title);
            }
            pinned.push((pin.position, Candidate { propensity: 1.0, position_propensity: 1.0, ..candidate }));
        }
        (pinned, skipped)
    }

    /// The merged candidates (before ranking) and their ranker features: what a learned
    /// ranker reads when serving, computed by the same code for its training set.
    pub fn features(&self, ctx: &RequestContext<'_>) -> (Vec<Candidate>, Vec<f32>) {
        let (candidates, proposals) = self.candidates(ctx, &mut Stages { traces: Vec::new(), explain: false });
        let rows = features::compute(ctx, &candidates, &proposals);
        (candidates, rows)
    }

    /// Runs every source under its quota, weights their scores and merges them as the
    /// surface's `merge` says, keeping each item once; then puts a navigational query's
    /// item first. Also returns what each source said about each merged candidate.
    fn candidates(&self, ctx: &RequestContext<'_>, stages: &mut Stages) -> (Vec<Candidate>, Proposals) {
        let mut merged: Vec<Candidate> = Vec::new();
        let mut proposals = Proposals::new(self.sources.len());
        let mut position: rustc_hash::FxHashMap<u32, usize> = rustc_hash::FxHashMap::default();
        for (slot_index, slot) in self.sources.iter().enumerate() {
            let started = Instant::now();
            let produced = slot.source.generate(ctx, slot.quota.min(self.max_candidates));
            let count = produced.len();
            let (top, about) = match stages.explain {
                true => (describe(ctx, &produced, 10), slot.source.explain(ctx)),
                false => (Value::Null, Value::Null),
            };
            let max = produced.iter().map(|c| c.source_score).fold(0f32, f32::max);
            let weight = ctx.request.weights.get(slot.source.name()).copied().unwrap_or(slot.weight);
            let mut duplicates = 0;
            for (rank, mut candidate) in produced.into_iter().enumerate() {
                candidate.score = match self.merge {
                    Merge::Rrf => weight / (self.rrf_k + rank as f32 + 1.0),
                    // Normalise each source to [0, 1] by its best score, then weight it.
                    Merge::Max | Merge::Sum if max > 0.0 => weight * candidate.source_score / max,
                    Merge::Max | Merge::Sum => 0.0,
                };
                match position.get(&candidate.item) {
                    Some(&at) => {
                        duplicates += 1;
                        proposals.set(at, slot_index, candidate.source_score, rank);
                        match self.merge {
                            Merge::Max if candidate.score > merged[at].score => merged[at] = candidate,
                            Merge::Max => {}
                            Merge::Sum | Merge::Rrf => merged[at].score += candidate.score,
                        }
                    }
                    None if merged.len() < self.max_candidates => {
                        position.insert(candidate.item, merged.len());
                        proposals.push_row();
                        proposals.set(merged.len(), slot_index, candidate.source_score, rank);
                        merged.push(candidate);
                    }
                    None => {}
                }
            }
            stages.record(
                "candidates",
                slot.source.name(),
                started,
                (0, count),
                || json!({ "quota": slot.quota, "weight": weight, "already_proposed": duplicates, "input": about, "top": top }),
            );
        }
        lift_navigational(ctx, &mut merged, &mut proposals);
        (merged, proposals)
    }
}

/// The item whose title is the whole query gets the top score, proposed by a source or not.
fn lift_navigational(ctx: &RequestContext<'_>, merged: &mut Vec<Candidate>, proposals: &mut Proposals) {
    let Some(understanding) = &ctx.understanding else { return };
    let Intent::Navigational(item) = understanding.intent else { return };
    if !ctx.eligible(item) || understanding.factor(&ctx.snapshot.catalog.get(item).categories).is_none() {
        return;
    }
    let top = merged.iter().map(|c| c.score).fold(0f32, f32::max);
    let score = if top > 0.0 { top * NAVIGATIONAL_LIFT } else { 1.0 };
    match merged.iter_mut().find(|c| c.item == item) {
        Some(candidate) => candidate.score = score,
        None => {
            let mut candidate = Candidate::new(item, "navigational", score);
            candidate.score = score;
            merged.push(candidate);
            proposals.push_row();
        }
    }
}
