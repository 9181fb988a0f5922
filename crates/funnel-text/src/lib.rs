//! Text analysis (normalisation, tokenisation, stop words, stemming) and an in-memory
//! BM25 index with "more like this" lookups, and fusion of ranked lists (RRF, weighted).
//!
//! It knows nothing of items, events or snapshots on disk: the engine hands it texts
//! with weights and serialises the index with serde.

mod analyzer;
mod bm25;
pub mod fusion;

pub use analyzer::{Analyzer, AnalyzerConfig};
pub use bm25::{Bm25Index, Bm25Params, DocText, Hit};
