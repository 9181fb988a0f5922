use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{InvalidRecord, Timestamp, check_finite, check_id};

/// A catalog entry. Only `id` is required; everything else has a neutral default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub id: String,
    #[serde(default)]
    pub title: String,
    /// Free-text fields by name (e.g. `text`, `description`). Searched by BM25.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Numeric attributes (price, length, download rank, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// An unavailable item (sold out, withdrawn) is never served.
    #[serde(default = "yes")]
    pub available: bool,
    /// An unsafe item (flagged by moderation) is never served.
    #[serde(default = "yes")]
    pub safe: bool,
}

fn yes() -> bool {
    true
}

impl Item {
    /// An item that has nothing but its id: what an event naming an unknown item implies.
    pub fn bare(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            title: String::new(),
            fields: BTreeMap::new(),
            categories: Vec::new(),
            tags: Vec::new(),
            attributes: BTreeMap::new(),
            created_at: None,
            available: true,
            safe: true,
        }
    }

    pub fn validate(&self) -> Result<(), InvalidRecord> {
        check_id("id", &self.id)?;
        for value in self.attributes.values() {
            check_finite("attributes", *value)?;
        }
        Ok(())
    }

    /// All searchable text: title, then the free-text fields in name order.
    pub fn text_fields(&self) -> impl Iterator<Item = &str> {
        self.fields.values().map(String::as_str)
    }
}

/// A user. Attributes are free-form JSON values (country, age band, plan, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

impl User {
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        check_id("id", &self.id)
    }
}
