//! Context-matched popularity for cold start: users are grouped into segments by their
//! attribute values (`country=DE`, `age=25-34`), and each segment keeps the items most
//! popular among its members. A request matches the segments of the user's stored
//! attributes and of the context it carries, so a brand-new user who arrives with
//! `{"country": "DE", "device": "mobile"}` gets what people like them engage with.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SegmentConfig;

/// One segment: its name, its members and its most popular items.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// `key=value`.
    pub name: String,
    pub users: u32,
    /// (item, share of the segment's decayed weight), best first.
    pub top: Vec<(u32, f32)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Segments {
    /// Segments with enough members, sorted by name.
    pub segments: Vec<Segment>,
    /// Each user's segments (indices into `segments`) in CSR form, by the user index of
    /// the snapshot's histories.
    pub user_offsets: Vec<u64>,
    pub user_segments: Vec<u32>,
    /// Numeric attributes with bucket edges, to label request values as training did.
    pub buckets: BTreeMap<String, Vec<f64>>,
}

/// The segment name of one attribute value (`country=de`, lower case); `None` for values
/// that do not segment (null, arrays, objects, empty strings).
pub(crate) fn segment_name(key: &str, value: &Value, buckets: &BTreeMap<String, Vec<f64>>) -> Option<String> {
    // Case-insensitive: a request's `Country=de` finds the users stored with country "DE".
    let key = key.trim().to_lowercase();
    if key.is_empty() || key.contains('=') {
        return None;
    }
    let edges = buckets.iter().find(|(name, _)| name.to_lowercase() == key).map(|(_, edges)| edges);
    let label = match value {
        Value::String(s) if s.trim().is_empty() => return None,
        Value::String(s) => match (edges, s.trim().parse::<f64>()) {
            (Some(edges), Ok(x)) if x.is_finite() => bucket_label(x, edges),
            _ => s.trim().to_owned(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            let x = n.as_f64()?;
            match edges {
                Some(edges) => bucket_label(x, edges),
                // 3.0 and 3 are one segment (a request's "3" must find it).
                None if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
                None => n.to_string(),
            }
        }
        _ => return None,
    };
    Some(format!("{key}={}", label.to_lowercase()))
}

/// `<18`, `18-25`, …, `56+` for edges [18, 25, …, 56]: the half-open interval holding `x`.
fn bucket_label(x: f64, edges: &[f64]) -> String {
    let at = edges.partition_point(|&e| e <= x);
    let show = |e: f64| if e.fract() == 0.0 { format!("{e:.0}") } else { e.to_string() };
    match at {
        0 => format!("<{}", show(edges[0])),
        n if n == edges.len() => format!("{}+", show(edges[n - 1])),
        n => format!("{}-{}", show(edges[n - 1]), show(edges[n])),
    }
}

/// What training needs to build the segments.
pub(crate) struct SegmentInput<'a> {
    /// Attributes per user index (empty for users without a record).
    pub attributes: &'a [BTreeMap<String, Value>],
    /// (user, item, decayed weight) of every positive event.
    pub weighted: &'a mut dyn Iterator<Item = (u32, u32, f64)>,
}

impl Segments {
    pub(crate) fn build(input: SegmentInput<'_>, config: &SegmentConfig) -> Self {
        let of_user: Vec<Vec<String>> = input
            .attributes
            .iter()
            .map(|attributes| {
                attributes
                    .iter()
                    .filter(|(key, _)| config.attributes.is_empty() || config.attributes.contains(key))
                    .filter_map(|(key, value)| segment_name(key, value, &config.buckets))
                    .collect()
            })
            .collect();
        let mut members: BTreeMap<&str, u32> = BTreeMap::new();
        for name in of_user.iter().flatten() {
            *members.entry(name).or_default() += 1;
        }
        members.retain(|_, n| *n >= config.min_users);
        let slot: FxHashMap<&str, u32> = members.keys().enumerate().map(|(i, &name)| (name, i as u32)).collect();
        let mut user_offsets = vec![0u64];
        let mut user_segments = Vec::new();
        for names in &of_user {
            user_segments.extend(names.iter().filter_map(|n| slot.get(n.as_str()).copied()));
            user_offsets.push(user_segments.len() as u64);
        }
        let mut scores: Vec<FxHashMap<u32, f64>> = vec![FxHashMap::default(); members.len()];
        for (user, item, weight) in input.weighted {
            let Some(range) = user_range(&user_offsets, user) else { continue };
            for &s in &user_segments[range] {
                *scores[s as usize].entry(item).or_default() += weight;
            }
        }
        let segments = members
            .iter()
            .zip(scores)
            .map(|((&name, &users), scores)| {
                let total: f64 = scores.values().sum();
                let mut top: Vec<(u32, f32)> =
                    scores.into_iter().map(|(item, s)| (item, (s / total.max(f64::MIN_POSITIVE)) as f32)).collect();
                top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                top.truncate(config.items);
                Segment { name: name.to_owned(), users, top }
            })
            .collect();
        Self { segments, user_offsets, user_segments, buckets: config.buckets.clone() }
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    fn find(&self, name: &str) -> Option<u32> {
        self.segments.binary_search_by(|s| s.name.as_str().cmp(name)).ok().map(|i| i as u32)
    }

    pub fn name(&self, segment: u32) -> &str {
        &self.segments[segment as usize].name
    }

    /// Each user's segments (by user index), for a model that learns from them.
    pub fn of_users(&self) -> Vec<Vec<u32>> {
        self.user_offsets.windows(2).map(|w| self.user_segments[w[0] as usize..w[1] as usize].to_vec()).collect()
    }

    /// The segments a request falls in: the stored user's, with any attribute the
    /// request's context names replaced by the context's value. Only known segments,
    /// in name order.
    pub fn matching(&self, user: Option<u32>, context: &BTreeMap<String, String>) -> Vec<u32> {
        let stored = user.and_then(|u| user_range(&self.user_offsets, u)).map_or(&[][..], |r| &self.user_segments[r]);
        let overridden = |s: &u32| {
            let key = self.segments[*s as usize].name.split_once('=').map_or("", |(key, _)| key);
            context.keys().any(|c| c.to_lowercase() == key)
        };
        let from_context = context
            .iter()
            .filter_map(|(key, value)| segment_name(key, &Value::String(value.clone()), &self.buckets))
            .filter_map(|name| self.find(&name));
        let mut ids: Vec<u32> = stored.iter().copied().filter(|s| !overridden(s)).chain(from_context).collect();
        // Segment ids follow name order.
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Items scored by their summed share across `segments`, best first, up to `limit`
    /// of those `keep` admits.
    pub fn top(&self, segments: &[u32], limit: usize, keep: &dyn Fn(u32) -> bool) -> Vec<(u32, f32)> {
        let mut summed: FxHashMap<u32, f32> = FxHashMap::default();
        for segment in segments.iter().filter_map(|&s| self.segments.get(s as usize)) {
            for &(item, share) in &segment.top {
                *summed.entry(item).or_default() += share;
            }
        }
        let mut scored: Vec<(u32, f32)> = summed.into_iter().filter(|&(item, _)| keep(item)).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(limit);
        scored
    }
}

fn user_range(offsets: &[u64], user: u32) -> Option<std::ops::Range<usize>> {
    let start = *offsets.get(user as usize)? as usize;
    let end = *offsets.get(user as usize + 1)? as usize;
    Some(start..end)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config() -> SegmentConfig {
        SegmentConfig { min_users: 2, ..SegmentConfig::default() }
    }

    #[test]
    fn names_label_strings_numbers_and_buckets() {
        let buckets: BTreeMap<String, Vec<f64>> = [("age".to_owned(), vec![18.0, 25.0, 35.0])].into();
        assert_eq!(segment_name("country", &json!("DE"), &buckets).unwrap(), "country=de");
        assert_eq!(segment_name("premium", &json!(true), &buckets).unwrap(), "premium=true");
        assert_eq!(segment_name("level", &json!(3), &buckets).unwrap(), "level=3");
        assert_eq!(segment_name("level", &json!(3.0), &buckets).unwrap(), "level=3");
        assert_eq!(segment_name("a=b", &json!("x"), &buckets), None);
        assert_eq!(segment_name("Country", &json!("DE"), &buckets).unwrap(), "country=de");
        assert_eq!(segment_name("AGE", &json!(20), &buckets).unwrap(), "age=18-25");
        assert_eq!(segment_name("age", &json!(17), &buckets).unwrap(), "age=<18");
        assert_eq!(segment_name("age", &json!(18), &buckets).unwrap(), "age=18-25");
        assert_eq!(segment_name("age", &json!("30"), &buckets).unwrap(), "age=25-35");
        assert_eq!(segment_name("age", &json!(40.5), &buckets).unwrap(), "age=35+");
        assert_eq!(segment_name("tags", &json!(["a"]), &buckets), None);
        assert_eq!(segment_name("note", &json!(" "), &buckets), None);
    }

    fn attrs(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    /// Users 0-2 are in DE and like item 10; users 3-5 in FR like item 20; item 30 is
    /// liked a little by everyone; user 6 is alone in IT.
    fn two_countries() -> Segments {
        let mut attributes = Vec::new();
        let mut events = Vec::new();
        for user in 0..7u32 {
            let country = match user {
                0..=2 => "DE",
                3..=5 => "FR",
                _ => "IT",
            };
            attributes.push(attrs(&[("country", json!(country)), ("device", json!("mobile"))]));
            events.push((user, if user < 3 { 10 } else { 20 }, 2.0));
            events.push((user, 30, 1.0));
        }
        Segments::build(SegmentInput { attributes: &attributes, weighted: &mut events.into_iter() }, &config())
    }

    #[test]
    fn each_segment_ranks_what_its_members_like() {
        let segments = two_countries();
        assert!(segments.find("country=it").is_none(), "one member is below min_users");
        let named = |name: &str| [segments.find(name).unwrap()];
        let de = segments.top(&named("country=de"), 10, &|_| true);
        assert_eq!(de[0].0, 10);
        assert!((de[0].1 - 2.0 / 3.0).abs() < 1e-6, "share of the segment's weight: {de:?}");
        assert_eq!(segments.top(&named("country=fr"), 10, &|_| true)[0].0, 20);
        let everyone = segments.top(&named("device=mobile"), 10, &|_| true);
        assert_eq!(everyone[0].0, 20, "FR and IT users make 20 the most liked on mobile: {everyone:?}");
        assert!(segments.top(&named("country=de"), 10, &|item| item != 10).iter().all(|&(i, _)| i != 10));
    }

    #[test]
    fn a_request_context_overrides_the_stored_attributes() {
        let segments = two_countries();
        let names = |user: Option<u32>, context: &BTreeMap<String, String>| -> Vec<&str> {
            segments.matching(user, context).into_iter().map(|s| segments.name(s)).collect()
        };
        assert_eq!(names(Some(0), &BTreeMap::new()), ["country=de", "device=mobile"]);
        let travelling: BTreeMap<String, String> = [("country".to_owned(), "FR".to_owned())].into();
        assert_eq!(names(Some(0), &travelling), ["country=fr", "device=mobile"]);
        assert_eq!(names(None, &travelling), ["country=fr"]);
        let unknown: BTreeMap<String, String> = [("country".to_owned(), "JP".to_owned())].into();
        assert!(names(None, &unknown).is_empty());
        assert!(names(Some(6), &unknown).contains(&"device=mobile"));
        assert_eq!(segments.of_users()[0], segments.matching(Some(0), &BTreeMap::new()));
    }
}
