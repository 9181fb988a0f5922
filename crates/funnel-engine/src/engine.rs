use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use funnel_core::{Candidate, ScoredItem, Trace};
use funnel_store::SnapshotDir;
use funnel_text::Corrected;
use rustc_hash::FxHashSet;
use serde_json::json;

use crate::pipeline::{Pipeline, Stages};
use crate::request::MAX_K;
use crate::understand::{EntityConfig, Intent, Understanding};
use crate::{
    EngineConfig, EngineError, MAX_RERANK_DEPTH, PairScorer, Request, RequestContext, Reranker, Response, Snapshot,
    TextEmbedder,
};

/// A snapshot with the configured pipelines bound to it. Cheap to share across threads;
/// a new snapshot means a new `Engine`, swapped in whole.
pub struct Engine {
    snapshot: Arc<Snapshot>,
    pipelines: BTreeMap<String, Pipeline>,
    entities: EntityConfig,
    /// Embeds queries for the `dense` source; the model that made the content vectors.
    query_embedder: Option<QueryEmbedder>,
    /// Reorders the top of search results (`search.cross_encoder`).
    reranker: Option<Reranker>,
}

/// A text embedder shared by the threads serving requests.
pub type QueryEmbedder = Arc<dyn TextEmbedder + Send + Sync>;

/// The models a server loads once and hands to every engine it builds.
#[derive(Clone, Default)]
pub struct ServingModels {
    /// Embeds queries for `dense` sources.
    pub query_embedder: Option<QueryEmbedder>,
    /// Reorders the top of search results.
    pub reranker: Option<Reranker>,
}

impl std::fmt::Debug for ServingModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingModels")
            .field("query_embedder", &self.query_embedder.as_ref().map(|e| e.name()))
            .field("reranker", &self.reranker.as_ref().map(|r| r.name()))
            .finish()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("snapshot", &self.snapshot.manifest.id)
            .field("surfaces", &self.pipelines.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Engine {
    pub fn new(snapshot: Arc<Snapshot>, config: &EngineConfig) -> Result<Self, EngineError> {
        config.validate()?;
        let pipelines = config
            .surfaces
            .iter()
            .map(|(name, surface)| Ok((name.clone(), Pipeline::from_config(name, surface, &snapshot)?)))
            .collect::<Result<_, EngineError>>()?;
        Ok(Self { snapshot, pipelines, entities: config.search.entities, query_embedder: None, reranker: None })
    }

    /// Lets `dense` sources embed queries with `embedder`, which must be the model the
    /// snapshot's content vectors came from (same name); otherwise it is not used and a
    /// warning says why.
    pub fn with_query_embedder(mut self, embedder: Option<QueryEmbedder>) -> Self {
        let Some(embedder) = embedder else { return self };
        match &self.snapshot.content {
            Some(content) if content.model == embedder.name() => self.query_embedder = Some(embedder),
            Some(content) => tracing::warn!(
                snapshot_model = %content.model,
                query_model = %embedder.name(),
                "the query embedder is not the snapshot's content model: dense retrieval is off"
            ),
            None => tracing::debug!("the snapshot has no content vectors: dense retrieval is off"),
        }
        self
    }

    /// [`Engine::with_query_embedder`] and [`Engine::with_reranker`] with `models`.
    pub fn with_models(self, models: &ServingModels) -> Self {
        self.with_query_embedder(models.query_embedder.clone()).with_reranker(models.reranker.clone())
    }

    /// Lets search surfaces reorder their best candidates with `reranker`, a
    /// cross-encoder; it reads the items' passages, which the snapshot keeps when it was
    /// trained with `search.cross_encoder` set (otherwise a warning says so).
    pub fn with_reranker(mut self, reranker: Option<Reranker>) -> Self {
        if reranker.is_some() && self.snapshot.passages.is_none() {
            tracing::warn!(
                "the snapshot has no item passages (train with search.cross_encoder set): no cross-encoder reranking"
            );
        } else {
            self.reranker = reranker;
        }
        self
    }

    /// Whether search results are reordered by a cross-encoder.
    pub fn reranks(&self) -> bool {
        self.reranker.is_some()
    }

    /// Whether `request` would be reranked given a cross-encoder (a query on a surface
    /// that searches text, a depth above 0, passages in the snapshot): whether a one-off
    /// request needs the model loaded.
    pub fn reranks_for(&self, request: &Request) -> bool {
        let Some(pipeline) = self.pipelines.get(&request.surface) else { return false };
        request.query.is_some()
            && pipeline.needs_query()
            && pipeline.rerank_depth(request) > 0
            && self.snapshot.passages.is_some()
    }

    /// Whether `dense` sources can run (an embedder matching the snapshot's vectors).
    pub fn embeds_queries(&self) -> bool {
        self.query_embedder.is_some()
    }

    /// Loads the newest published snapshot.
    pub fn open_latest(snapshots: &SnapshotDir, config: &EngineConfig) -> Result<Self, EngineError> {
        let id = snapshots.latest()?.ok_or(EngineError::NoSnapshot)?;
        let snapshot = Snapshot::load(&snapshots.path_of(id))?;
        Self::new(Arc::new(snapshot), config)
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The snapshot back, unless another owner still shares it.
    pub(crate) fn into_snapshot(self) -> Option<Snapshot> {
        Arc::try_unwrap(self.snapshot).ok()
    }

    pub fn surfaces(&self) -> impl Iterator<Item = &str> {
        self.pipelines.keys().map(String::as_str)
    }

    /// Serves one request on its surface.
    pub fn run(&self, request: &Request) -> Result<Response, EngineError> {
        if !(1..=MAX_K).contains(&request.k) {
            return Err(EngineError::BadRequest { field: "k", reason: format!("must be between 1 and {MAX_K}") });
        }
        let pipeline = self.pipelines.get(&request.surface).ok_or_else(|| {
            EngineError::UnknownSurface(request.surface.clone(), self.surfaces().collect::<Vec<_>>().join(", "))
        })?;
        pipeline.check_weights(&request.surface, &request.weights)?;
        if request.rerank_depth.is_some_and(|d| d > MAX_RERANK_DEPTH) {
            return Err(EngineError::BadRequest {
                field: "rerank_depth",
                reason: format!("must be between 0 and {MAX_RERANK_DEPTH} (and is capped by the surface's)"),
            });
        }
        let mut stages = Stages { traces: Vec::new(), explain: request.explain };
        // Only surfaces that search text read the query.
        let request_query = request.query.as_deref().filter(|_| pipeline.needs_query());
        let corrected = request_query.and_then(|q| self.correct(q, request.exact_query, &mut stages));
        let query = corrected.as_ref().map(|c| c.text.as_str()).or(request_query);
        let understanding = query.map(|q| self.understand(q, &mut stages));
        let mut ctx = self.context(request, pipeline, query)?;
        ctx.understanding = understanding;
        if pipeline.needs_query_vector() {
            ctx.query_vector = self.embed_query(query, &mut stages)?;
        }
        let slate = pipeline.run(&ctx, self.reranker.as_deref().map(|r| r as &dyn PairScorer), &mut stages);

        let catalog = &self.snapshot.catalog;
        let items = slate
            .iter()
            .map(|c| ScoredItem {
                id: catalog.get(c.item).id.clone(),
                score: c.score,
                propensity: c.propensity,
                position_propensity: c.position_propensity,
            })
            .collect();
        let mut stage_micros: Vec<(&'static str, u64)> = Vec::new();
        for trace in &stages.traces {
            match stage_micros.iter_mut().find(|(stage, _)| *stage == trace.stage) {
                Some((_, micros)) => *micros += trace.micros,
                None => stage_micros.push((trace.stage, trace.micros)),
            }
        }
        let snapshot = self.snapshot.manifest.id.clone();
        let trace = request.explain.then(|| Trace { snapshot: snapshot.clone(), stages: stages.traces });
        let did_you_mean = corrected.map(|c| c.text);
        Ok(Response { items, did_you_mean, trace, stage_micros, snapshot })
    }

    /// A request's merged candidates before ranking, with their ranker features (what a
    /// learned ranker on this surface reads): how training sets are built.
    pub(crate) fn candidate_features(&self, request: &Request) -> Result<(Vec<Candidate>, Vec<f32>), EngineError> {
        let pipeline = self.pipelines.get(&request.surface).ok_or_else(|| {
            EngineError::UnknownSurface(request.surface.clone(), self.surfaces().collect::<Vec<_>>().join(", "))
        })?;
        let ctx = self.context(request, pipeline, None)?;
        Ok(pipeline.features(&ctx))
    }

    /// Spell correction against the catalog's vocabulary. `Some` only when a word was
    /// replaced; a query that is exactly an item's title is the catalog's own spelling.
    fn correct(&self, query: &str, exact: bool, stages: &mut Stages) -> Option<Corrected> {
        let speller = self.snapshot.speller.as_ref().filter(|_| !exact)?;
        if self.entities.navigational && self.snapshot.facets.is_title(query) {
            return None;
        }
        let started = Instant::now();
        let corrected = speller.correct(query);
        let changed = corrected.corrections.len();
        stages.record(
            "understand",
            "spell",
            started,
            (query.split_whitespace().count(), changed),
            || json!({ "query": query, "corrected": &corrected.text, "corrections": &corrected.corrections }),
        );
        (changed > 0).then_some(corrected)
    }

    /// The query's embedding for `dense` sources, when the engine has an embedder.
    fn embed_query(&self, query: Option<&str>, stages: &mut Stages) -> Result<Option<Vec<f32>>, EngineError> {
        let (Some(embedder), Some(query)) = (&self.query_embedder, query) else { return Ok(None) };
        let started = Instant::now();
        let vector = embedder.embed(&[query], &mut |_| {}).map_err(EngineError::Content)?.pop();
        let dim = vector.as_ref().map_or(0, Vec::len);
        stages.record("understand", "embed", started, (1, usize::from(vector.is_some())), || json!({ "dim": dim }));
        Ok(vector)
    }

    /// Intent and named categories of the (corrected) query.
    fn understand(&self, query: &str, stages: &mut Stages) -> Understanding {
        let started = Instant::now();
        let learned = self.snapshot.intent.as_ref().map(|model| (model, &self.snapshot.popularity));
        let understanding = self.snapshot.facets.understand(query, &self.entities, learned);
        let found =
            understanding.categories.len() + usize::from(matches!(understanding.intent, Intent::Navigational(_)));
        stages.record("understand", "entities", started, (query.split_whitespace().count(), found), || {
            understanding.describe(&self.snapshot.catalog)
        });
        understanding
    }

    fn context<'a>(
        &'a self,
        request: &'a Request,
        pipeline: &Pipeline,
        query: Option<&'a str>,
    ) -> Result<RequestContext<'a>, EngineError> {
        let snapshot = &*self.snapshot;
        let query_missing = request.query.as_deref().is_none_or(|q| q.trim().is_empty());
        if pipeline.needs_query() && query_missing {
            return Err(EngineError::BadRequest {
                field: "query",
                reason: "this surface searches text; give a query".into(),
            });
        }
        let item = match (&request.item, pipeline.needs_item()) {
            (Some(id), _) => Some(snapshot.catalog.index_of(id).ok_or_else(|| EngineError::UnknownItem(id.clone()))?),
            (None, true) => {
                return Err(EngineError::BadRequest {
                    field: "item",
                    reason: "this surface needs an anchor item".into(),
                });
            }
            (None, false) => None,
        };
        let mut seen: FxHashSet<u32> = match &request.user {
            Some(user) => snapshot.histories.of(user).iter().copied().collect(),
            None => FxHashSet::default(),
        };
        seen.extend(request.recently_seen.iter().filter_map(|id| snapshot.catalog.index_of(id)));
        Ok(RequestContext {
            snapshot,
            request,
            query,
            understanding: None,
            query_vector: None,
            now: request.now.unwrap_or(snapshot.manifest.as_of),
            seen,
            item,
        })
    }
}

#[cfg(test)]
mod rerank_tests;
#[cfg(test)]
mod tests;
