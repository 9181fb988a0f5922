//! Engine configuration: one TOML document, then `FUNNEL__A__B=value` environment
//! overrides (for key `a.b`), then validation that names the bad key. Parsed once at the
//! edge; the engine receives plain structs.

use std::collections::BTreeMap;

use funnel_core::EventKind;
use funnel_text::SpellConfig;

use crate::understand::EntityConfig;
use serde::{Deserialize, Serialize};

/// Prefix of environment overrides: `FUNNEL__SURFACES__HOME__MAX_CANDIDATES=500`.
pub const ENV_PREFIX: &str = "FUNNEL__";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("configuration key `{key}`: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { key: key.into(), reason: reason.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub train: TrainConfig,
    pub search: SearchConfig,
    pub content: ContentConfig,
    pub segments: SegmentConfig,
    pub surfaces: BTreeMap<String, SurfaceConfig>,
}

/// Content vectors: item text embedded at training time (the `content` source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentConfig {
    /// A sentence-transformers model folder (e.g. all-MiniLM-L6-v2); empty: no content
    /// vectors. Embedding costs about 10 ms per item on 2 cores, once per training.
    pub model: String,
    /// Catalogs larger than this are not embedded (training would take too long).
    pub max_items: usize,
    /// Exact search below this many items, HNSW from here on.
    pub exact_below: usize,
    /// HNSW links per node and construction breadth.
    pub hnsw_m: usize,
    pub ef_construction: usize,
    /// HNSW search breadth per request (raised to the number of candidates asked for).
    pub ef_search: usize,
}

impl Default for ContentConfig {
    fn default() -> Self {
        Self {
            model: String::new(),
            max_items: 200_000,
            exact_below: 20_000,
            hnsw_m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

/// Context-matched popularity (the `segment` source): users grouped by attribute value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentConfig {
    /// User attributes that form segments; empty: every attribute with a string, number
    /// or true/false value.
    pub attributes: Vec<String>,
    /// Segments with fewer members are dropped (too few to say what they like).
    pub min_users: u32,
    /// Most popular items kept per segment.
    pub items: usize,
    /// Numeric attributes cut into ranges at these edges (`age = [18, 25]` gives `<18`,
    /// `18-25`, `25+`); other numbers segment by exact value.
    pub buckets: BTreeMap<String, Vec<f64>>,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            attributes: Vec::new(),
            min_users: 20,
            items: 500,
            buckets: [("age".to_owned(), vec![18.0, 25.0, 35.0, 45.0, 55.0, 65.0])].into(),
        }
    }
}

/// How `funnel train` turns the log into a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Popularity counts halve every this many days (relative to the snapshot's time).
    pub popularity_half_life_days: f64,
    /// Weight of each event kind in popularity and as a positive interaction.
    pub event_weights: BTreeMap<String, f64>,
    /// Ratings below this are not positive interactions.
    pub min_rating: f64,
    /// Collaborative filtering in the snapshot: `auto` (EASE up to `ease_max_items`
    /// items with interactions, else item-kNN), `ease`, `item-knn`, `als`, `two-tower`
    /// (its item tower reads the content vectors when there are any) or `none`.
    pub cf_model: String,
    pub ease_max_items: usize,
    /// Watch time (seconds) that counts as one unit of a watch event's weight, on a log
    /// scale: weight × log2(1 + seconds / unit).
    pub watch_seconds_unit: f64,
    /// Factor models (ALS) serve candidates from a nearest-neighbour index over item
    /// factors: exact below this many items, HNSW from here on.
    pub cf_exact_below: usize,
    /// HNSW search breadth for CF candidates (raised to the number asked for).
    pub cf_ef_search: usize,
    /// ALS latent factors and training sweeps (when `cf_model = "als"`).
    pub als_factors: usize,
    pub als_iterations: usize,
    /// Seed of any randomised training.
    pub seed: u64,
    /// The event kind that counts as a bandit policy's reward for an impression
    /// (`thompson`, `linucb` exploration): `click` by default.
    pub bandit_reward: String,
    /// A reward counts against an impression of the same item to the same user at most
    /// this many days before it.
    pub bandit_window_days: f64,
    /// Learned rankers (`[train.ranker]`), for surfaces with `ranker = "gbdt"`.
    pub ranker: RankerTrainConfig,
}

/// How `funnel train` builds a learned ranker's training set and fits it. Each request of
/// the training set is one user: the surface's merged candidates for that user, computed
/// from a snapshot of the past, labelled by the user's later (or held-out) positive events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RankerTrainConfig {
    /// `time`: features as of a cut, labels from the positive events after it (the newest
    /// `label_fraction` of them); point in time, no feature sees a later event.
    /// `holdout`: a seeded `label_fraction` of each user's positive items is left out of
    /// the features and used as labels (for data whose test split is random per user,
    /// like MovieLens u1–u5); not point in time.
    pub split: String,
    pub label_fraction: f64,
    /// `holdout`: this many past snapshots, fold `f` holding out the `f`-th
    /// `label_fraction` of each user's items (in one seeded order; disjoint while
    /// `label_fraction × holdout_folds ≤ 1`), so a user gives up to this many requests.
    /// More training requests for the sources trained again per fold: on ml-100k five
    /// folds turned a tie with EASE into a win.
    pub holdout_folds: usize,
    /// The objective the ranker serves: `weight` (Σ `train.event_weights` of the label
    /// events: a purchase counts more than a click), `value` (Σ their values: rating,
    /// watch seconds, revenue) or `binary` (any positive event). Graded labels are rounded
    /// and capped at 31 for the ranking objectives.
    pub label: String,
    /// `lambdarank`, `rank-net`, `binary` or `regression`.
    pub objective: String,
    pub trees: usize,
    pub leaves: usize,
    pub learning_rate: f64,
    pub min_data_in_leaf: usize,
    /// Stop when the validation NDCG@10 has not improved for this many trees (and keep the
    /// best round); 0: grow every tree.
    pub early_stopping: usize,
    /// Share of the labelled users whose requests are held out for early stopping and the
    /// validation NDCG (all of a user's folds on one side).
    pub valid_fraction: f64,
    /// At most this many requests per fold ÷ folds, rounded up: a seeded sample of the
    /// labelled users, the same in every fold.
    pub max_requests: usize,
}

impl Default for RankerTrainConfig {
    fn default() -> Self {
        Self {
            split: "time".into(),
            label_fraction: 0.2,
            holdout_folds: 1,
            label: "weight".into(),
            objective: "lambdarank".into(),
            // Small trees, many rows per leaf, no early stopping: on ml-100k (a few hundred
            // requests of ~700 candidates, ~16 positives each) larger trees and rounds
            // picked on a validation set that small overfit (3 trees kept, worse than none).
            trees: 200,
            leaves: 7,
            learning_rate: 0.05,
            min_data_in_leaf: 100,
            early_stopping: 0,
            valid_fraction: 0.2,
            max_requests: 20_000,
        }
    }
}

/// Text index settings, fixed at training time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    pub k1: f32,
    pub b: f32,
    pub title_weight: f32,
    /// Free-text fields to index besides the title; empty means all of them.
    pub fields: Vec<String>,
    pub stem: bool,
    pub stop_words: bool,
    /// Query spell correction from the catalog's vocabulary (`[search.spell]`).
    pub spell: SpellConfig,
    /// Titles and categories recognised in queries (`[search.entities]`; read when
    /// serving, unlike the rest of this section).
    pub entities: EntityConfig,
    /// A cross-encoder folder (Hugging Face BERT sequence classification, e.g. one made
    /// by `funnel train cross-encoder`) that reranks the top `rerank.cross_encoder_depth`
    /// of each query's candidates when serving; empty for none. With one set, training
    /// keeps each item's text in the snapshot for it to read.
    pub cross_encoder: String,
    /// Labelled queries (`query<TAB>navigational|filtered|exploratory` lines) from which
    /// `funnel train` learns an intent classifier that replaces the rules' intent when
    /// serving; empty for the rules alone.
    pub intent_labels: String,
}

/// The most candidates a cross-encoder reranks per request.
pub const MAX_RERANK_DEPTH: usize = 200;

/// One surface's pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurfaceConfig {
    pub sources: Vec<SourceConfig>,
    #[serde(default = "default_ranker")]
    pub ranker: String,
    #[serde(default = "default_rules")]
    pub rules: Vec<String>,
    #[serde(default = "default_exploration")]
    pub exploration: String,
    #[serde(default = "default_max_candidates")]
    pub max_candidates: usize,
    /// How the sources' lists become one.
    #[serde(default)]
    pub merge: Merge,
    /// `merge = "rrf"`: the constant k in weight / (k + rank).
    #[serde(default = "default_rrf_k")]
    pub rrf_k: f32,
    /// Settings of the `diversity` and `freshness` rules and the exploration policy.
    #[serde(default)]
    pub rerank: RerankConfig,
}

/// `[surfaces.NAME.rerank]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RerankConfig {
    /// `diversity` (maximal marginal relevance): λ · relevance − (1 − λ) · the largest
    /// similarity to an item placed above (shared categories, Jaccard); 1 = no diversity.
    pub diversity_lambda: f32,
    /// `diversity` reorders this many of the top candidates.
    pub diversity_depth: usize,
    /// What `diversity` calls similar: `categories` (Jaccard of the category sets) or
    /// `content` (cosine of the items' content vectors, floored at 0; categories for a
    /// snapshot without vectors).
    pub diversity_similarity: String,
    /// `freshness`: an item's score gains `freshness_boost` × 2^(−age / half-life).
    pub freshness_half_life_days: f64,
    pub freshness_boost: f32,
    /// `popularity`: an item more popular than the user's own taste (the mean popularity
    /// of their history, on a log scale from 0 to 1) loses this × the score range × the gap.
    pub popularity_penalty: f32,
    /// `category-cap`: at most this many items of one category in the slate (later ones
    /// move below it).
    pub category_cap: usize,
    /// `exploration = "epsilon-greedy"`: each slot takes a uniformly random remaining
    /// candidate with this probability, the best remaining one otherwise.
    pub epsilon: f32,
    /// `thompson` and `linucb` choose the slate from this many of the ranker's best.
    pub explore_depth: usize,
    /// `thompson`: the Beta prior's weight in pseudo-impressions (its mean is the base
    /// reward rate for an item, the item's posterior mean for the item within the user's
    /// segments).
    pub thompson_prior_strength: f64,
    /// `thompson`: draws that estimate each shown item's propensity (Monte Carlo; an item
    /// no draw resolves is logged at 1 / (samples + 1)); `thompson` and `epsilon-greedy`:
    /// slates simulated to estimate each shown item's marginal `position_propensity`.
    /// Precision against time: each simulated slate costs about its length squared.
    pub propensity_samples: usize,
    /// `linucb`: the width of the upper confidence bound, in standard deviations.
    pub linucb_alpha: f64,
    /// With `search.cross_encoder` set, a query's best this-many candidates after the
    /// ranker are reordered by the cross-encoder (0: never; a request's `rerank_depth`
    /// may lower it). Latency against accuracy: each costs one forward pass of the model.
    pub cross_encoder_depth: usize,
    /// The cross-encoder's weight in the order of the block it reranks: 1 orders it by
    /// the model alone; below 1, by weight × the model's score + (1 − weight) × the
    /// ranker's, each min-max normalised over the block (a fine-tuned model no better than
    /// the ranker alone can still add to it).
    pub cross_encoder_weight: f32,
    /// `boost`: business boosts, each adding `boost` × the list's score range to the
    /// items it names (an item id or a category; negative buries).
    pub boosts: Vec<BoostConfig>,
    /// Items pinned at a position (1 = top) of every slate of the surface, after
    /// exploration (which fills the other positions), unless unavailable, unsafe, or seen
    /// by the user on a surface with the `seen` rule.
    pub pins: Vec<PinConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoostConfig {
    #[serde(default)]
    pub item: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    pub boost: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinConfig {
    pub item: String,
    pub position: usize,
}

impl Default for RerankConfig {
    fn default() -> Self {
        Self {
            diversity_lambda: 0.7,
            diversity_depth: 100,
            diversity_similarity: "categories".into(),
            freshness_half_life_days: 14.0,
            freshness_boost: 0.2,
            popularity_penalty: 0.5,
            category_cap: 3,
            epsilon: 0.1,
            explore_depth: 100,
            thompson_prior_strength: 10.0,
            propensity_samples: 200,
            linucb_alpha: 1.0,
            cross_encoder_depth: 20,
            cross_encoder_weight: 1.0,
            boosts: Vec::new(),
            pins: Vec::new(),
        }
    }
}

/// How a surface merges its sources' candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Merge {
    /// Each source normalised by its best score and weighted; an item proposed twice
    /// keeps its better score.
    #[default]
    Max,
    /// Weighted sum of the normalised scores (an item found by two sources adds up).
    Sum,
    /// Reciprocal rank fusion: Σ weight / (rrf_k + rank); scores' scales do not matter.
    Rrf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    #[serde(default = "default_quota")]
    pub quota: usize,
    #[serde(default = "default_weight")]
    pub weight: f32,
}

fn default_ranker() -> String {
    "score".into()
}
fn default_rules() -> Vec<String> {
    ["seen", "available", "safe", "dedupe"].map(String::from).to_vec()
}
fn default_exploration() -> String {
    "none".into()
}
fn default_max_candidates() -> usize {
    1000
}
fn default_rrf_k() -> f32 {
    60.0
}
fn default_quota() -> usize {
    500
}
fn default_weight() -> f32 {
    1.0
}

impl Default for TrainConfig {
    fn default() -> Self {
        let weights = [
            ("impression", 0.0),
            ("view", 1.0),
            ("click", 1.0),
            ("watch", 2.0),
            ("purchase", 4.0),
            ("rating", 1.0),
            ("add_to_cart", 2.0),
            ("like", 2.0),
            ("share", 2.0),
            ("skip", 0.0),
            ("dislike", 0.0),
        ];
        Self {
            popularity_half_life_days: 30.0,
            event_weights: weights.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            min_rating: 0.0,
            cf_model: "auto".into(),
            ease_max_items: 5000,
            watch_seconds_unit: 30.0,
            cf_exact_below: 50_000,
            cf_ef_search: 200,
            als_factors: 64,
            als_iterations: 15,
            bandit_reward: "click".into(),
            bandit_window_days: 1.0,
            seed: 42,
            ranker: RankerTrainConfig::default(),
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            k1: 1.2,
            b: 0.75,
            title_weight: 2.0,
            fields: Vec::new(),
            stem: true,
            stop_words: true,
            spell: SpellConfig::default(),
            entities: EntityConfig::default(),
            cross_encoder: String::new(),
            intent_labels: String::new(),
        }
    }
}

fn surface(sources: &[(&str, usize, f32)]) -> SurfaceConfig {
    SurfaceConfig {
        sources: sources
            .iter()
            .map(|&(name, quota, weight)| SourceConfig { name: name.into(), quota, weight })
            .collect(),
        ranker: default_ranker(),
        rules: default_rules(),
        exploration: default_exploration(),
        max_candidates: default_max_candidates(),
        merge: Merge::Max,
        rrf_k: default_rrf_k(),
        rerank: RerankConfig::default(),
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        let surfaces = [
            (
                "home",
                surface(&[("cf", 500, 1.0), ("content", 200, 0.3), ("segment", 200, 0.25), ("popular", 500, 0.2)]),
            ),
            // Hybrid: BM25 and, when the snapshot has content vectors and the server a query
            // embedder, the query's nearest items; fused by rank.
            ("search", SurfaceConfig { merge: Merge::Rrf, ..surface(&[("bm25", 1000, 0.5), ("dense", 1000, 0.5)]) }),
            ("similar", surface(&[("similar", 500, 1.0), ("content", 300, 1.0), ("popular", 100, 0.05)])),
        ];
        Self {
            train: TrainConfig::default(),
            search: SearchConfig::default(),
            content: ContentConfig::default(),
            segments: SegmentConfig::default(),
            surfaces: surfaces.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }
}

/// Candidate sources the engine knows, and what a request must carry for each.
pub(crate) const SOURCES: &[&str] = &[
    "cf",
    "cf-ease",
    "cf-item-knn",
    "cf-als",
    "cf-consumed",
    "content",
    "segment",
    "popular",
    "unexplored",
    "bm25",
    "dense",
    "similar",
];
pub(crate) const CF_MODELS: &[&str] = &["auto", "ease", "item-knn", "als", "two-tower", "none"];
pub(crate) const RANKERS: &[&str] = &["score", "gbdt"];
pub(crate) const RULES: &[&str] =
    &["seen", "available", "safe", "dedupe", "diversity", "freshness", "popularity", "boost", "category-cap"];
pub(crate) const EXPLORATION: &[&str] = &["none", "epsilon-greedy", "bandit-greedy", "thompson", "linucb"];

impl EngineConfig {
    /// Parses a TOML document (empty for defaults) and applies `FUNNEL__…` overrides
    /// from `env`. Surfaces given in the file replace the default surface of that name.
    pub fn load(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut document: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ConfigError::new(toml_error_key(&e), e.message().to_owned()))?;
        for (name, raw) in env {
            if let Some(path) = name.strip_prefix(ENV_PREFIX) {
                start_from_default_surface(&mut document, path);
                apply_override(&mut document, path, &raw)?;
            }
        }
        let mut config: EngineConfig = serde_path_to_error::deserialize(toml::Value::Table(document.clone()))
            .map_err(|e| ConfigError::new(e.path().to_string(), e.into_inner().to_string()))?;
        // Default surfaces stay unless the file defines a surface of the same name.
        for (name, default) in EngineConfig::default().surfaces {
            config.surfaces.entry(name).or_insert(default);
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.train;
        if !(t.popularity_half_life_days > 0.0 && t.popularity_half_life_days.is_finite()) {
            return Err(ConfigError::new("train.popularity_half_life_days", "must be a positive number of days"));
        }
        for (kind, weight) in &t.event_weights {
            if funnel_core::EventKind::parse(kind).is_none() {
                return Err(ConfigError::new(format!("train.event_weights.{kind}"), "not an event kind"));
            }
            if !(weight.is_finite() && *weight >= 0.0) {
                return Err(ConfigError::new(format!("train.event_weights.{kind}"), "must be ≥ 0"));
            }
        }
        one_of("train.cf_model".into(), &t.cf_model, CF_MODELS)?;
        if EventKind::parse(&t.bandit_reward).is_none_or(|k| k == EventKind::Impression) {
            return Err(ConfigError::new("train.bandit_reward", "must be an event kind other than `impression`"));
        }
        if !(t.bandit_window_days > 0.0 && t.bandit_window_days <= 36_500.0) {
            return Err(ConfigError::new("train.bandit_window_days", "must be between 0 and 36500 days"));
        }
        if !(t.watch_seconds_unit > 0.0 && t.watch_seconds_unit.is_finite()) {
            return Err(ConfigError::new("train.watch_seconds_unit", "must be a positive number of seconds"));
        }
        if !(1..=100_000).contains(&t.cf_ef_search) {
            return Err(ConfigError::new("train.cf_ef_search", "must be between 1 and 100000"));
        }
        if !(1..=1024).contains(&t.als_factors) {
            return Err(ConfigError::new("train.als_factors", "must be between 1 and 1024"));
        }
        if t.als_iterations == 0 {
            return Err(ConfigError::new("train.als_iterations", "must be ≥ 1"));
        }
        t.ranker.validate()?;
        let s = &self.search;
        if !(s.k1 >= 0.0 && s.k1.is_finite()) {
            return Err(ConfigError::new("search.k1", "must be ≥ 0"));
        }
        if !(0.0..=1.0).contains(&s.b) {
            return Err(ConfigError::new("search.b", "must be in [0, 1]"));
        }
        if !(s.title_weight >= 0.0 && s.title_weight.is_finite()) {
            return Err(ConfigError::new("search.title_weight", "must be ≥ 0"));
        }
        if !(1.0..=1e6).contains(&s.spell.edit_penalty) {
            return Err(ConfigError::new("search.spell.edit_penalty", "must be between 1 and 1000000"));
        }
        if !(1..=64).contains(&s.spell.min_length) {
            return Err(ConfigError::new("search.spell.min_length", "must be between 1 and 64"));
        }
        if !(0.0..=100.0).contains(&s.entities.boost) {
            return Err(ConfigError::new("search.entities.boost", "must be between 0 and 100"));
        }
        let c = &self.content;
        if c.hnsw_m < 2 || c.hnsw_m > 200 {
            return Err(ConfigError::new("content.hnsw_m", "must be between 2 and 200"));
        }
        if !(1..=100_000).contains(&c.ef_construction) {
            return Err(ConfigError::new("content.ef_construction", "must be between 1 and 100000"));
        }
        if !(1..=100_000).contains(&c.ef_search) {
            return Err(ConfigError::new("content.ef_search", "must be between 1 and 100000"));
        }
        self.segments.validate()?;
        self.surfaces.iter().try_for_each(|(name, surface)| surface.validate(name))
    }
}

fn one_of(key: String, value: &str, known: &[&str]) -> Result<(), ConfigError> {
    if known.contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(key, format!("unknown `{value}` (one of: {})", known.join(", "))))
    }
}

impl RankerTrainConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let key = |rest: &str| format!("train.ranker.{rest}");
        one_of(key("split"), &self.split, &["time", "holdout"])?;
        one_of(key("label"), &self.label, &["weight", "value", "binary"])?;
        one_of(key("objective"), &self.objective, &["lambdarank", "rank-net", "binary", "regression"])?;
        let fraction = |name: &str, value: f64| match value > 0.0 && value < 1.0 {
            true => Ok(()),
            false => Err(ConfigError::new(key(name), "must be between 0 and 1 (exclusive)")),
        };
        fraction("label_fraction", self.label_fraction)?;
        fraction("valid_fraction", self.valid_fraction)?;
        if !(1..=100_000).contains(&self.trees) {
            return Err(ConfigError::new(key("trees"), "must be between 1 and 100000"));
        }
        if !(2..=4096).contains(&self.leaves) {
            return Err(ConfigError::new(key("leaves"), "must be between 2 and 4096"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(ConfigError::new(key("learning_rate"), "must be in (0, 1]"));
        }
        if !(1..=10_000_000).contains(&self.min_data_in_leaf) {
            return Err(ConfigError::new(key("min_data_in_leaf"), "must be between 1 and 10000000"));
        }
        if !(1..=20).contains(&self.holdout_folds) {
            return Err(ConfigError::new(key("holdout_folds"), "must be between 1 and 20"));
        }
        if self.holdout_folds > 1 && self.split != "holdout" {
            return Err(ConfigError::new(
                key("holdout_folds"),
                "folds need `split = \"holdout\"` (a time split has one cut)",
            ));
        }
        if self.max_requests == 0 {
            return Err(ConfigError::new(key("max_requests"), "must be ≥ 1"));
        }
        Ok(())
    }
}

impl SegmentConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=100_000).contains(&self.items) {
            return Err(ConfigError::new("segments.items", "must be between 1 and 100000"));
        }
        for (name, edges) in &self.buckets {
            let increasing = edges.windows(2).all(|w| w[0] < w[1]);
            if edges.is_empty() || !increasing || edges.iter().any(|e| !e.is_finite()) {
                return Err(ConfigError::new(
                    format!("segments.buckets.{name}"),
                    "needs one or more finite edges in increasing order",
                ));
            }
        }
        Ok(())
    }
}

impl SurfaceConfig {
    fn validate(&self, surface: &str) -> Result<(), ConfigError> {
        let key = |rest: &str| format!("surfaces.{surface}.{rest}");
        if self.sources.is_empty() {
            return Err(ConfigError::new(key("sources"), "a surface needs at least one candidate source"));
        }
        for (i, source) in self.sources.iter().enumerate() {
            one_of(key(&format!("sources[{i}].name")), &source.name, SOURCES)?;
            if source.quota == 0 {
                return Err(ConfigError::new(key(&format!("sources[{i}].quota")), "must be ≥ 1"));
            }
            if !(source.weight.is_finite() && source.weight >= 0.0) {
                return Err(ConfigError::new(key(&format!("sources[{i}].weight")), "must be ≥ 0"));
            }
        }
        one_of(key("ranker"), &self.ranker, RANKERS)?;
        if let Some(source) = self.sources.iter().find(|s| ["bm25", "dense", "similar"].contains(&s.name.as_str()))
            && self.ranker == "gbdt"
        {
            return Err(ConfigError::new(
                key("ranker"),
                format!(
                    "`gbdt` is trained on users' own candidates; source `{}` needs a query or an anchor item, which \
                     the event log does not record, so this surface cannot be trained yet (use `score`)",
                    source.name
                ),
            ));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            one_of(key(&format!("rules[{i}]")), rule, RULES)?;
        }
        one_of(key("exploration"), &self.exploration, EXPLORATION)?;
        if !(1..=100_000).contains(&self.max_candidates) {
            return Err(ConfigError::new(key("max_candidates"), "must be between 1 and 100000"));
        }
        if !(self.rrf_k.is_finite() && self.rrf_k >= 0.0) {
            return Err(ConfigError::new(key("rrf_k"), "must be ≥ 0"));
        }
        let r = &self.rerank;
        if !(0.0..=1.0).contains(&r.diversity_lambda) {
            return Err(ConfigError::new(key("rerank.diversity_lambda"), "must be in [0, 1]"));
        }
        // Diversity costs depth² similarity checks per request.
        if !(1..=1000).contains(&r.diversity_depth) {
            return Err(ConfigError::new(key("rerank.diversity_depth"), "must be between 1 and 1000"));
        }
        one_of(key("rerank.diversity_similarity"), &r.diversity_similarity, &["categories", "content"])?;
        if !(1..=1000).contains(&r.explore_depth) {
            return Err(ConfigError::new(key("rerank.explore_depth"), "must be between 1 and 1000"));
        }
        if !(r.thompson_prior_strength >= 1e-3 && r.thompson_prior_strength <= 1e9) {
            return Err(ConfigError::new(key("rerank.thompson_prior_strength"), "must be between 0.001 and 1e9"));
        }
        // Each Thompson request keeps this many orders of up to max(depth, k) ≤ 1000 candidates.
        if !(10..=2000).contains(&r.propensity_samples) {
            return Err(ConfigError::new(key("rerank.propensity_samples"), "must be between 10 and 2000"));
        }
        if !(0.0..=1000.0).contains(&r.linucb_alpha) {
            return Err(ConfigError::new(key("rerank.linucb_alpha"), "must be between 0 and 1000"));
        }
        if r.cross_encoder_depth > MAX_RERANK_DEPTH {
            return Err(ConfigError::new(
                key("rerank.cross_encoder_depth"),
                format!("must be between 0 and {MAX_RERANK_DEPTH}"),
            ));
        }
        if !(0.0..=1.0).contains(&r.cross_encoder_weight) {
            return Err(ConfigError::new(key("rerank.cross_encoder_weight"), "must be between 0 and 1"));
        }
        // A bandit re-chooses the slate from the top candidates by its own estimates, so a
        // rule that promises an order or a mix within the slate would be undone.
        if ["bandit-greedy", "thompson", "linucb"].contains(&self.exploration.as_str())
            && let Some(rule) = ["diversity", "category-cap"].iter().find(|rule| self.rules.iter().any(|r| r == *rule))
        {
            return Err(ConfigError::new(
                key("exploration"),
                format!(
                    "`{}` chooses the slate from the best `explore_depth` candidates by its own estimates and would \
                     undo `{rule}`: drop one of them",
                    self.exploration
                ),
            ));
        }
        if !(r.freshness_half_life_days > 0.0 && r.freshness_half_life_days <= 1e6) {
            return Err(ConfigError::new(key("rerank.freshness_half_life_days"), "must be between 0 and 1000000 days"));
        }
        // Rules that re-sort by score would undo the ones that only reorder.
        let at = |rule: &str| self.rules.iter().position(|r| r == rule);
        for sorter in ["freshness", "popularity", "boost"] {
            for orderer in ["diversity", "category-cap"] {
                if let (Some(o), Some(s)) = (at(orderer), at(sorter))
                    && s > o
                {
                    return Err(ConfigError::new(
                        key(&format!("rules[{s}]")),
                        format!("`{sorter}` reorders by score and would undo `{orderer}`: list it before `{orderer}`"),
                    ));
                }
            }
        }
        if !(r.freshness_boost.is_finite() && r.freshness_boost >= 0.0) {
            return Err(ConfigError::new(key("rerank.freshness_boost"), "must be ≥ 0"));
        }
        if !(r.popularity_penalty.is_finite() && r.popularity_penalty >= 0.0) {
            return Err(ConfigError::new(key("rerank.popularity_penalty"), "must be ≥ 0"));
        }
        for (i, boost) in r.boosts.iter().enumerate() {
            let field = |name: &str| key(&format!("rerank.boosts[{i}].{name}"));
            match (&boost.item, &boost.category) {
                (Some(id), None) | (None, Some(id)) if !id.trim().is_empty() => {}
                _ => return Err(ConfigError::new(field("item"), "name exactly one of `item` or `category`")),
            }
            if !(boost.boost.is_finite() && boost.boost.abs() <= 1000.0) {
                return Err(ConfigError::new(field("boost"), "must be a number between -1000 and 1000"));
            }
        }
        if !r.boosts.is_empty() && at("boost").is_none() {
            return Err(ConfigError::new(key("rerank.boosts"), "set, but `boost` is not in the surface's rules"));
        }
        for (i, pin) in r.pins.iter().enumerate() {
            let field = |name: &str| key(&format!("rerank.pins[{i}].{name}"));
            if pin.item.trim().is_empty() {
                return Err(ConfigError::new(field("item"), "must name an item id"));
            }
            if !(1..=crate::request::MAX_K).contains(&pin.position) {
                return Err(ConfigError::new(field("position"), "must be between 1 (the top) and 1000"));
            }
            if r.pins[..i].iter().any(|p| p.position == pin.position || p.item == pin.item) {
                return Err(ConfigError::new(field("position"), "another pin has this position or item"));
            }
        }
        if r.category_cap == 0 {
            return Err(ConfigError::new(key("rerank.category_cap"), "must be ≥ 1"));
        }
        if !(0.0..=1.0).contains(&r.epsilon) {
            return Err(ConfigError::new(key("rerank.epsilon"), "must be in [0, 1]"));
        }
        Ok(())
    }
}

fn toml_error_key(error: &toml::de::Error) -> String {
    error.span().map_or_else(|| "(document)".to_owned(), |span| format!("(at byte {})", span.start))
}

/// An override of one key of a default surface the document does not define
/// (`SURFACES__HOME__RANKER`) changes that key of the default, not a surface of one key.
fn start_from_default_surface(document: &mut toml::Table, path: &str) {
    let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    let [first, surface, _, ..] = keys.as_slice() else { return };
    let defaults = EngineConfig::default().surfaces;
    let (true, Some(default)) = (first == "surfaces", defaults.get(surface)) else { return };
    let surfaces = document.entry("surfaces").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let (Some(surfaces), Ok(default)) = (surfaces.as_table_mut(), toml::Value::try_from(default)) {
        surfaces.entry(surface.clone()).or_insert(default);
    }
}

/// Sets `a.b.c` (given as `A__B__C`) in the document to `raw`, read as a TOML value
/// when it parses as one and as a string otherwise.
fn apply_override(document: &mut toml::Table, path: &str, raw: &str) -> Result<(), ConfigError> {
    let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    let dotted = keys.join(".");
    if keys.iter().any(String::is_empty) {
        return Err(ConfigError::new(dotted, "empty key in environment override"));
    }
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let (last, parents) = keys.split_last().expect("at least one key");
    let mut table = document;
    for key in parents {
        let entry = table.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| ConfigError::new(dotted.clone(), "is not a table"))?;
    }
    table.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<EngineConfig, ConfigError> {
        EngineConfig::load(text, env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn empty_document_gives_valid_defaults() {
        let config = load("", &[]).unwrap();
        assert_eq!(config, EngineConfig::default());
        assert!(config.surfaces.contains_key("home"));
    }

    #[test]
    fn a_file_surface_replaces_the_default_of_that_name() {
        let config = load("[surfaces.home]\nsources = [{ name = \"bm25\", quota = 10 }]\n", &[]).unwrap();
        assert_eq!(config.surfaces["home"].sources[0].name, "bm25");
        assert_eq!(config.surfaces["home"].rules, default_rules());
        assert!(config.surfaces.contains_key("search"));
    }

    #[test]
    fn environment_overrides_win() {
        let config = load(
            "[search]\nk1 = 0.9\n",
            &[("FUNNEL__SEARCH__K1", "1.5"), ("FUNNEL__TRAIN__POPULARITY_HALF_LIFE_DAYS", "7"), ("OTHER", "x")],
        )
        .unwrap();
        assert_eq!(config.search.k1, 1.5);
        assert_eq!(config.train.popularity_half_life_days, 7.0);
        let config = load("", &[("FUNNEL__SURFACES__HOME__RANKER", "gbdt")]).unwrap();
        let home = &config.surfaces["home"];
        assert_eq!((home.ranker.as_str(), &home.sources), ("gbdt", &EngineConfig::default().surfaces["home"].sources));
    }

    #[test]
    fn errors_name_the_bad_key() {
        let err = load("[search]\nkone = 1.0\n", &[]).unwrap_err();
        assert_eq!(err.key, "search.kone");
        assert!(err.reason.contains("unknown field"), "{err}");
        let err = load("[search]\nb = \"high\"\n", &[]).unwrap_err();
        assert_eq!(err.key, "search.b");
        let err = load("[surfaces.home]\nsources = [{ name = \"magic\" }]\n", &[]).unwrap_err();
        assert_eq!(err.key, "surfaces.home.sources[0].name");
        assert!(err.reason.contains("popular"), "{err}");
        let err = load("", &[("FUNNEL__SEARCH__B", "2")]).unwrap_err();
        assert_eq!(err.key, "search.b");
        let err = load("[train.event_weights]\nteleport = 1\n", &[]).unwrap_err();
        assert_eq!(err.key, "train.event_weights.teleport");
        let err = load("[search\n", &[]).unwrap_err();
        assert!(err.key.contains("byte"), "{err}");
        let err =
            load("[surfaces.home]\nsources = [{ name = \"popular\" }]\nrules = [\"diversity\", \"freshness\"]\n", &[])
                .unwrap_err();
        assert_eq!(err.key, "surfaces.home.rules[1]");
        let err = load("[segments.buckets]\nage = [30, 20]\n", &[]).unwrap_err();
        assert_eq!(err.key, "segments.buckets.age");
        let err = load("[train.ranker]\nholdout_folds = 5\n", &[]).unwrap_err();
        assert_eq!(err.key, "train.ranker.holdout_folds");
        assert!(load("[train.ranker]\nsplit = \"holdout\"\nholdout_folds = 5\n", &[]).is_ok());
    }
}
