use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use funnel_engine::EngineError;
use funnel_store::StoreError;
use serde::Serialize;

/// An error as the API returns it: a status and `{"error": {code, field, message}}`.
/// Internal errors are logged in full and answered with a generic message.
#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `malformed_json`, `invalid_field`, `not_found`, …
    pub code: &'static str,
    /// The offending field or parameter, when one can be named (`[3].timestamp`, `k`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, field: Option<String>, message: impl Into<String>) -> Self {
        Self { status, code, field, message: message.into() }
    }

    pub fn bad_param(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", Some(field.to_owned()), message)
    }

    pub fn invalid_field(field: String, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", Some(field), message)
    }

    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", None, "internal error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, field: self.field, message: self.message } };
        (self.status, Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::BadRequest { field, reason } => {
                let field = if field == "query" { "q" } else { field };
                Self::bad_param(field, reason)
            }
            EngineError::UnknownItem(id) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", Some("id".into()), format!("no item with id `{id}`"))
            }
            EngineError::UnknownSurface(surface, known) => {
                Self::bad_param("surface", format!("no surface `{surface}` is configured (configured: {known})"))
            }
            EngineError::NoSnapshot => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_snapshot",
                None,
                "no snapshot has been trained yet: run `funnel train`; the server picks it up by itself",
            ),
            other => Self::internal(&other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::internal(&error)
    }
}
