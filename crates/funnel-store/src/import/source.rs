//! Opening files: plain or gzip-compressed, with a byte counter for progress bars.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::Ordering;

use flate2::read::MultiGzDecoder;

use super::{ImportError, Progress};
use crate::StoreError;

struct Counted<R> {
    inner: R,
    progress: Progress,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `path` for reading, decompressing gzip (by its magic bytes), counting the
/// file bytes consumed into `progress`.
pub(crate) fn open_counted(path: &Path, progress: &Progress) -> Result<Box<dyn BufRead>, ImportError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotFound { path: path.to_owned() },
        _ => StoreError::io(path)(e),
    })?;
    let counted = Counted { inner: file, progress: progress.clone() };
    let mut buffered = BufReader::with_capacity(1 << 16, counted);
    let head = buffered.fill_buf().map_err(StoreError::io(path))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(buffered))))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Opens a text file (gzip or plain) without progress counting.
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead>, ImportError> {
    open_counted(path, &Progress::default())
}

/// Reads lines as bytes, counting line numbers from 1, and checks UTF-8.
pub(crate) struct Lines {
    reader: Box<dyn BufRead>,
    buf: Vec<u8>,
    pub line: u64,
}

impl Lines {
    pub fn new(reader: Box<dyn BufRead>) -> Self {
        Self { reader, buf: Vec::with_capacity(4096), line: 0 }
    }

    /// The next line without its line ending, or an error naming the line.
    pub fn next_line(&mut self) -> Option<Result<&[u8], super::LineError>> {
        self.buf.clear();
        self.line += 1;
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => None,
            Ok(_) => {
                while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                    self.buf.pop();
                }
                Some(Ok(&self.buf))
            }
            Err(e) => Some(Err(super::LineError::new(self.line, None, format!("read failed: {e}")))),
        }
    }

    /// Like [`next_line`](Self::next_line) but requires UTF-8.
    pub fn next_str(&mut self) -> Option<Result<&str, super::LineError>> {
        let line = self.line + 1;
        match self.next_line()? {
            Ok(bytes) => Some(std::str::from_utf8(bytes).map_err(|e| {
                super::LineError::new(
                    line,
                    None,
                    format!("not valid UTF-8 (byte {}); convert the file to UTF-8", e.valid_up_to() + 1),
                )
            })),
            Err(e) => Some(Err(e)),
        }
    }
}
