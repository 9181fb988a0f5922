//! An immutable snapshot: everything a request reads, built by `train`, written as a
//! folder of files plus `manifest.json` (format version, counts, per-file size and
//! CRC-32). Loading checks the version and every checksum before anything is served.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use funnel_core::Timestamp;
use funnel_text::{Bm25Index, Speller};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::cf::Collaborative;
use crate::content::ContentIndex;
use crate::feedback::Feedback;
use crate::intent::{IntentModel, IntentReport};
use crate::linucb::LinUcb;
use crate::ranker::{RankerModel, RankerReport};
use crate::segments::Segments;
use crate::understand::QueryFacets;
use crate::{Catalog, EngineError, SearchConfig, TrainConfig};

/// Bumped whenever a part's encoding changes (postcard is not self-describing, so an old
/// file cannot be read by new code). 2: CF with an ANN index, content vectors.
/// 3: segments. 4: content text keys (unchanged items keep their vectors). 5: the spell
/// corrector's vocabulary; lone letters are no longer index terms. 6: learned rankers.
/// 7: impressions and rewards per item and segment (bandit feedback). 8: LinUCB arms in f64.
pub const FORMAT_VERSION: u32 = 8;
const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub crc32: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub id: String,
    /// The snapshot's clock: time decay and "now" are measured from here.
    pub as_of: Timestamp,
    pub items: usize,
    pub users: usize,
    pub events: u64,
    /// The collaborative-filtering model, if one was trained.
    #[serde(default)]
    pub cf_model: Option<String>,
    /// The content vectors' model and index kind, if items were embedded.
    #[serde(default)]
    pub content_model: Option<String>,
    /// User segments with their own popular items (context-matched cold start).
    #[serde(default)]
    pub segments: usize,
    /// Learned rankers by surface: how each was trained.
    #[serde(default)]
    pub rankers: BTreeMap<String, RankerReport>,
    /// The learned intent classifier's accuracy on held-out labels, next to the rules'.
    #[serde(default)]
    pub intent: Option<IntentReport>,
    pub train: TrainConfig,
    pub search: SearchConfig,
    pub files: Vec<FileEntry>,
}

/// Items ranked by time-decayed, weighted interaction counts.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Popularity {
    pub scores: Vec<f32>,
    /// Item indices, most popular first (ties by index); only items with a score > 0.
    pub order: Vec<u32>,
    /// Positive events per item (not decayed), and the most of any item.
    pub interactions: Vec<u32>,
    pub most_interactions: u32,
    /// Mean rating of the item (low ratings included); NaN without any.
    pub mean_rating: Vec<f32>,
}

/// Each user's positive interactions (item indices, sorted, distinct), in CSR form.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Histories {
    pub users: HashMap<String, u32>,
    pub offsets: Vec<u64>,
    pub items: Vec<u32>,
    /// Mean rating each user gave (by user index); NaN without any.
    pub mean_rating: Vec<f32>,
}

impl Popularity {
    /// ln(1 + the item's decayed popularity); 0 for an unknown item.
    pub fn log_score(&self, item: u32) -> f32 {
        self.scores.get(item as usize).map_or(0.0, |&s| s.max(0.0).ln_1p())
    }

    /// [`Popularity::log_score`] of the most popular item.
    pub fn log_top(&self) -> f32 {
        self.order.first().map_or(0.0, |&i| self.log_score(i))
    }
}

impl Histories {
    /// The mean rating the user gave (NaN for none or an unknown user).
    pub fn mean_rating(&self, user: &str) -> f32 {
        self.users.get(user).and_then(|&u| self.mean_rating.get(u as usize)).copied().unwrap_or(f32::NAN)
    }

    pub fn of(&self, user: &str) -> &[u32] {
        match self.users.get(user) {
            Some(&u) => &self.items[self.offsets[u as usize] as usize..self.offsets[u as usize + 1] as usize],
            None => &[],
        }
    }
}

#[derive(Debug)]
pub struct Snapshot {
    pub manifest: Manifest,
    pub catalog: Catalog,
    pub popularity: Popularity,
    pub histories: Histories,
    pub segments: Segments,
    /// Impressions and rewards, for the bandit policies.
    pub feedback: Feedback,
    /// LinUCB arms, when a surface explores with `linucb`.
    pub linucb: Option<LinUcb>,
    pub text: Bm25Index,
    /// Collaborative filtering, when the log has interactions to learn from.
    pub cf: Option<Collaborative>,
    /// Further CF models by kind (`ease`, `item-knn`, `als`), for `cf-<kind>` sources.
    pub cf_models: BTreeMap<String, Collaborative>,
    /// Item text vectors, when a model was configured (`content.model`).
    pub content: Option<ContentIndex>,
    /// Query spell correction, unless `[search.spell] enabled = false`.
    pub speller: Option<Speller>,
    /// Learned rankers by surface (`ranker = "gbdt"`).
    pub rankers: BTreeMap<String, RankerModel>,
    /// Each item's text (by catalog index), kept when `search.cross_encoder` is set: what
    /// the cross-encoder reads next to the query.
    pub passages: Option<Vec<String>>,
    /// The learned intent classifier, when `search.intent_labels` was set.
    pub intent: Option<IntentModel>,
    /// Titles and category names for query understanding (derived from the catalog on
    /// load, not stored).
    pub facets: QueryFacets,
}

fn snapshot_error(path: &Path, reason: impl Into<String>) -> EngineError {
    EngineError::Snapshot { path: path.to_owned(), reason: reason.into() }
}

/// Counts and checksums bytes on their way to a file.
struct Checksummed<W> {
    inner: W,
    hasher: crc32fast::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Streams one part to disk (no in-memory copy of the encoding).
fn write_part<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<FileEntry, EngineError> {
    let path = dir.join(name);
    let file = fs::File::create(&path).map_err(|e| snapshot_error(&path, e.to_string()))?;
    let mut out =
        Checksummed { inner: BufWriter::with_capacity(1 << 20, file), hasher: crc32fast::Hasher::new(), bytes: 0 };
    postcard::to_io(value, &mut out).map_err(|e| snapshot_error(&path, e.to_string()))?;
    out.flush().map_err(|e| snapshot_error(&path, e.to_string()))?;
    Ok(FileEntry { name: name.to_owned(), bytes: out.bytes, crc32: out.hasher.finalize() })
}

fn read_part<T: DeserializeOwned>(dir: &Path, manifest: &Manifest, name: &str) -> Result<T, EngineError> {
    let path = dir.join(name);
    let entry = manifest
        .files
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| snapshot_error(&dir.join(MANIFEST), format!("lists no file `{name}`")))?;
    let bytes = fs::read(&path).map_err(|e| snapshot_error(&path, e.to_string()))?;
    if bytes.len() as u64 != entry.bytes || crc32fast::hash(&bytes) != entry.crc32 {
        return Err(snapshot_error(&path, "size or checksum differs from the manifest (corrupt or truncated)"));
    }
    postcard::from_bytes(&bytes).map_err(|e| snapshot_error(&path, format!("does not decode: {e}")))
}

impl Snapshot {
    /// Writes the snapshot's files and manifest into `dir` (an empty folder).
    pub fn save(&mut self, dir: &Path) -> Result<(), EngineError> {
        self.manifest.files = vec![
            write_part(dir, "catalog.bin", &self.catalog)?,
            write_part(dir, "popularity.bin", &self.popularity)?,
            write_part(dir, "histories.bin", &self.histories)?,
            write_part(dir, "segments.bin", &self.segments)?,
            write_part(dir, "feedback.bin", &self.feedback)?,
            write_part(dir, "text.bin", &self.text)?,
        ];
        if let Some(cf) = &self.cf {
            self.manifest.files.push(write_part(dir, "cf.bin", cf)?);
        }
        for (kind, cf) in &self.cf_models {
            self.manifest.files.push(write_part(dir, &format!("cf-{kind}.bin"), cf)?);
        }
        if let Some(linucb) = &self.linucb {
            self.manifest.files.push(write_part(dir, "linucb.bin", linucb)?);
        }
        if let Some(content) = &self.content {
            self.manifest.files.push(write_part(dir, "content.bin", content)?);
        }
        if let Some(speller) = &self.speller {
            self.manifest.files.push(write_part(dir, "spell.bin", speller.vocabulary())?);
        }
        if !self.rankers.is_empty() {
            self.manifest.files.push(write_part(dir, "rankers.bin", &self.rankers)?);
        }
        if let Some(passages) = &self.passages {
            self.manifest.files.push(write_part(dir, "passages.bin", passages)?);
        }
        if let Some(intent) = &self.intent {
            self.manifest.files.push(write_part(dir, "intent.bin", intent)?);
        }
        let path = dir.join(MANIFEST);
        let json = serde_json::to_vec_pretty(&self.manifest).map_err(|e| snapshot_error(&path, e.to_string()))?;
        fs::write(&path, json).map_err(|e| snapshot_error(&path, e.to_string()))
    }

    /// Only the content vectors of the snapshot in `dir` (for reuse by the next training);
    /// `None` when it has none or cannot be read.
    pub fn load_content(dir: &Path) -> Option<ContentIndex> {
        let text = fs::read(dir.join(MANIFEST)).ok()?;
        let manifest: Manifest = serde_json::from_slice(&text).ok()?;
        if manifest.format_version != FORMAT_VERSION || !manifest.files.iter().any(|f| f.name == "content.bin") {
            return None;
        }
        read_part(dir, &manifest, "content.bin")
            .map_err(|error| tracing::warn!(%error, "previous content vectors not reused"))
            .ok()
    }

    pub fn load(dir: &Path) -> Result<Self, EngineError> {
        let path = dir.join(MANIFEST);
        let text = fs::read(&path).map_err(|e| snapshot_error(&path, e.to_string()))?;
        let version: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| snapshot_error(&path, e.to_string()))?;
        let found = version.get("format_version").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if found > u64::from(FORMAT_VERSION) {
            return Err(snapshot_error(
                &path,
                format!("format version {found} is newer than this build reads ({FORMAT_VERSION}); upgrade Funnel"),
            ));
        }
        if found < u64::from(FORMAT_VERSION) {
            return Err(snapshot_error(
                &path,
                format!(
                    "format version {found} was written by an older Funnel (this build reads {FORMAT_VERSION}); \
                     run `funnel train` to rebuild it"
                ),
            ));
        }
        let manifest: Manifest = serde_json::from_value(version).map_err(|e| snapshot_error(&path, e.to_string()))?;
        let mut catalog: Catalog = read_part(dir, &manifest, "catalog.bin")?;
        catalog.rebuild_index();
        let cf = match manifest.files.iter().any(|f| f.name == "cf.bin") {
            true => {
                let mut cf: Collaborative = read_part(dir, &manifest, "cf.bin")?;
                cf.rebuild_index();
                Some(cf)
            }
            false => None,
        };
        let mut cf_models = BTreeMap::new();
        for entry in &manifest.files {
            if let Some(kind) = entry.name.strip_prefix("cf-").and_then(|n| n.strip_suffix(".bin")) {
                let mut cf: Collaborative = read_part(dir, &manifest, &entry.name)?;
                cf.rebuild_index();
                cf_models.insert(kind.to_owned(), cf);
            }
        }
        let linucb = match manifest.files.iter().any(|f| f.name == "linucb.bin") {
            true => Some(read_part(dir, &manifest, "linucb.bin")?),
            false => None,
        };
        let content = match manifest.files.iter().any(|f| f.name == "content.bin") {
            true => Some(read_part(dir, &manifest, "content.bin")?),
            false => None,
        };
        // The delete index is rebuilt here rather than stored: it is many times the
        // vocabulary's size and takes a fraction of a second to build.
        let speller = match manifest.files.iter().any(|f| f.name == "spell.bin") {
            true => {
                let vocabulary = read_part(dir, &manifest, "spell.bin")?;
                Some(Speller::new(vocabulary, manifest.search.spell, manifest.search.stem))
            }
            false => None,
        };
        let rankers: BTreeMap<String, RankerModel> = match manifest.files.iter().any(|f| f.name == "rankers.bin") {
            true => read_part(dir, &manifest, "rankers.bin")?,
            false => BTreeMap::new(),
        };
        for (surface, ranker) in &rankers {
            let width_matches = ranker.model.width == ranker.schema.width();
            ranker
                .model
                .validate()
                .and_then(|()| match width_matches {
                    true => Ok(()),
                    false => Err(format!(
                        "{} features in the model, {} in its schema",
                        ranker.model.width,
                        ranker.schema.width()
                    )),
                })
                .map_err(|reason| {
                    snapshot_error(&dir.join("rankers.bin"), format!("ranker of surface `{surface}`: {reason}"))
                })?;
        }
        let passages: Option<Vec<String>> = match manifest.files.iter().any(|f| f.name == "passages.bin") {
            true => Some(read_part(dir, &manifest, "passages.bin")?),
            false => None,
        };
        if passages.as_ref().is_some_and(|p| p.len() != catalog.len()) {
            return Err(snapshot_error(&dir.join("passages.bin"), "not one text per catalog item"));
        }
        let intent: Option<IntentModel> = match manifest.files.iter().any(|f| f.name == "intent.bin") {
            true => Some(read_part(dir, &manifest, "intent.bin")?),
            false => None,
        };
        if intent.as_ref().is_some_and(|m| !m.is_valid()) {
            return Err(snapshot_error(
                &dir.join("intent.bin"),
                "the intent classifier's weights do not fit this build",
            ));
        }
        let popularity: Popularity = read_part(dir, &manifest, "popularity.bin")?;
        let facets = QueryFacets::build(&catalog, &popularity);
        Ok(Self {
            content,
            speller,
            facets,
            passages,
            intent,
            popularity,
            histories: read_part(dir, &manifest, "histories.bin")?,
            segments: read_part(dir, &manifest, "segments.bin")?,
            feedback: read_part(dir, &manifest, "feedback.bin")?,
            linucb,
            text: read_part(dir, &manifest, "text.bin")?,
            cf,
            cf_models,
            rankers,
            catalog,
            manifest,
        })
    }
}
