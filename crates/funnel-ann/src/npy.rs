//! Two-dimensional `f32` arrays in NumPy's `.npy` format (version 1.0, little-endian,
//! C order): the exchange format between `funnel embed --out`, the bench scripts and
//! the ANN examples.

use std::io::{Read, Write};
use std::path::Path;

use crate::AnnError;

const MAGIC: &[u8] = b"\x93NUMPY\x01\x00";

/// Rows of equal length, stored contiguously.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self, AnnError> {
        let cols = rows.first().map_or(0, Vec::len);
        if let Some(bad) = rows.iter().position(|r| r.len() != cols) {
            return Err(AnnError::Dimension { expected: cols, got: rows[bad].len() });
        }
        Ok(Self { rows: rows.len(), cols, data: rows.concat() })
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

pub fn write(path: &Path, matrix: &Matrix) -> Result<(), AnnError> {
    let io = |e: std::io::Error| AnnError::Io { path: path.to_owned(), source: e };
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", matrix.rows, matrix.cols);
    // Magic (8) + header length (2) + header + '\n' is padded to a multiple of 64.
    while !(MAGIC.len() + 2 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    file.write_all(MAGIC).map_err(io)?;
    file.write_all(&(header.len() as u16).to_le_bytes()).map_err(io)?;
    file.write_all(header.as_bytes()).map_err(io)?;
    for value in &matrix.data {
        file.write_all(&value.to_le_bytes()).map_err(io)?;
    }
    file.flush().map_err(io)
}

pub fn read(path: &Path) -> Result<Matrix, AnnError> {
    let io = |e: std::io::Error| AnnError::Io { path: path.to_owned(), source: e };
    let bad = |reason: &str| AnnError::Format { path: path.to_owned(), reason: reason.to_owned() };
    let mut bytes = Vec::new();
    std::fs::File::open(path).map_err(io)?.read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() < 10 || &bytes[..8] != MAGIC {
        return Err(bad("not a version 1.0 .npy file"));
    }
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(bytes.get(10..10 + header_len).ok_or_else(|| bad("truncated header"))?)
        .map_err(|_| bad("header is not UTF-8"))?;
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Err(bad("only little-endian float32 arrays in C order are supported"));
    }
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(|| bad("no shape in the header"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("shape is not a tuple of integers")))
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else { return Err(bad("the array is not two-dimensional")) };
    let body = &bytes[10 + header_len..];
    if rows.checked_mul(cols).and_then(|n| n.checked_mul(4)) != Some(body.len()) {
        return Err(bad("the data length does not match the shape"));
    }
    let data = body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(Matrix { rows, cols, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        let matrix = Matrix::from_rows(&[vec![1.0, -2.5, 3.0], vec![0.0, 1e-8, f32::MAX]]).unwrap();
        write(&path, &matrix).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 24) % 64, 0, "header padded to 64 bytes");
        assert_eq!(read(&path).unwrap(), matrix);
    }

    #[test]
    fn rejects_other_dtypes_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.npy");
        let mut bytes = MAGIC.to_vec();
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }\n";
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend([0u8; 8]);
        std::fs::write(&path, bytes).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("d.npy") && err.contains("float32"), "{err}");
    }
}
