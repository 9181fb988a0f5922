use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;

use crate::wire::Health;
use crate::{ApiError, AppState};

/// Liveness and the snapshot being served.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let engine = state.engine().ok();
    Json(Health {
        status: "ok",
        snapshot: engine.as_ref().map(|e| e.snapshot().manifest.id.clone()),
        items: engine.as_ref().map(|e| e.snapshot().catalog.len()),
    })
}

/// Prometheus text: request counts and latency histograms per endpoint and per stage.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics().render())
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", None, format!("no endpoint at {}; see /openapi.json", uri.path()))
}
