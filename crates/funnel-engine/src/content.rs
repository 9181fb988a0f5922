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

/// Scores (query, document) pairs together: a cross-encoder, for reranking the top of a
/// result list. Like [`TextEmbedder`], passed in by the caller.
pub trait PairScorer {
    /// A label for reports, e.g. the model folder.
    fn name(&self) -> String;
    /// One relevance score per document, in order; higher is more relevant.
    fn score(&self, query: &str, documents: &[&str]) -> Result<Vec<f32>, String>;
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

/// Identifies a text without keeping it: its length, FNV-1a 64 and CRC-32 (two unrelated
/// hashes, so an accidental match of all three is out of reach for any real catalog).
fn text_key(text: &str) -> u128 {
    let fnv = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (u128::from(fnv) << 64) | (u128::from(crc32fast::hash(text.as_bytes())) << 32) | (text.len() as u128 & 0xffff_ffff)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ContentIndex {
    pub model: String,
    /// Row i is catalog item i.
    index: VectorIndex,
    ef_search: usize,
    /// The key of the text each row was embedded from, so the next training re-embeds
    /// only items whose text changed.
    keys: Vec<u128>,
}

/// How many vectors a build embedded and how many it took over from the previous snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentBuild {
    pub embedded: usize,
    pub reused: usize,
}

impl ContentIndex {
    /// Embeds every item, taking the vector of an unchanged text from `previous` (the
    /// last snapshot's index, when it used the same model); `None` when the catalog is
    /// larger than `config.max_items`.
    pub fn build(
        items: &[Item],
        embedder: &dyn TextEmbedder,
        config: &ContentConfig,
        previous: Option<&ContentIndex>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Option<(Self, ContentBuild)>, EngineError> {
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
        let keys: Vec<u128> = texts.iter().map(|t| text_key(t)).collect();
        let known: rustc_hash::FxHashMap<u128, u32> = match previous.filter(|p| p.model == embedder.name()) {
            Some(previous) => previous.keys.iter().enumerate().map(|(row, &key)| (key, row as u32)).collect(),
            None => Default::default(),
        };
        let missing: Vec<usize> = (0..items.len()).filter(|&i| !known.contains_key(&keys[i])).collect();
        let stats = ContentBuild { embedded: missing.len(), reused: items.len() - missing.len() };
        if stats.reused > 0 {
            progress(stats.reused);
        }
        let refs: Vec<&str> = missing.iter().map(|&i| texts[i].as_str()).collect();
        let fresh =
            if refs.is_empty() { Vec::new() } else { embedder.embed(&refs, progress).map_err(EngineError::Content)? };
        let previous_dim = previous.and_then(|p| p.vector(0)).map_or(0, <[f32]>::len);
        let dim = fresh.first().map_or(previous_dim, Vec::len);
        if stats.reused > 0 && previous_dim != dim {
            // The model folder changed under the same name: embed everything afresh.
            return Self::build(items, embedder, config, None, progress);
        }
        if fresh.len() != missing.len() || fresh.iter().any(|v| v.len() != dim) || dim == 0 {
            return Err(EngineError::Content("the embedder returned vectors of the wrong number or size".into()));
        }
        let mut fresh = fresh.into_iter();
        let mut data = Vec::with_capacity(items.len() * dim);
        for key in &keys {
            match (known.get(key), previous) {
                (Some(&row), Some(previous)) => data.extend_from_slice(previous.index.vector(row)),
                _ => data.extend(fresh.next().expect("one fresh vector per missing text")),
            }
        }
        let params = HnswParams { m: config.hnsw_m, ef_construction: config.ef_construction, seed: 42 };
        let index = VectorIndex::build(data, dim, Metric::Cosine, params, config.exact_below)
            .map_err(|e| EngineError::Content(e.to_string()))?;
        Ok(Some((Self { model: embedder.name(), index, ef_search: config.ef_search, keys }, stats)))
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
