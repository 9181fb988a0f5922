//! Nearest-neighbour search over dense vectors by inner product or cosine: an HNSW graph
//! for large sets ([`Hnsw`]), an exact scan for small ones ([`Exact`]), one front
//! ([`VectorIndex`]) that picks by size, and `.npy` files to move vectors between tools.

pub mod hnsw;
pub mod npy;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use hnsw::{Hnsw, HnswParams};

#[derive(Debug, thiserror::Error)]
pub enum AnnError {
    #[error("vector of dimension {got}, expected {expected}")]
    Dimension { expected: usize, got: usize },
    #[error("invalid index parameters: {0}")]
    Params(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
}

/// Similarity of two vectors. `Cosine` normalises stored and query vectors, then both
/// are inner products; `Dot` suits matrix-factorisation factors (maximum inner product).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    Cosine,
    Dot,
}

/// One result: the row number of the vector and its similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Neighbor {
    pub id: u32,
    pub score: f32,
}

/// Scales `v` to unit length (leaves a zero vector alone).
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Exact search: every query scans all vectors. Right for small sets, and the ground
/// truth for measuring an approximate index.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exact {
    dim: usize,
    metric: Metric,
    data: Vec<f32>,
}

impl Exact {
    pub fn new(mut data: Vec<f32>, dim: usize, metric: Metric) -> Result<Self, AnnError> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(AnnError::Dimension { expected: dim, got: data.len() % dim.max(1) });
        }
        if metric == Metric::Cosine {
            data.chunks_exact_mut(dim).for_each(normalise);
        }
        Ok(Self { dim, metric, data })
    }

    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn vector(&self, id: u32) -> &[f32] {
        &self.data[id as usize * self.dim..(id as usize + 1) * self.dim]
    }

    /// The `k` most similar vectors, most similar first (ties: lower id first).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Neighbor>, AnnError> {
        if query.len() != self.dim {
            return Err(AnnError::Dimension { expected: self.dim, got: query.len() });
        }
        let mut query = query.to_vec();
        if self.metric == Metric::Cosine {
            normalise(&mut query);
        }
        Ok(hnsw::scan(&self.data, self.dim, &query, k))
    }
}

/// Exact below a size threshold, HNSW above it.
#[derive(Debug, Serialize, Deserialize)]
pub enum VectorIndex {
    Exact(Exact),
    Hnsw(Hnsw),
}

impl VectorIndex {
    /// An exact index when there are fewer than `exact_below` vectors, else HNSW.
    pub fn build(
        data: Vec<f32>,
        dim: usize,
        metric: Metric,
        params: HnswParams,
        exact_below: usize,
    ) -> Result<Self, AnnError> {
        if data.len() / dim.max(1) < exact_below {
            Ok(Self::Exact(Exact::new(data, dim, metric)?))
        } else {
            Ok(Self::Hnsw(Hnsw::build(data, dim, metric, params)?))
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Exact(index) => index.len(),
            Self::Hnsw(index) => index.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn vector(&self, id: u32) -> &[f32] {
        match self {
            Self::Exact(index) => index.vector(id),
            Self::Hnsw(index) => index.vector(id),
        }
    }

    /// The `k` most similar vectors; `ef` is the HNSW search breadth (ignored by exact).
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<Neighbor>, AnnError> {
        match self {
            Self::Exact(index) => index.search(query, k),
            Self::Hnsw(index) => index.search(query, k, ef),
        }
    }
}

#[cfg(test)]
mod tests;
