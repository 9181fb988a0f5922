//! MovieLens files. ml-100k: `u.data` (user, item, rating, time; tab-separated),
//! `u.item` (`|`-separated, latin-1, 19 genre flags), `u.user`. ml-latest: `ratings.csv`
//! and `movies.csv`, which are CSV with headers and go through the CSV reader.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use funnel_core::{Event, EventContext, EventKind, Item, Record, User};

use super::source::Lines;
use super::{Kind, LineError, RecordSource, parse_timestamp, table::Table};

const GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

pub(crate) fn open(path: &Path, reader: Box<dyn BufRead>, kind: Kind) -> Result<Box<dyn RecordSource>, String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(name);
    if name.ends_with(".csv") {
        return Ok(Box::new(Table::new(reader, b',', kind, Some(EventKind::Rating))));
    }
    let lines = Lines::new(reader);
    Ok(match kind {
        Kind::Events => Box::new(Ml100k { lines, parse: rating_line }),
        Kind::Items => Box::new(Ml100k { lines, parse: item_line }),
        Kind::Users => Box::new(Ml100k { lines, parse: user_line }),
    })
}

type ParseLine = fn(&str, u64) -> Result<Record, LineError>;

struct Ml100k {
    lines: Lines,
    parse: ParseLine,
}

impl RecordSource for Ml100k {
    fn next_record(&mut self) -> Option<Result<Record, LineError>> {
        loop {
            let line = self.lines.line + 1;
            let bytes = match self.lines.next_line()? {
                Ok(bytes) => bytes,
                Err(e) => return Some(Err(e)),
            };
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            // ml-100k is latin-1: every byte is the code point of the same value.
            let text: String = bytes.iter().map(|&b| char::from(b)).collect();
            return Some((self.parse)(&text, line));
        }
    }
}

fn columns(text: &str, separator: char, at_least: usize, line: u64) -> Result<Vec<&str>, LineError> {
    let columns: Vec<&str> = text.split(separator).map(str::trim).collect();
    if columns.len() < at_least {
        return Err(LineError::new(line, None, format!("expected {at_least} columns, found {}", columns.len())));
    }
    Ok(columns)
}

fn rating_line(text: &str, line: u64) -> Result<Record, LineError> {
    let c = columns(text, '\t', 4, line)?;
    let rating: f64 =
        c[2].parse().map_err(|_| LineError::new(line, Some("rating"), format!("`{}` is not a number", c[2])))?;
    let timestamp = parse_timestamp(c[3]).map_err(|e| LineError::new(line, Some("timestamp"), e))?;
    let event = Event {
        user: c[0].to_owned(),
        item: c[1].to_owned(),
        kind: EventKind::Rating,
        value: Some(rating),
        timestamp,
        context: EventContext::default(),
    };
    event.validate().map_err(|e| LineError::new(line, Some(e.field), e.reason))?;
    Ok(Record::Event(event))
}

fn item_line(text: &str, line: u64) -> Result<Record, LineError> {
    let c = columns(text, '|', 5 + GENRES.len(), line)?;
    let mut item = Item::bare(c[0]);
    item.title = c[1].to_owned();
    item.created_at = parse_release_date(c[2]);
    if !c[4].is_empty() {
        item.fields.insert("url".to_owned(), c[4].to_owned());
    }
    item.categories =
        GENRES.iter().zip(&c[5..]).filter(|(_, flag)| **flag == "1").map(|(genre, _)| (*genre).to_owned()).collect();
    item.validate().map_err(|e| LineError::new(line, Some(e.field), e.reason))?;
    Ok(Record::Item(item))
}

/// `01-Jan-1995` → seconds; `None` when empty or malformed (some titles lack a date).
fn parse_release_date(text: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mut parts = text.split('-');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = MONTHS.iter().position(|m| Some(*m) == parts.next())? as u32 + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    Some(super::time::days_from_civil(year, month, day) * 86_400)
}

fn user_line(text: &str, line: u64) -> Result<Record, LineError> {
    let c = columns(text, '|', 5, line)?;
    let mut attributes = BTreeMap::new();
    let age: f64 =
        c[1].parse().map_err(|_| LineError::new(line, Some("age"), format!("`{}` is not a number", c[1])))?;
    attributes.insert("age".to_owned(), serde_json::json!(age));
    attributes.insert("gender".to_owned(), serde_json::json!(c[2]));
    attributes.insert("occupation".to_owned(), serde_json::json!(c[3]));
    attributes.insert("zip".to_owned(), serde_json::json!(c[4]));
    let user = User { id: c[0].to_owned(), attributes };
    user.validate().map_err(|e| LineError::new(line, Some(e.field), e.reason))?;
    Ok(Record::User(user))
}
