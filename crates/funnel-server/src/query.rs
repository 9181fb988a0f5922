//! `GET /recommend`, `/search`, `/items/{id}/similar`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use funnel_engine::Request;

use crate::extract::Params;
use crate::wire::SlateBody;
use crate::{ApiError, AppState};

/// Runs the request on the blocking pool: a request is milliseconds of CPU (more with a
/// query embedding), which must not hold up the async workers that accept connections,
/// and concurrent requests must be able to meet in one embedding batch.
async fn run(state: &AppState, request: Request) -> Result<Json<SlateBody>, ApiError> {
    let engine = state.engine()?;
    let (response, request) = tokio::task::spawn_blocking(move || (engine.run(&request), request))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let response = response?;
    for (stage, micros) in &response.stage_micros {
        metrics::histogram!("funnel_stage_duration_seconds", "surface" => request.surface.clone(), "stage" => *stage)
            .record(*micros as f64 / 1e6);
    }
    Ok(Json(SlateBody::new(response, request.seed)))
}

fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.finish()
}

fn base_request(state: &AppState, params: &Params, surface: &str) -> Result<Request, ApiError> {
    let user = params.text("user");
    Ok(Request {
        surface: params.text("surface").unwrap_or_else(|| surface.to_owned()),
        recently_seen: state.recently_seen(user.as_deref()),
        user,
        k: params.number("k", 10)?,
        explain: params.flag("explain")?,
        // A fresh seed per request unless one is given: exploration must really draw
        // (the seed is returned, so a slate can be replayed).
        seed: match params.number::<u64>("seed", 0)? {
            0 if params.text("seed").is_none() => fresh_seed(),
            given => given,
        },
        context: params.context()?,
        weights: params.weights()?,
        ..Request::default()
    })
}

/// Recommendations for a user (or for an anonymous visitor when `user` is absent).
/// An unknown user is a cold start: popular items, and the items popular among users
/// who share the request's context (`context.country=DE&context.device=mobile`) or the
/// user's stored attributes.
#[utoipa::path(get, path = "/recommend",
    params(("user" = Option<String>, Query, description = "user id"),
           ("k" = Option<usize>, Query, description = "slate size, 1–1000 (default 10)"),
           ("explain" = Option<bool>, Query, description = "include a per-stage trace"),
           ("surface" = Option<String>, Query, description = "configured surface (default `home`)"),
           ("seed" = Option<u64>, Query, description = "seed for randomised stages"),
           ("context.{name}" = Option<String>, Query,
            description = "a context attribute for the `segment` source, e.g. context.country=DE"),
           ("weight.{source}" = Option<f32>, Query,
            description = "this request's weight for one of the surface's sources, e.g. weight.popular=0.5")),
    responses((status = 200, body = SlateBody), (status = 400, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody)))]
pub async fn recommend(State(state): State<Arc<AppState>>, params: Params) -> Result<Json<SlateBody>, ApiError> {
    params.only(&["user", "k", "explain", "surface", "seed", "context.*", "weight.*"])?;
    run(&state, base_request(&state, &params, "home")?).await
}

/// Text search, personalised when `user` is given. Misspelt words are corrected from the
/// catalog's vocabulary and the corrected query is searched and returned as
/// `did_you_mean`; `exact=true` searches the query as typed.
#[utoipa::path(get, path = "/search",
    params(("q" = String, Query, description = "the query"),
           ("exact" = Option<bool>, Query, description = "search the query as typed (no spell correction)"),
           ("user" = Option<String>, Query, description = "user id"),
           ("k" = Option<usize>, Query, description = "slate size, 1–1000 (default 10)"),
           ("explain" = Option<bool>, Query, description = "include a per-stage trace"),
           ("surface" = Option<String>, Query, description = "configured surface (default `search`)"),
           ("weight.{source}" = Option<f32>, Query,
            description = "this request's weight for one of the surface's sources: weight.bm25=0.3&weight.dense=0.7"),
           ("rerank_depth" = Option<usize>, Query,
            description = "how many of the best candidates the cross-encoder reorders: at most the surface's rerank.cross_encoder_depth, which is the default (0: none)")),
    responses((status = 200, body = SlateBody), (status = 400, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody)))]
pub async fn search(State(state): State<Arc<AppState>>, params: Params) -> Result<Json<SlateBody>, ApiError> {
    params.only(&["q", "exact", "user", "k", "explain", "surface", "seed", "weight.*", "rerank_depth"])?;
    let query = params.text("q").ok_or_else(|| ApiError::bad_param("q", "required: the text to search for"))?;
    let exact_query = params.flag("exact")?;
    let rerank_depth = params.optional_number("rerank_depth")?;
    let request = Request { query: Some(query), exact_query, rerank_depth, ..base_request(&state, &params, "search")? };
    run(&state, request).await
}

/// Items like the given one.
#[utoipa::path(get, path = "/items/{id}/similar",
    params(("id" = String, Path, description = "item id"),
           ("k" = Option<usize>, Query, description = "slate size, 1–1000 (default 10)"),
           ("user" = Option<String>, Query, description = "user id, to drop what they have seen"),
           ("explain" = Option<bool>, Query, description = "include a per-stage trace")),
    responses((status = 200, body = SlateBody), (status = 404, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody)))]
pub async fn similar(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<SlateBody>, ApiError> {
    params.only(&["k", "user", "explain", "surface", "seed"])?;
    let request = Request { item: Some(id), ..base_request(&state, &params, "similar")? };
    run(&state, request).await
}
