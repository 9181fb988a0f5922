//! CSV and TSV files with a header row. Columns are found by name; common aliases are
//! accepted (`userId`, `movieId`, `rating`, …). Columns that are not part of the schema
//! become item attributes (numbers) or text fields, and user attributes.

use std::collections::BTreeMap;
use std::io::BufRead;

use funnel_core::{Event, EventContext, EventKind, Item, Record, User};

use super::json::{parse_bool, split_list};
use super::{Kind, LineError, RecordSource, parse_timestamp};

const USER: &[&str] = &["user", "user_id", "userid"];
const ITEM: &[&str] = &["item", "item_id", "itemid", "movieid", "movie_id", "doc", "docid"];
const ID: &[&str] = &["id", "_id"];
const KIND: &[&str] = &["kind", "event", "event_type", "type"];
const VALUE: &[&str] = &["value", "rating", "weight", "watch_seconds", "revenue", "count", "plays"];
const TIME: &[&str] = &["timestamp", "time", "ts", "date"];
const TITLE: &[&str] = &["title", "name"];
const CATEGORIES: &[&str] = &["categories", "category", "genres", "genre"];

fn find(headers: &[String], names: &[&str]) -> Option<usize> {
    headers.iter().position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)))
}

fn missing(names: &[&str]) -> String {
    format!("the header has no `{}` column (accepted names: {})", names[0], names.join(", "))
}

struct EventColumns {
    user: usize,
    item: usize,
    kind: Option<usize>,
    default_kind: EventKind,
    value: Option<usize>,
    timestamp: Option<usize>,
    request_id: Option<usize>,
    surface: Option<usize>,
    position: Option<usize>,
    propensity: Option<usize>,
    arm: Option<usize>,
}

impl EventColumns {
    fn new(headers: &[String], forced_kind: Option<EventKind>) -> Result<Self, String> {
        let value = find(headers, VALUE);
        let rating_column = value.is_some_and(|v| headers[v].eq_ignore_ascii_case("rating"));
        let default_kind = forced_kind.unwrap_or(if rating_column { EventKind::Rating } else { EventKind::Click });
        Ok(Self {
            user: find(headers, USER).ok_or_else(|| missing(USER))?,
            item: find(headers, ITEM).ok_or_else(|| missing(ITEM))?,
            kind: find(headers, KIND),
            default_kind,
            value,
            timestamp: find(headers, TIME),
            request_id: find(headers, &["request_id"]),
            surface: find(headers, &["surface"]),
            position: find(headers, &["position"]),
            propensity: find(headers, &["propensity", "propensity_score"]),
            arm: find(headers, &["arm", "experiment_arm"]),
        })
    }
}

enum Columns {
    Events(EventColumns),
    Items { id: usize, title: Option<usize>, categories: Option<usize> },
    Users { id: usize },
}

pub(crate) struct Table {
    reader: csv::Reader<Box<dyn BufRead>>,
    headers: Vec<String>,
    columns: Result<Columns, String>,
    record: csv::StringRecord,
    failed_header: bool,
}

impl Table {
    pub fn new(reader: Box<dyn BufRead>, delimiter: u8, kind: Kind, forced_kind: Option<EventKind>) -> Self {
        let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).flexible(false).from_reader(reader);
        let (headers, columns) = match reader.headers() {
            Ok(h) => {
                let headers: Vec<String> = h.iter().map(|s| s.trim().to_owned()).collect();
                let columns = match kind {
                    Kind::Events => EventColumns::new(&headers, forced_kind).map(Columns::Events),
                    Kind::Items => {
                        find(&headers, ID).or_else(|| find(&headers, ITEM)).ok_or_else(|| missing(ID)).map(|id| {
                            Columns::Items { id, title: find(&headers, TITLE), categories: find(&headers, CATEGORIES) }
                        })
                    }
                    Kind::Users => find(&headers, ID)
                        .or_else(|| find(&headers, USER))
                        .ok_or_else(|| missing(ID))
                        .map(|id| Columns::Users { id }),
                };
                (headers, columns)
            }
            Err(e) => (Vec::new(), Err(csv_reason(&e))),
        };
        Self { reader, headers, columns, record: csv::StringRecord::new(), failed_header: false }
    }
}

fn csv_reason(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("column {} is not valid UTF-8; convert the file to UTF-8", err.field() + 1)
        }
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} columns where the header has {expected_len}")
        }
        _ => error.to_string(),
    }
}

impl RecordSource for Table {
    fn next_record(&mut self) -> Option<Result<Record, LineError>> {
        let columns = match &self.columns {
            Ok(columns) => columns,
            Err(reason) if !self.failed_header => {
                self.failed_header = true;
                return Some(Err(LineError::new(1, None, reason.clone())));
            }
            Err(_) => return None,
        };
        let line = match self.reader.read_record(&mut self.record) {
            Ok(false) => return None,
            Ok(true) => self.record.position().map_or(0, |p| p.line()),
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Some(Err(LineError::new(line, None, csv_reason(&e))));
            }
        };
        let row = Row { record: &self.record, headers: &self.headers, line };
        Some(match columns {
            Columns::Events(c) => row.event(c).map(Record::Event),
            Columns::Items { id, title, categories } => row.item(*id, *title, *categories).map(Record::Item),
            Columns::Users { id } => row.user(*id).map(Record::User),
        })
    }
}

struct Row<'a> {
    record: &'a csv::StringRecord,
    headers: &'a [String],
    line: u64,
}

impl Row<'_> {
    fn get(&self, column: usize) -> &str {
        self.record.get(column).unwrap_or("").trim()
    }

    fn cell(&self, column: Option<usize>) -> Option<&str> {
        column.map(|c| self.get(c)).filter(|s| !s.is_empty())
    }

    fn error(&self, column: usize, reason: impl Into<String>) -> LineError {
        LineError::new(self.line, Some(&self.headers[column]), reason)
    }

    fn required(&self, column: usize) -> Result<String, LineError> {
        let value = self.get(column);
        if value.is_empty() { Err(self.error(column, "must not be empty")) } else { Ok(value.to_owned()) }
    }

    fn number<T: std::str::FromStr>(&self, column: Option<usize>, what: &str) -> Result<Option<T>, LineError> {
        match (column, self.cell(column)) {
            (Some(c), Some(text)) => {
                text.parse().map(Some).map_err(|_| self.error(c, format!("`{text}` is not {what}")))
            }
            _ => Ok(None),
        }
    }

    fn event(&self, c: &EventColumns) -> Result<Event, LineError> {
        let kind = match (c.kind, self.cell(c.kind)) {
            (Some(column), Some(text)) => EventKind::parse(text).ok_or_else(|| {
                let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                self.error(column, format!("unknown event kind `{text}` (one of {})", names.join(", ")))
            })?,
            _ => c.default_kind,
        };
        let timestamp = match (c.timestamp, self.cell(c.timestamp)) {
            (Some(column), Some(text)) => parse_timestamp(text).map_err(|e| self.error(column, e))?,
            _ => 0,
        };
        let event = Event {
            user: self.required(c.user)?,
            item: self.required(c.item)?,
            kind,
            value: self.number(c.value, "a number")?,
            timestamp,
            context: EventContext {
                request_id: self.cell(c.request_id).map(str::to_owned),
                surface: self.cell(c.surface).map(str::to_owned),
                position: self.number(c.position, "a 1-based position")?,
                propensity: self.number(c.propensity, "a probability")?,
                arm: self.cell(c.arm).map(str::to_owned),
            },
        };
        event.validate().map_err(|e| LineError::new(self.line, Some(e.field), e.reason))?;
        Ok(event)
    }

    fn item(&self, id: usize, title: Option<usize>, categories: Option<usize>) -> Result<Item, LineError> {
        let mut item = Item::bare(self.required(id)?);
        item.title = self.cell(title).unwrap_or_default().to_owned();
        item.categories = self
            .cell(categories)
            .map(split_list)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c != "(no genres listed)")
            .collect();
        for (column, header) in self.headers.iter().enumerate() {
            if [Some(id), title, categories].contains(&Some(column)) {
                continue;
            }
            let Some(text) = self.cell(Some(column)) else { continue };
            match header.to_ascii_lowercase().as_str() {
                "tags" => item.tags = split_list(text),
                "created_at" => item.created_at = Some(parse_timestamp(text).map_err(|e| self.error(column, e))?),
                "available" | "safe" => {
                    let flag = parse_bool(text).ok_or_else(|| self.error(column, "expected true or false"))?;
                    if header.eq_ignore_ascii_case("safe") { item.safe = flag } else { item.available = flag }
                }
                _ => match text.parse::<f64>() {
                    Ok(number) if number.is_finite() => {
                        item.attributes.insert(header.clone(), number);
                    }
                    _ => {
                        item.fields.insert(header.clone(), text.to_owned());
                    }
                },
            }
        }
        item.validate().map_err(|e| LineError::new(self.line, Some(e.field), e.reason))?;
        Ok(item)
    }

    fn user(&self, id: usize) -> Result<User, LineError> {
        let mut attributes = BTreeMap::new();
        for (column, header) in self.headers.iter().enumerate() {
            let Some(text) = self.cell(Some(column)).filter(|_| column != id) else { continue };
            let value = match text.parse::<f64>() {
                Ok(n) if n.is_finite() => serde_json::json!(n),
                _ => serde_json::json!(text),
            };
            attributes.insert(header.clone(), value);
        }
        let user = User { id: self.required(id)?, attributes };
        user.validate().map_err(|e| LineError::new(self.line, Some(e.field), e.reason))?;
        Ok(user)
    }
}
