//! Importers: read a file of items, users or events and append it to the log as one
//! all-or-nothing transaction. Files are streamed (constant memory); `.gz` files are
//! decompressed on the fly. A bad line stops the import with `file:line` and the reason,
//! unless `skip_bad` is set, in which case it is counted and reported.
//!
//! Formats and their schemas are documented in the README ("Importing data").

mod json;
mod movielens;
mod source;
mod table;
mod time;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use funnel_core::Record;

pub use json::{BeirQuery, Qrel, read_beir_queries, read_qrels};
pub use source::open_text;
pub use time::parse_timestamp;

use crate::{FileLog, StoreError};

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Items,
    Users,
    Events,
}

/// How a file is laid out. `Auto` decides by the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Auto,
    Jsonl,
    Csv,
    Tsv,
    /// `u.data`, `u.item`, `u.user` (ml-100k) or `ratings.csv`, `movies.csv` (ml-latest).
    Movielens,
    /// BEIR `corpus.jsonl`: `{_id, title, text, …}`.
    Beir,
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub kind: Kind,
    pub format: Format,
    /// Skip bad lines (counting them) instead of failing the whole import.
    pub skip_bad: bool,
}

/// A line that could not be turned into a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    /// The field at fault, when one can be named.
    pub field: Option<String>,
    pub reason: String,
}

impl LineError {
    pub fn new(line: u64, field: Option<&str>, reason: impl Into<String>) -> Self {
        Self { line, field: field.map(str::to_owned), reason: reason.into() }
    }
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}: field `{field}`: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}:{}: {}{}; nothing was imported (use --skip-bad to skip bad lines)",
        file.display(), error.line,
        error.field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default(),
        error.reason)]
    BadLine { file: PathBuf, error: LineError },
    #[error("{}: {reason}", file.display())]
    Unsupported { file: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub records: u64,
    pub skipped: u64,
    /// The first few skipped lines and why.
    pub skipped_examples: Vec<LineError>,
    pub bytes: u64,
}

const SKIP_EXAMPLES: usize = 10;

/// Yields records one at a time from a file.
pub(crate) trait RecordSource {
    fn next_record(&mut self) -> Option<Result<Record, LineError>>;
}

/// Bytes read from the underlying file so far (compressed bytes for `.gz`).
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    pub fn bytes(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Reads records from a file without a log (for evaluation, splitting, conversion):
/// `visit` gets each record; a bad line is an error unless `skip_bad` is set.
/// `on_progress` is called now and then with the file bytes consumed so far.
pub fn read_file(
    path: &Path,
    options: &ImportOptions,
    visit: &mut dyn FnMut(Record) -> Result<(), ImportError>,
    on_progress: &mut dyn FnMut(u64),
) -> Result<ImportReport, ImportError> {
    let progress = Progress::default();
    let mut source = open_source(path, options, &progress)?;
    let mut report = ImportReport::default();
    let mut seen: u64 = 0;
    while let Some(next) = source.next_record() {
        match next {
            Ok(record) => {
                visit(record)?;
                report.records += 1;
            }
            Err(error) if options.skip_bad => {
                report.skipped += 1;
                if report.skipped_examples.len() < SKIP_EXAMPLES {
                    report.skipped_examples.push(error);
                }
            }
            Err(error) => return Err(ImportError::BadLine { file: path.to_owned(), error }),
        }
        seen += 1;
        if seen.is_multiple_of(16_384) {
            on_progress(progress.bytes());
        }
    }
    report.bytes = progress.bytes();
    on_progress(report.bytes);
    Ok(report)
}

/// Every event of an events file, in file order.
pub fn read_events(path: &Path, format: Format) -> Result<Vec<funnel_core::Event>, ImportError> {
    let mut events = Vec::new();
    read_kind(path, Kind::Events, format, &mut |record| {
        if let Record::Event(event) = record {
            events.push(event);
        }
    })?;
    Ok(events)
}

/// Every item of an items file, in file order.
pub fn read_items(path: &Path, format: Format) -> Result<Vec<funnel_core::Item>, ImportError> {
    let mut items = Vec::new();
    read_kind(path, Kind::Items, format, &mut |record| {
        if let Record::Item(item) = record {
            items.push(item);
        }
    })?;
    Ok(items)
}

fn read_kind(path: &Path, kind: Kind, format: Format, keep: &mut dyn FnMut(Record)) -> Result<(), ImportError> {
    let options = ImportOptions { kind, format, skip_bad: false };
    read_file(
        path,
        &options,
        &mut |record| {
            keep(record);
            Ok(())
        },
        &mut |_| {},
    )
    .map(|_| ())
}

/// Imports `path` into `log` as one transaction: all of it, or (on any error) nothing.
pub fn import_file(
    log: &FileLog,
    path: &Path,
    options: &ImportOptions,
    on_progress: &mut dyn FnMut(u64),
) -> Result<ImportReport, ImportError> {
    let mut tx = log.begin_import()?;
    let mut report = read_file(path, options, &mut |record| Ok(tx.push(&record)?), on_progress)?;
    report.records = tx.commit()?;
    Ok(report)
}

fn open_source(
    path: &Path,
    options: &ImportOptions,
    progress: &Progress,
) -> Result<Box<dyn RecordSource>, ImportError> {
    let unsupported = |reason: String| ImportError::Unsupported { file: path.to_owned(), reason };
    let format = resolve_format(path, options.format).map_err(unsupported)?;
    let reader = source::open_counted(path, progress)?;
    let kind = options.kind;
    Ok(match format {
        Format::Jsonl | Format::Beir => Box::new(json::JsonLines::new(reader, kind)),
        Format::Csv => Box::new(table::Table::new(reader, b',', kind, None)),
        Format::Tsv => Box::new(table::Table::new(reader, b'\t', kind, None)),
        Format::Movielens => movielens::open(path, reader, kind).map_err(unsupported)?,
        Format::Auto => unreachable!("resolved above"),
    })
}

/// Decides the format from the file name when it is `Auto`.
fn resolve_format(path: &Path, format: Format) -> Result<Format, String> {
    if format != Format::Auto {
        return Ok(format);
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".json") {
        Ok(Format::Jsonl)
    } else if name.ends_with(".csv") {
        Ok(Format::Csv)
    } else if name.ends_with(".tsv") {
        Ok(Format::Tsv)
    } else if matches!(name, "u.data" | "u.item" | "u.user") || name.starts_with("u1.") {
        Ok(Format::Movielens)
    } else {
        Err("cannot tell the format from the file name; pass --format jsonl|csv|tsv|movielens|beir".to_owned())
    }
}

#[cfg(test)]
mod tests;
