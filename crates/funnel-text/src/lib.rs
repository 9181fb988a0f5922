//! Text analysis (normalisation, tokenisation, stop words, stemming) and an in-memory
//! BM25 index with "more like this" lookups, fusion of ranked lists (RRF, weighted), and
//! spell correction of queries from the indexed vocabulary.
//!
//! It knows nothing of items, events or snapshots on disk: the engine hands it texts
//! with weights and serialises the index with serde.

mod analyzer;
mod bm25;
pub mod fusion;
mod spell;

pub use analyzer::{Analyzer, AnalyzerConfig, nfkc};
pub use bm25::{Bm25Index, Bm25Params, DocText, Hit};
pub use spell::{Corrected, Correction, SpellConfig, Speller, Vocabulary, words};
