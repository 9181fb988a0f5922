//! JSON Lines: one object per line. Events follow Funnel's event schema exactly; items
//! and users are mapped leniently so that common layouts (BEIR's `_id`, extra columns)
//! import without a conversion step.

use std::io::BufRead;
use std::path::Path;

use funnel_core::{Event, Item, Record, User};
use serde_json::{Map, Value};

use super::source::Lines;
use super::{ImportError, Kind, LineError, RecordSource, parse_timestamp};

pub(crate) struct JsonLines {
    lines: Lines,
    kind: Kind,
}

impl JsonLines {
    pub fn new(reader: Box<dyn BufRead>, kind: Kind) -> Self {
        Self { lines: Lines::new(reader), kind }
    }
}

impl RecordSource for JsonLines {
    fn next_record(&mut self) -> Option<Result<Record, LineError>> {
        loop {
            let kind = self.kind;
            let line = self.lines.line + 1;
            let text = match self.lines.next_str()? {
                Ok(text) => text,
                Err(e) => return Some(Err(e)),
            };
            if text.trim().is_empty() {
                continue;
            }
            return Some(parse_record(text, kind).map_err(|(field, reason)| LineError { line, field, reason }));
        }
    }
}

type FieldError = (Option<String>, String);

fn parse_record(text: &str, kind: Kind) -> Result<Record, FieldError> {
    match kind {
        Kind::Events => {
            let de = &mut serde_json::Deserializer::from_str(text);
            let event: Event = serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                let field = (path != ".").then_some(path);
                (field, e.into_inner().to_string())
            })?;
            event.validate().map_err(|e| (Some(e.field.to_owned()), e.reason))?;
            Ok(Record::Event(event))
        }
        Kind::Items => item_from_object(object(text)?).map(Record::Item),
        Kind::Users => user_from_object(object(text)?).map(Record::User),
    }
}

fn object(text: &str) -> Result<Map<String, Value>, FieldError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err((None, "expected a JSON object".to_owned())),
        Err(e) => Err((None, format!("malformed JSON: {e}"))),
    }
}

fn bad(field: &str, reason: impl Into<String>) -> FieldError {
    (Some(field.to_owned()), reason.into())
}

fn id_of(value: &Value, field: &str) -> Result<String, FieldError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(bad(field, "expected a string or a number")),
    }
}

/// A list given as a JSON array of strings or as one `a|b|c` string.
fn string_list(value: &Value, field: &str) -> Result<Vec<String>, FieldError> {
    match value {
        Value::String(s) => Ok(split_list(s)),
        Value::Array(values) => {
            values.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(|| bad(field, "expected strings"))).collect()
        }
        _ => Err(bad(field, "expected an array of strings or a `|`-separated string")),
    }
}

pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(['|', ';']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Some(true),
        "false" | "0" | "no" | "n" => Some(false),
        _ => None,
    }
}

fn item_from_object(map: Map<String, Value>) -> Result<Item, FieldError> {
    let id = map
        .get("id")
        .map(|v| ("id", v))
        .or_else(|| map.get("_id").map(|v| ("_id", v)))
        .ok_or_else(|| bad("id", "missing (an item needs `id` or `_id`)"))?;
    let mut item = Item::bare(id_of(id.1, id.0)?);
    for (key, value) in map {
        if value.is_null() || key == "id" || key == "_id" {
            continue;
        }
        set_item_field(&mut item, &key, value)?;
    }
    item.validate().map_err(|e| bad(e.field, e.reason))?;
    Ok(item)
}

fn set_item_field(item: &mut Item, key: &str, value: Value) -> Result<(), FieldError> {
    match (key, value) {
        ("title", Value::String(s)) => item.title = s,
        ("title", _) => return Err(bad(key, "expected a string")),
        ("categories" | "category" | "genres", v) => item.categories = string_list(&v, key)?,
        ("tags", v) => item.tags = string_list(&v, key)?,
        ("available" | "safe", Value::Bool(b)) => {
            if key == "available" {
                item.available = b
            } else {
                item.safe = b
            }
        }
        ("available" | "safe", _) => return Err(bad(key, "expected true or false")),
        ("created_at", v) => {
            let text = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                _ => return Err(bad(key, "expected seconds since 1970 or an ISO date")),
            };
            item.created_at = Some(parse_timestamp(&text).map_err(|e| bad(key, e))?);
        }
        ("fields", Value::Object(fields)) => {
            for (name, v) in fields {
                let text = v.as_str().ok_or_else(|| bad("fields", format!("`{name}` must be a string")))?;
                item.fields.insert(name, text.to_owned());
            }
        }
        ("attributes", Value::Object(attributes)) => {
            for (name, v) in attributes {
                let number = v.as_f64().ok_or_else(|| bad("attributes", format!("`{name}` must be a number")))?;
                item.attributes.insert(name, number);
            }
        }
        (_, Value::String(s)) => {
            item.fields.insert(key.to_owned(), s);
        }
        (_, Value::Number(n)) => {
            let number = n.as_f64().ok_or_else(|| bad(key, "number out of range"))?;
            item.attributes.insert(key.to_owned(), number);
        }
        (_, Value::Bool(b)) => {
            item.attributes.insert(key.to_owned(), f64::from(u8::from(b)));
        }
        _ => return Err(bad(key, "expected a string, a number or a boolean")),
    }
    Ok(())
}

fn user_from_object(map: Map<String, Value>) -> Result<User, FieldError> {
    let id = map
        .get("id")
        .map(|v| ("id", v))
        .or_else(|| map.get("_id").map(|v| ("_id", v)))
        .ok_or_else(|| bad("id", "missing (a user needs `id`)"))?;
    let mut user = User { id: id_of(id.1, id.0)?, attributes: Default::default() };
    for (key, value) in map {
        match (key.as_str(), value) {
            ("id" | "_id", _) | (_, Value::Null) => {}
            ("attributes", Value::Object(attributes)) => user.attributes.extend(attributes),
            (_, value) => {
                user.attributes.insert(key, value);
            }
        }
    }
    user.validate().map_err(|e| bad(e.field, e.reason))?;
    Ok(user)
}

/// A BEIR query: `{"_id": …, "text": …}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct BeirQuery {
    #[serde(rename = "_id")]
    pub id: String,
    pub text: String,
}

/// One relevance judgment: query, document, grade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qrel {
    pub query: String,
    pub doc: String,
    pub grade: i32,
}

fn bad_line(path: &Path, line: u64, reason: String) -> ImportError {
    ImportError::BadLine { file: path.to_owned(), error: LineError::new(line, None, reason) }
}

/// Reads a BEIR `queries.jsonl`.
pub fn read_beir_queries(path: &Path) -> Result<Vec<BeirQuery>, ImportError> {
    let mut lines = Lines::new(super::open_text(path)?);
    let mut queries = Vec::new();
    loop {
        let line = lines.line + 1;
        let Some(text) = lines.next_str() else { break };
        let text = text.map_err(|e| bad_line(path, e.line, e.reason))?;
        if text.trim().is_empty() {
            continue;
        }
        let query = serde_json::from_str(text).map_err(|e| bad_line(path, line, e.to_string()))?;
        queries.push(query);
    }
    Ok(queries)
}

/// Reads a BEIR qrels TSV (`query-id corpus-id score`, with a header line) or a TREC
/// qrels file (`qid 0 docid grade`, no header).
pub fn read_qrels(path: &Path) -> Result<Vec<Qrel>, ImportError> {
    let mut lines = Lines::new(super::open_text(path)?);
    let mut qrels = Vec::new();
    loop {
        let line = lines.line + 1;
        let Some(text) = lines.next_str() else { break };
        let text = text.map_err(|e| bad_line(path, e.line, e.reason))?;
        let columns: Vec<&str> = text.split_whitespace().collect();
        let (query, doc, grade) = match columns.as_slice() {
            [] => continue,
            [q, d, g] => (*q, *d, *g),
            [q, _, d, g] => (*q, *d, *g),
            _ => return Err(bad_line(path, line, "expected 3 (BEIR) or 4 (TREC) columns".into())),
        };
        let Ok(grade) = grade.parse::<i32>() else {
            if line == 1 {
                continue; // the BEIR header
            }
            return Err(bad_line(path, line, format!("grade `{grade}` is not an integer")));
        };
        qrels.push(Qrel { query: query.to_owned(), doc: doc.to_owned(), grade });
    }
    Ok(qrels)
}
