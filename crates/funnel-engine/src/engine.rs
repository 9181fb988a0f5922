use std::collections::BTreeMap;
use std::sync::Arc;

use funnel_core::{ScoredItem, Trace};
use funnel_store::SnapshotDir;
use rustc_hash::FxHashSet;

use crate::pipeline::{Pipeline, Stages};
use crate::request::MAX_K;
use crate::{EngineConfig, EngineError, Request, RequestContext, Response, Snapshot};

/// A snapshot with the configured pipelines bound to it. Cheap to share across threads;
/// a new snapshot means a new `Engine`, swapped in whole.
pub struct Engine {
    snapshot: Arc<Snapshot>,
    pipelines: BTreeMap<String, Pipeline>,
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
            .map(|(name, surface)| Ok((name.clone(), Pipeline::from_config(surface)?)))
            .collect::<Result<_, EngineError>>()?;
        Ok(Self { snapshot, pipelines })
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
        let ctx = self.context(request, pipeline)?;
        let mut stages = Stages { traces: Vec::new(), explain: request.explain };
        let slate = pipeline.run(&ctx, &mut stages);

        let catalog = &self.snapshot.catalog;
        let items = slate.iter().map(|c| ScoredItem { id: catalog.get(c.item).id.clone(), score: c.score }).collect();
        let mut stage_micros: Vec<(&'static str, u64)> = Vec::new();
        for trace in &stages.traces {
            match stage_micros.iter_mut().find(|(stage, _)| *stage == trace.stage) {
                Some((_, micros)) => *micros += trace.micros,
                None => stage_micros.push((trace.stage, trace.micros)),
            }
        }
        let snapshot = self.snapshot.manifest.id.clone();
        let trace = request.explain.then(|| Trace { snapshot: snapshot.clone(), stages: stages.traces });
        Ok(Response { items, trace, stage_micros, snapshot })
    }

    fn context<'a>(&'a self, request: &'a Request, pipeline: &Pipeline) -> Result<RequestContext<'a>, EngineError> {
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
        Ok(RequestContext { snapshot, request, now: request.now.unwrap_or(snapshot.manifest.as_of), seen, item })
    }
}

#[cfg(test)]
mod tests;
