//! The log format. A log is a folder of segments `0000000001.seg`, `0000000002.seg`, …
//! read in name order. A segment starts with a 16-byte header (`FUNNELOG`, a u32 format
//! version, four reserved bytes) followed by frames:
//!
//! ```text
//! u32 LE payload length | u32 LE CRC-32 of payload | payload: JSON records, one per line
//! ```
//!
//! One frame is one atomic batch. Only the newest segment can end in a torn frame (a
//! crash during a write); the writer truncates it on open and logs that. A bad frame
//! anywhere else is corruption and an error. Imports are written to a `.tmp` file and
//! renamed into place when complete, so a failed import leaves nothing behind.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use funnel_core::Record;

use crate::{RecordLog, StoreError};

const MAGIC: &[u8; 8] = b"FUNNELOG";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 16;
const FRAME_HEADER_LEN: u64 = 8;
/// Refuse frames above this size: a corrupt length must not make us allocate gigabytes.
const MAX_FRAME: u32 = 256 << 20;
/// Import frames are cut at about this many payload bytes.
const IMPORT_FRAME_BYTES: usize = 1 << 20;

fn header() -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header
}

fn segment_name(number: u64) -> String {
    format!("{number:010}.seg")
}

/// Segment files of `dir` in log order, with their numbers.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut segments = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(segments),
        Err(e) => return Err(StoreError::io(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(StoreError::io(dir))?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(number) = number {
            segments.push((number, path));
        }
    }
    segments.sort();
    Ok(segments)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(StoreError::io(dir))
}

/// Encodes records as a frame: header plus JSON lines.
fn encode_frame(records: &[Record], out: &mut Vec<u8>) -> Result<(), StoreError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN as usize]);
    for record in records {
        serde_json::to_writer(&mut *out, record)?;
        out.push(b'\n');
    }
    seal_frame(out, start);
    Ok(())
}

/// Writes the length and checksum of the frame that starts at `start`.
fn seal_frame(out: &mut [u8], start: usize) {
    let payload = &out[start + FRAME_HEADER_LEN as usize..];
    let len = u32::try_from(payload.len()).expect("frames are cut well below 4 GiB");
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// How a segment's frames ended.
enum Tail {
    Clean,
    /// A torn or corrupt frame at this offset; everything from here on is garbage.
    Torn {
        offset: u64,
        reason: String,
    },
}

/// Reads a segment's frames, handing each payload to `visit`.
fn read_segment(path: &Path, visit: &mut dyn FnMut(&[u8]) -> Result<(), StoreError>) -> Result<Tail, StoreError> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(StoreError::io(path))?;
    check_header(path, &bytes)?;
    let mut offset = HEADER_LEN as usize;
    while offset < bytes.len() {
        let torn = |reason: &str| Tail::Torn { offset: offset as u64, reason: reason.to_owned() };
        if bytes.len() - offset < FRAME_HEADER_LEN as usize {
            return Ok(torn("incomplete frame header"));
        }
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().expect("4 bytes"));
        if len > MAX_FRAME {
            return Ok(torn("frame length out of range"));
        }
        let body = offset + FRAME_HEADER_LEN as usize;
        let end = body + len as usize;
        if end > bytes.len() {
            return Ok(torn("incomplete frame"));
        }
        if crc32fast::hash(&bytes[body..end]) != crc {
            return Ok(torn("checksum mismatch"));
        }
        visit(&bytes[body..end])?;
        offset = end;
    }
    Ok(Tail::Clean)
}

fn check_header(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt { path: path.to_owned(), offset: 0, reason: reason.to_owned() };
    if bytes.len() < HEADER_LEN as usize || &bytes[..8] != MAGIC {
        return Err(corrupt("not a Funnel log segment (bad header)"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version > VERSION {
        return Err(StoreError::Newer { path: path.to_owned(), found: version, supported: VERSION });
    }
    Ok(())
}

fn decode_payload(
    path: &Path,
    payload: &[u8],
    visit: &mut dyn FnMut(Record) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for record in serde_json::Deserializer::from_slice(payload).into_iter::<Record>() {
        let record = record.map_err(|e| StoreError::Corrupt {
            path: path.to_owned(),
            offset: 0,
            reason: format!("a frame with a valid checksum does not decode: {e}"),
        })?;
        visit(record)?;
    }
    Ok(())
}

/// Counts per segment, for `funnel status`-like reporting and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentStats {
    pub segments: usize,
    pub frames: u64,
    pub bytes: u64,
}

/// A read-only view of a log folder. Takes no lock: it may run beside a writer, and
/// then treats a torn frame at the very end as "not written yet".
#[derive(Debug, Clone)]
pub struct LogReader {
    dir: PathBuf,
}

impl LogReader {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn stats(&self) -> Result<SegmentStats, StoreError> {
        let segments = list_segments(&self.dir)?;
        let mut stats = SegmentStats { segments: segments.len(), frames: 0, bytes: 0 };
        for (_, path) in &segments {
            read_segment(path, &mut |payload| {
                stats.frames += 1;
                stats.bytes += payload.len() as u64;
                Ok(())
            })?;
        }
        Ok(stats)
    }

    pub fn scan(&self, visit: &mut dyn FnMut(Record) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let segments = list_segments(&self.dir)?;
        let last = segments.len().saturating_sub(1);
        for (index, (_, path)) in segments.iter().enumerate() {
            let tail = read_segment(path, &mut |payload| decode_payload(path, payload, visit))?;
            if let Tail::Torn { offset, reason } = tail
                && index != last
            {
                return Err(StoreError::Corrupt { path: path.clone(), offset, reason });
            }
        }
        Ok(())
    }
}

struct Active {
    number: u64,
    file: Option<File>,
}

/// The single writer of a log folder. Holds an exclusive lock on `LOCK` for its life.
pub struct FileLog {
    dir: PathBuf,
    _lock: File,
    active: Mutex<Active>,
}

impl std::fmt::Debug for FileLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLog").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl FileLog {
    /// Opens (creating if needed) the log in `dir`, takes the writer lock, removes
    /// leftovers of interrupted imports and truncates a torn tail.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(StoreError::io(&lock_path))?;
        lock.try_lock().map_err(|_| StoreError::Locked { path: dir.clone() })?;
        remove_abandoned_imports(&dir)?;
        let segments = list_segments(&dir)?;
        if let Some((_, last)) = segments.last() {
            repair_tail(last)?;
        }
        let number = segments.last().map_or(0, |(n, _)| *n);
        Ok(Self { dir, _lock: lock, active: Mutex::new(Active { number, file: None }) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn reader(&self) -> LogReader {
        LogReader::new(&self.dir)
    }

    /// Starts an all-or-nothing import. Nothing is visible until [`ImportTx::commit`].
    pub fn begin_import(&self) -> Result<ImportTx<'_>, StoreError> {
        ImportTx::new(self)
    }

    fn append_frame(&self, frame: &[u8]) -> Result<(), StoreError> {
        let mut active = self.active.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if active.file.is_none() {
            active.file = Some(self.open_active(&mut active.number)?);
        }
        let path = self.dir.join(segment_name(active.number));
        let file = active.file.as_mut().expect("opened above");
        let result = file.write_all(frame).and_then(|()| file.sync_data());
        if let Err(e) = result {
            // The file may now end in a partial frame: drop the handle so the next
            // open repairs it rather than appending after garbage.
            active.file = None;
            return Err(StoreError::io(path)(e));
        }
        Ok(())
    }

    /// Opens the newest segment for appending, or starts the first one.
    fn open_active(&self, number: &mut u64) -> Result<File, StoreError> {
        if *number == 0 {
            *number = 1;
            return self.create_segment(*number);
        }
        let path = self.dir.join(segment_name(*number));
        OpenOptions::new().append(true).open(&path).map_err(StoreError::io(path))
    }

    fn create_segment(&self, number: u64) -> Result<File, StoreError> {
        let path = self.dir.join(segment_name(number));
        let mut file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(StoreError::io(&path))?;
        file.write_all(&header()).and_then(|()| file.sync_all()).map_err(StoreError::io(&path))?;
        sync_dir(&self.dir)?;
        Ok(file)
    }

    /// Renames a finished import file into the log as the next segment.
    fn publish(&self, tmp: &Path) -> Result<(), StoreError> {
        let mut active = self.active.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let number = active.number + 1;
        let path = self.dir.join(segment_name(number));
        fs::rename(tmp, &path).map_err(StoreError::io(&path))?;
        sync_dir(&self.dir)?;
        active.number = number;
        active.file = None;
        Ok(())
    }
}

impl RecordLog for FileLog {
    fn append(&self, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut frame = Vec::with_capacity(256 * records.len());
        encode_frame(records, &mut frame)?;
        self.append_frame(&frame)
    }

    fn scan(&self, visit: &mut dyn FnMut(Record) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.reader().scan(visit)
    }
}

fn remove_abandoned_imports(dir: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(StoreError::io(dir))? {
        let path = entry.map_err(StoreError::io(dir))?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            tracing::warn!(path = %path.display(), "removing an import that did not finish");
            fs::remove_file(&path).map_err(StoreError::io(&path))?;
        }
    }
    Ok(())
}

/// Cuts a torn frame off the end of the newest segment.
fn repair_tail(path: &Path) -> Result<(), StoreError> {
    if fs::metadata(path).map_err(StoreError::io(path))?.len() < HEADER_LEN {
        // A crash while the segment was being created: rewrite its header.
        tracing::warn!(path = %path.display(), "segment header incomplete; rewriting it");
        fs::write(path, header()).map_err(StoreError::io(path))?;
        return Ok(());
    }
    if let Tail::Torn { offset, reason } = read_segment(path, &mut |_| Ok(()))? {
        let size = fs::metadata(path).map_err(StoreError::io(path))?.len();
        tracing::warn!(
            path = %path.display(),
            offset,
            dropped_bytes = size - offset,
            reason,
            "log ends in a torn frame (a write interrupted by a crash); truncating it"
        );
        let file = OpenOptions::new().write(true).open(path).map_err(StoreError::io(path))?;
        file.set_len(offset).and_then(|()| file.sync_all()).map_err(StoreError::io(path))?;
    }
    Ok(())
}

/// An import in progress: records go to a temporary file that becomes a segment only
/// on [`commit`](ImportTx::commit). Dropping it without commit deletes the file.
pub struct ImportTx<'log> {
    log: &'log FileLog,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    frame: Vec<u8>,
    frame_start: usize,
    records: u64,
}

impl<'log> ImportTx<'log> {
    fn new(log: &'log FileLog) -> Result<Self, StoreError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = log.dir.join(format!("import-{}-{n}.tmp", std::process::id()));
        let file = File::create(&tmp).map_err(StoreError::io(&tmp))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header()).map_err(StoreError::io(&tmp))?;
        let mut tx = Self { log, tmp, out: Some(out), frame: Vec::new(), frame_start: 0, records: 0 };
        tx.start_frame();
        Ok(tx)
    }

    fn start_frame(&mut self) {
        self.frame.clear();
        self.frame.extend_from_slice(&[0u8; FRAME_HEADER_LEN as usize]);
        self.frame_start = 0;
    }

    pub fn push(&mut self, record: &Record) -> Result<(), StoreError> {
        serde_json::to_writer(&mut self.frame, record)?;
        self.frame.push(b'\n');
        self.records += 1;
        if self.frame.len() >= IMPORT_FRAME_BYTES {
            self.flush_frame()?;
        }
        Ok(())
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    fn flush_frame(&mut self) -> Result<(), StoreError> {
        if self.frame.len() == FRAME_HEADER_LEN as usize {
            return Ok(());
        }
        seal_frame(&mut self.frame, self.frame_start);
        let out = self.out.as_mut().expect("open until commit");
        out.write_all(&self.frame).map_err(StoreError::io(&self.tmp))?;
        self.start_frame();
        Ok(())
    }

    /// Makes the whole import durable and visible at once.
    pub fn commit(mut self) -> Result<u64, StoreError> {
        self.flush_frame()?;
        let out = self.out.take().expect("open until commit");
        let file = out.into_inner().map_err(|e| StoreError::io(&self.tmp)(e.into_error()))?;
        file.sync_all().map_err(StoreError::io(&self.tmp))?;
        drop(file);
        if self.records > 0 {
            self.log.publish(&self.tmp)?;
        } else {
            fs::remove_file(&self.tmp).map_err(StoreError::io(&self.tmp))?;
        }
        Ok(self.records)
    }
}

impl Drop for ImportTx<'_> {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
