//! Content vectors: every catalog item's text (title, categories, tags, text fields)
//! embedded at training time by a sentence-transformers model, kept in a nearest-
//! neighbour index (exact for small catalogs, HNSW above `content.exact_below`). A
//! user's profile is the mean of the vectors of the items they engaged with; an item
//! without interactions is reachable from the first day through its text.

use funnel_ann::{HnswParams, Metric, Neighbor, VectorIndex};
use funnel_core::Item;
use serde::{Deserialize, Serialize};

use crate::{ContentConfig, EngineError};

/// Turns texts into vectors. The engine does not run models itself: the caller passes
/// one in (the `funnel` command wraps its MiniLM embedder; tests pass a toy).
pub trait TextEmbedder {
    /// A label for the manifest, e.g. the model folder.
    fn name(&self) -> String;
    /// One vector per text, in order; calls `progress(n)` as batches of `n` finish.
    fn embed(&self, texts: &[&str], progress: &mut dyn FnMut(usize)) -> Result<Vec<Vec<f32>>, String>;
}

/// Longest text given to the embedder (MiniLM reads 256 word pieces anyway).
const MAX_TEXT_CHARS: usize = 2000;

/// The text an item is embedded from.
pub fn content_text(item: &Item) -> String {
    let mut parts: Vec<&str> = vec![item.title.as_str()];
    parts.extend(item.categories.iter().chain(&item.tags).map(String::as_str));
    parts.extend(
        item.fields.values().map(String::as_str).filter(|t| !t.starts_with("http://") && !t.starts_with("https://")),
    );
    let mut text = parts.into_iter().filter(|p| !p.trim().is_empty()).collect::<Vec<_>>().join(". ");
    if text.len() > MAX_TEXT_CHARS {
        let cut = (0..=MAX_TEXT_CHARS).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(cut);
    }
    text
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ContentIndex {
    pub model: String,
    /// Row i is catalog item i.
    index: VectorIndex,
    ef_search: usize,
}

impl ContentIndex {
    /// Embeds every item; `None` when the catalog is larger than `config.max_items`.
    pub fn build(
        items: &[Item],
        embedder: &dyn TextEmbedder,
        config: &ContentConfig,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Option<Self>, EngineError> {
        if items.is_empty() {
            return Ok(None);
        }
        if items.len() > config.max_items {
            tracing::warn!(
                items = items.len(),
                max_items = config.max_items,
                "content vectors skipped: the catalog is larger than content.max_items"
            );
            return Ok(None);
        }
        let texts: Vec<String> = items.iter().map(content_text).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = embedder.embed(&refs, progress).map_err(EngineError::Content)?;
        let dim = vectors.first().map_or(0, Vec::len);
        if vectors.len() != items.len() || vectors.iter().any(|v| v.len() != dim) || dim == 0 {
            return Err(EngineError::Content("the embedder returned vectors of the wrong number or size".into()));
        }
        let params = HnswParams { m: config.hnsw_m, ef_construction: config.ef_construction, seed: 42 };
        let index = VectorIndex::build(vectors.concat(), dim, Metric::Cosine, params, config.exact_below)
            .map_err(|e| EngineError::Content(e.to_string()))?;
        Ok(Some(Self { model: embedder.name(), index, ef_search: config.ef_search }))
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn kind(&self) -> &'static str {
        match self.index {
            VectorIndex::Exact(_) => "exact",
            VectorIndex::Hnsw(_) => "hnsw",
        }
    }

    /// Mean of the (unit) vectors of `items`; `None` for no items.
    pub fn profile(&self, items: impl IntoIterator<Item = u32>) -> Option<Vec<f32>> {
        let mut sum: Option<Vec<f32>> = None;
        for item in items.into_iter().filter(|&i| (i as usize) < self.len()) {
            let vector = self.index.vector(item);
            match &mut sum {
                Some(sum) => sum.iter_mut().zip(vector).for_each(|(s, v)| *s += v),
                None => sum = Some(vector.to_vec()),
            }
        }
        sum
    }

    pub fn vector(&self, item: u32) -> Option<&[f32]> {
        ((item as usize) < self.len()).then(|| self.index.vector(item))
    }

    /// The `k` items nearest to `query` (cosine), nearest first.
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<Neighbor> {
        self.index.search(query, k, self.ef_search.max(k)).unwrap_or_default()
    }
}
