use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use funnel_core::{EventKind, Record};
use funnel_engine::{Engine, EngineConfig, EngineError, ServingModels, Snapshot};
use funnel_store::{DataDir, FileLog, RecordLog, SnapshotDir};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::ApiError;

/// Items remembered per user between snapshots, for the "seen" rule.
const RECENT_PER_USER: usize = 500;

/// Everything the handlers share. The engine is swapped whole when a newer snapshot
/// appears; requests in flight keep the engine they started with.
pub struct AppState {
    engine: ArcSwapOption<Engine>,
    log: Arc<FileLog>,
    snapshots: SnapshotDir,
    config: EngineConfig,
    /// Handed to every engine: the query embedder for `dense` search sources and the
    /// cross-encoder.
    models: ServingModels,
    recent: Mutex<HashMap<String, VecDeque<String>>>,
    metrics: PrometheusHandle,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("log", &self.log).finish_non_exhaustive()
    }
}

/// The process-wide Prometheus recorder, installed on first use.
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
            let recorder =
                PrometheusBuilder::new().set_buckets(&buckets).expect("bucket list is not empty").build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

impl AppState {
    /// Opens the data folder: takes the log's writer lock and loads the newest snapshot
    /// if there is one (without one, queries answer 503 until `funnel train` runs).
    /// `models` go to every engine (the query embedder must be the snapshot's content
    /// model).
    pub fn open(data: &DataDir, config: EngineConfig, models: ServingModels) -> Result<Self, EngineError> {
        let log = Arc::new(FileLog::open(data.log())?);
        let snapshots = data.snapshots();
        let engine = match Engine::open_latest(&snapshots, &config) {
            Ok(engine) => Some(Arc::new(engine.with_models(&models))),
            Err(EngineError::NoSnapshot) => None,
            Err(other) => return Err(other),
        };
        Ok(Self {
            engine: ArcSwapOption::new(engine),
            log,
            snapshots,
            config,
            models,
            recent: Mutex::new(HashMap::new()),
            metrics: metrics_handle(),
        })
    }

    pub fn engine(&self) -> Result<Arc<Engine>, ApiError> {
        self.engine.load_full().ok_or_else(|| EngineError::NoSnapshot.into())
    }

    pub fn snapshot_id(&self) -> Option<String> {
        self.engine.load().as_ref().map(|e| e.snapshot().manifest.id.clone())
    }

    pub fn metrics(&self) -> &PrometheusHandle {
        &self.metrics
    }

    /// Loads the newest snapshot if it differs from the one being served.
    pub fn reload_if_newer(&self) -> Result<Option<String>, EngineError> {
        let Some(latest) = self.snapshots.latest()? else { return Ok(None) };
        if self.snapshot_id().as_deref() == Some(latest.to_string().as_str()) {
            return Ok(None);
        }
        let snapshot = Snapshot::load(&self.snapshots.path_of(latest))?;
        let engine = Engine::new(Arc::new(snapshot), &self.config)?.with_models(&self.models);
        self.engine.store(Some(Arc::new(engine)));
        tracing::info!(snapshot = %latest, "now serving a new snapshot");
        Ok(Some(latest.to_string()))
    }

    /// Appends records durably (fsync) off the async workers; returns once acknowledged.
    pub async fn append(&self, records: Vec<Record>) -> Result<(), ApiError> {
        let log = self.log.clone();
        let records = tokio::task::spawn_blocking(move || log.append(&records).map(|()| records))
            .await
            .map_err(|e| ApiError::internal(&e))??;
        self.remember(&records);
        Ok(())
    }

    fn remember(&self, records: &[Record]) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        for record in records {
            if let Record::Event(event) = record
                && event.kind != EventKind::Impression
            {
                let items = recent.entry(event.user.clone()).or_default();
                items.push_back(event.item.clone());
                if items.len() > RECENT_PER_USER {
                    items.pop_front();
                }
            }
        }
    }

    /// Items the user interacted with through this server (not yet in every snapshot).
    pub fn recently_seen(&self, user: Option<&str>) -> Vec<String> {
        let Some(user) = user else { return Vec::new() };
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.get(user).map(|items| items.iter().cloned().collect()).unwrap_or_default()
    }
}

/// Polls for newer snapshots forever. Loading runs on a blocking thread.
pub(crate) async fn reload_loop(state: Arc<AppState>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let state = state.clone();
        match tokio::task::spawn_blocking(move || state.reload_if_newer()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not load the newest snapshot; still serving the old one"),
            Err(error) => tracing::error!(%error, "snapshot reload task failed"),
        }
    }
}
