use serde::{Deserialize, Serialize};

use crate::{InvalidRecord, Timestamp, check_finite, check_id};

/// What a user did with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The item was shown in a slate (an impression); `context.position` says where.
    Impression,
    View,
    Click,
    /// `value` is the watch time in seconds.
    Watch,
    /// `value` is the revenue, when known.
    Purchase,
    /// `value` is the rating.
    Rating,
    AddToCart,
    Like,
    Share,
    Skip,
    Dislike,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        Self::Impression,
        Self::View,
        Self::Click,
        Self::Watch,
        Self::Purchase,
        Self::Rating,
        Self::AddToCart,
        Self::Like,
        Self::Share,
        Self::Skip,
        Self::Dislike,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Impression => "impression",
            Self::View => "view",
            Self::Click => "click",
            Self::Watch => "watch",
            Self::Purchase => "purchase",
            Self::Rating => "rating",
            Self::AddToCart => "add_to_cart",
            Self::Like => "like",
            Self::Share => "share",
            Self::Skip => "skip",
            Self::Dislike => "dislike",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and how the item was served, when the event follows an impression.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surface: Option<String>,
    /// 1-based slot in the slate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// Probability with which the serving policy put this item in this position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propensity: Option<f64>,
    /// Experiment arm the request was assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
}

impl EventContext {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub user: String,
    pub item: String,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub timestamp: Timestamp,
    #[serde(default, skip_serializing_if = "EventContext::is_empty")]
    pub context: EventContext,
}

impl Event {
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        check_id("user", &self.user)?;
        check_id("item", &self.item)?;
        if let Some(value) = self.value {
            check_finite("value", value)?;
        }
        if self.timestamp < 0 {
            return Err(InvalidRecord::new("timestamp", "must be seconds since 1970, not negative"));
        }
        if self.context.position == Some(0) {
            return Err(InvalidRecord::new("context.position", "positions are 1-based"));
        }
        if let Some(p) = self.context.propensity
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(InvalidRecord::new("context.propensity", "must be in (0, 1]"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            user: "u".into(),
            item: "i".into(),
            kind: EventKind::Click,
            value: None,
            timestamp: 10,
            context: EventContext::default(),
        }
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(EventKind::parse("teleport"), None);
    }

    #[test]
    fn validation_names_the_field() {
        let mut bad = event();
        bad.context.propensity = Some(0.0);
        assert_eq!(bad.validate().unwrap_err().field, "context.propensity");
        let mut bad = event();
        bad.user.clear();
        assert_eq!(bad.validate().unwrap_err().field, "user");
        let mut bad = event();
        bad.value = Some(f64::NAN);
        assert_eq!(bad.validate().unwrap_err().field, "value");
        assert!(event().validate().is_ok());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err =
            serde_json::from_str::<Event>(r#"{"user":"u","item":"i","kind":"click","timestamp":1,"colour":"red"}"#)
                .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
