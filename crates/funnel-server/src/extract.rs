//! Extractors that turn bad input into errors naming the field.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON body. Malformed JSON is a 400 with line and column; a value of the wrong
/// shape is a 422 naming the path (`[3].timestamp`); a body over the limit is a 413.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    None,
                    "request body is over the limit; send smaller batches",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", None, rejection.body_text())
            }
        })?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", None, format!("malformed JSON: {inner}"))
            } else if path == "." {
                ApiError::invalid_field("(body)".into(), format!("{inner}; send a JSON array of records"))
            } else {
                ApiError::invalid_field(path, inner.to_string())
            }
        })?;
        deserializer.end().map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                None,
                format!("trailing data after the JSON value: {e}"),
            )
        })?;
        Ok(JsonBody(value))
    }
}

const CONTEXT_PREFIX: &str = "context.";
const WEIGHT_PREFIX: &str = "weight.";

/// Query-string parameters, read by name with errors that name the parameter. Unknown
/// parameters are refused, so a typo (`?usr=`) is not silently ignored.
#[derive(Debug)]
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_param("query string", e.body_text()))?;
        let mut map = HashMap::new();
        for (key, value) in pairs {
            if map.insert(key.clone(), value).is_some() {
                return Err(ApiError::bad_param(&key, "given more than once"));
            }
        }
        Ok(Params(map))
    }
}

impl Params {
    /// Refuses any parameter not in `allowed`; an entry ending in `.*` (`context.*`)
    /// admits every parameter with that prefix.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        let known = |k: &String| {
            allowed.iter().any(|a| match a.strip_suffix('*') {
                Some(prefix) => k.starts_with(prefix),
                None => a == k,
            })
        };
        match self.0.keys().find(|k| !known(k)) {
            Some(unknown) => {
                Err(ApiError::bad_param(unknown, format!("unknown parameter (accepted: {})", allowed.join(", "))))
            }
            None => Ok(()),
        }
    }

    /// `context.country=DE&context.device=mobile` as {country: DE, device: mobile}.
    pub fn context(&self) -> Result<BTreeMap<String, String>, ApiError> {
        let mut context = BTreeMap::new();
        for (key, value) in &self.0 {
            if let Some(name) = key.strip_prefix(CONTEXT_PREFIX) {
                if name.is_empty() || value.trim().is_empty() {
                    return Err(ApiError::bad_param(key, "context parameters look like `context.country=DE`"));
                }
                context.insert(name.to_owned(), value.clone());
            }
        }
        Ok(context)
    }

    /// `weight.bm25=0.3&weight.dense=0.7` as {bm25: 0.3, dense: 0.7}.
    pub fn weights(&self) -> Result<BTreeMap<String, f32>, ApiError> {
        let mut weights = BTreeMap::new();
        for (key, value) in &self.0 {
            if let Some(name) = key.strip_prefix(WEIGHT_PREFIX) {
                let weight: f32 =
                    value.parse().map_err(|_| ApiError::bad_param(key, format!("`{value}` is not a number")))?;
                if name.is_empty() || !(weight.is_finite() && (0.0..=1000.0).contains(&weight)) {
                    return Err(ApiError::bad_param(
                        key,
                        "source weights look like `weight.bm25=0.3`, between 0 and 1000",
                    ));
                }
                weights.insert(name.to_owned(), weight);
            }
        }
        Ok(weights)
    }

    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ApiError> {
        Ok(self.optional_number(name)?.unwrap_or(default))
    }

    /// A number when the parameter is given (an empty value is an error, not absent).
    pub fn optional_number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(text) => {
                text.parse().map(Some).map_err(|_| ApiError::bad_param(name, format!("`{text}` is not a valid number")))
            }
        }
    }

    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.0.get(name).map(String::as_str) {
            None | Some("false" | "0") => Ok(false),
            Some("" | "true" | "1") => Ok(true),
            Some(other) => Err(ApiError::bad_param(name, format!("`{other}` is not true or false"))),
        }
    }
}
