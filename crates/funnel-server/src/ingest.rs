//! `POST /items`, `/users`, `/events`: a JSON array of records, validated whole, then
//! appended to the log as one atomic batch. The 200 answer means the batch is durable.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use funnel_core::{Event, InvalidRecord, Item, Record, User};

use crate::extract::JsonBody;
use crate::wire::Accepted;
use crate::{ApiError, AppState};

/// Most records one request may carry.
pub const MAX_BATCH: usize = 10_000;

async fn ingest<T>(
    state: &AppState,
    batch: Vec<T>,
    validate: impl Fn(&T) -> Result<(), InvalidRecord>,
    into: impl Fn(T) -> Record,
) -> Result<Json<Accepted>, ApiError> {
    if batch.is_empty() || batch.len() > MAX_BATCH {
        return Err(ApiError::invalid_field(
            "(body)".into(),
            format!("send between 1 and {MAX_BATCH} records per request, got {}", batch.len()),
        ));
    }
    for (index, record) in batch.iter().enumerate() {
        validate(record).map_err(|e| ApiError::invalid_field(format!("[{index}].{}", e.field), e.reason))?;
    }
    let accepted = batch.len();
    state.append(batch.into_iter().map(into).collect()).await?;
    Ok(Json(Accepted { accepted }))
}

/// Upsert items (the newest version of an id wins at the next `funnel train`).
#[utoipa::path(post, path = "/items", request_body = Vec<Item>,
    responses((status = 200, body = Accepted), (status = 400, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn post_items(
    State(state): State<Arc<AppState>>,
    JsonBody(items): JsonBody<Vec<Item>>,
) -> Result<Json<Accepted>, ApiError> {
    ingest(&state, items, Item::validate, Record::Item).await
}

/// Upsert users.
#[utoipa::path(post, path = "/users", request_body = Vec<User>,
    responses((status = 200, body = Accepted), (status = 400, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn post_users(
    State(state): State<Arc<AppState>>,
    JsonBody(users): JsonBody<Vec<User>>,
) -> Result<Json<Accepted>, ApiError> {
    ingest(&state, users, User::validate, Record::User).await
}

/// Log events (impressions, clicks, watches, purchases, ratings …). Events may name
/// items not yet in the catalog; such items join it, with no text, at the next training.
#[utoipa::path(post, path = "/events", request_body = Vec<Event>,
    responses((status = 200, body = Accepted), (status = 400, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn post_events(
    State(state): State<Arc<AppState>>,
    JsonBody(events): JsonBody<Vec<Event>>,
) -> Result<Json<Accepted>, ApiError> {
    ingest(&state, events, Event::validate, Record::Event).await
}
