use axum::Json;
use funnel_core::{Event, EventContext, EventKind, Item, ScoredItem, StageTrace, Trace, User};
use utoipa::OpenApi;

use crate::error::{ErrorBody, ErrorDetail};
use crate::wire::{Accepted, Health, SlateBody};
use crate::{ingest, ops, query};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Funnel",
        description = "Recommendation and search engine: ingestion, recommend, search, similar items."
    ),
    paths(
        ingest::post_items,
        ingest::post_users,
        ingest::post_events,
        query::recommend,
        query::search,
        query::similar,
        ops::health,
        ops::metrics
    ),
    components(schemas(
        Item,
        User,
        Event,
        EventKind,
        EventContext,
        ScoredItem,
        Trace,
        StageTrace,
        SlateBody,
        Accepted,
        Health,
        ErrorBody,
        ErrorDetail
    ))
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of this API.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
