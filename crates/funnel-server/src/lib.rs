//! The HTTP API over the engine: ingestion into the log, recommend/search/similar over
//! the current snapshot, health, Prometheus metrics and an OpenAPI document.
//!
//! Handlers are thin: extract, convert, call the engine or the log, convert back. Wire
//! types and the mapping of errors to status codes live here and nowhere else.

mod error;
mod extract;
mod ingest;
mod openapi;
mod ops;
mod query;
mod state;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

pub use error::ApiError;
pub use state::AppState;

/// Largest request body accepted by default (413 beyond).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

/// The router, for serving or for driving in-process in tests.
pub fn app(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/items", post(ingest::post_items))
        .route("/users", post(ingest::post_users))
        .route("/events", post(ingest::post_events))
        .route("/recommend", get(query::recommend))
        .route("/search", get(query::search))
        .route("/items/{id}/similar", get(query::similar))
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::document))
        .fallback(ops::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(track))
        .with_state(state)
}

/// Counts requests and records their latency per endpoint.
async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("funnel_http_requests_total", "endpoint" => endpoint.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("funnel_http_request_duration_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    response
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// How often to look for a newer snapshot.
    pub reload_every: Duration,
    pub max_body_bytes: usize,
}

/// Serves until `shutdown` resolves. Prints the bound address on stdout first (so a
/// caller that asked for port 0 can find it).
pub async fn serve(
    state: Arc<AppState>,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(options.addr).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, "listening");
    tokio::spawn(state::reload_loop(state.clone(), options.reload_every));
    axum::serve(listener, app(state, options.max_body_bytes)).with_graceful_shutdown(shutdown).await
}
