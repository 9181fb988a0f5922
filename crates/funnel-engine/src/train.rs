//! `train`: read the log once, build every model and index as of one point in time, and
//! publish them as a new snapshot. Events after `as_of` are ignored, so a snapshot built
//! "as of" a past time never sees the future.

use std::collections::HashMap;

use funnel_core::{EventKind, Item, Record, Timestamp};
use funnel_store::{LogReader, SnapshotDir, SnapshotId};
use funnel_text::{AnalyzerConfig, Bm25Index, Bm25Params, DocText, Speller, Vocabulary};

use crate::cf::{Collaborative, TowerFeatures};
use crate::content::{ContentBuild, ContentIndex, TextEmbedder};
use crate::feedback::Feedback;
use crate::intent::IntentModel;
use crate::linucb::LinUcb;
use crate::segments::{SegmentInput, Segments};
use crate::snapshot::{FORMAT_VERSION, Histories, Manifest, Popularity};
use crate::understand::QueryFacets;
use crate::{Catalog, EngineConfig, EngineError, SearchConfig, Snapshot, TrainConfig};

#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    pub snapshot: SnapshotId,
    pub as_of: Timestamp,
    pub items: usize,
    pub users: usize,
    pub events: u64,
    pub terms: usize,
    /// Content vectors embedded now, and taken over unchanged from the previous snapshot.
    pub content: ContentBuild,
    /// Seconds spent in each phase, in order.
    pub phases: Vec<(&'static str, f64)>,
    /// How each surface's learned ranker was trained.
    pub rankers: std::collections::BTreeMap<String, crate::RankerReport>,
    /// The learned intent classifier against the rules on held-out labels.
    pub intent: Option<crate::IntentReport>,
}

/// Times named phases.
pub(crate) struct Phases<'p> {
    pub(crate) progress: &'p mut dyn FnMut(&str),
    pub(crate) done: Vec<(&'static str, f64)>,
    pub(crate) current: Option<(&'static str, std::time::Instant)>,
}

impl Phases<'_> {
    pub(crate) fn start(&mut self, name: &'static str) {
        self.finish();
        (self.progress)(name);
        self.current = Some((name, std::time::Instant::now()));
    }

    pub(crate) fn finish(&mut self) {
        if let Some((name, started)) = self.current.take() {
            self.done.push((name, started.elapsed().as_secs_f64()));
        }
    }
}

/// One event, interned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Interaction {
    pub user: u32,
    pub item: u32,
    pub kind: EventKind,
    /// Rating, watch seconds or revenue, when the event carries one.
    pub value: Option<f32>,
    pub timestamp: Timestamp,
}

#[derive(Default)]
pub(crate) struct Gathered {
    pub items: Vec<Item>,
    item_index: HashMap<String, u32>,
    pub user_ids: Vec<String>,
    user_index: HashMap<String, u32>,
    /// Attributes per user index (empty until the user's record is read).
    user_attributes: Vec<std::collections::BTreeMap<String, serde_json::Value>>,
    pub interactions: Vec<Interaction>,
}

impl Gathered {
    fn item(&mut self, item: Item) {
        match self.item_index.get(&item.id) {
            Some(&i) => self.items[i as usize] = item,
            None => {
                self.item_index.insert(item.id.clone(), self.items.len() as u32);
                self.items.push(item);
            }
        }
    }

    fn item_id(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.item_index.get(id) {
            return i;
        }
        self.item(Item::bare(id));
        self.items.len() as u32 - 1
    }

    fn user_id(&mut self, id: &str) -> u32 {
        if let Some(&u) = self.user_index.get(id) {
            return u;
        }
        let u = self.user_ids.len() as u32;
        self.user_index.insert(id.to_owned(), u);
        self.user_ids.push(id.to_owned());
        self.user_attributes.push(Default::default());
        u
    }

    #[cfg(test)]
    pub(crate) fn item_index(&self, id: &str) -> u32 {
        self.item_index[id]
    }

    /// The log as a snapshot of the past sees it: the `past` interactions, and the users
    /// who have one or who have no events at all (a user first active later does not
    /// exist yet; kept in order, renumbered). The items move over (their records carry no
    /// time: the catalog is current); [`Gathered::take_back_items`] returns them.
    pub(crate) fn past(&mut self, mut past: Vec<Interaction>) -> Gathered {
        const DROP: u32 = u32::MAX;
        let mut renumber = vec![0u32; self.user_ids.len()];
        for event in &self.interactions {
            renumber[event.user as usize] = DROP;
        }
        for event in &past {
            renumber[event.user as usize] = 0;
        }
        let mut out = Gathered {
            items: std::mem::take(&mut self.items),
            item_index: std::mem::take(&mut self.item_index),
            ..Gathered::default()
        };
        for (user, id) in self.user_ids.iter().enumerate() {
            if renumber[user] != DROP {
                renumber[user] = out.user_ids.len() as u32;
                out.user_index.insert(id.clone(), renumber[user]);
                out.user_ids.push(id.clone());
                out.user_attributes.push(self.user_attributes[user].clone());
            }
        }
        for event in &mut past {
            event.user = renumber[event.user as usize];
        }
        out.interactions = past;
        out
    }

    pub(crate) fn take_back_items(&mut self, past: Gathered) {
        self.items = past.items;
        self.item_index = past.item_index;
    }

    pub(crate) fn record(&mut self, record: Record) {
        match record {
            Record::Item(item) => self.item(item),
            Record::User(user) => {
                let u = self.user_id(&user.id);
                self.user_attributes[u as usize] = user.attributes;
            }
            Record::Event(event) => {
                let user = self.user_id(&event.user);
                let item = self.item_id(&event.item);
                self.interactions.push(Interaction {
                    user,
                    item,
                    kind: event.kind,
                    value: event.value.map(|v| v as f32),
                    timestamp: event.timestamp,
                });
            }
        }
    }
}

/// Builds a snapshot from everything in `log` and publishes it in `snapshots`.
/// `as_of` defaults to the time of the newest event, which keeps training deterministic.
/// No content vectors: see [`train_with_embedder`].
pub fn train(
    log: &LogReader,
    snapshots: &SnapshotDir,
    config: &EngineConfig,
    as_of: Option<Timestamp>,
    progress: &mut dyn FnMut(&str),
) -> Result<TrainReport, EngineError> {
    train_with_embedder(log, snapshots, config, as_of, None, progress)
}

/// [`train`], also embedding every item's text with `embedder` (content vectors).
pub fn train_with_embedder(
    log: &LogReader,
    snapshots: &SnapshotDir,
    config: &EngineConfig,
    as_of: Option<Timestamp>,
    embedder: Option<&dyn TextEmbedder>,
    progress: &mut dyn FnMut(&str),
) -> Result<TrainReport, EngineError> {
    let intent_labels = match config.search.intent_labels.as_str() {
        "" => None,
        path => Some(crate::intent::read_labels(std::path::Path::new(path))?),
    };
    let mut phases = Phases { progress, done: Vec::new(), current: None };
    phases.start("reading the log");
    let mut gathered = Gathered::default();
    log.scan(&mut |record| {
        gathered.record(record);
        Ok(())
    })?;
    let as_of = as_of.unwrap_or_else(|| gathered.interactions.iter().map(|i| i.timestamp).max().unwrap_or(0));
    let mut content_build = ContentBuild::default();
    let mut content = match embedder {
        Some(embedder) => {
            phases.start("content vectors");
            let total = gathered.items.len();
            let mut done = 0;
            let report = &mut *phases.progress;
            let mut tick = |n: usize| {
                done += n;
                report(&format!("content vectors {done}/{total}"));
            };
            let previous = snapshots.latest()?.and_then(|id| Snapshot::load_content(&snapshots.path_of(id)));
            let built = ContentIndex::build(&gathered.items, embedder, &config.content, previous.as_ref(), &mut tick)?;
            built.map(|(index, stats)| {
                content_build = stats;
                index
            })
        }
        None => None,
    };
    let rankers = crate::learn::train_rankers(&mut gathered, config, as_of, &mut content, &mut phases)?;
    let mut snapshot = assemble(&gathered, config, as_of, content, &mut phases);
    snapshot.manifest.rankers = rankers.iter().map(|(surface, r)| (surface.clone(), r.report.clone())).collect();
    snapshot.rankers = rankers;
    if let Some(labels) = intent_labels {
        phases.start("intent classifier");
        let facets = QueryFacets::build(&snapshot.catalog, &snapshot.popularity);
        let model = IntentModel::train(&labels, &facets, &snapshot.popularity, config.train.seed);
        snapshot.manifest.intent = Some(model.report.clone());
        snapshot.intent = Some(model);
    }

    phases.start("writing the snapshot");
    let writer = snapshots.begin()?;
    snapshot.manifest.id = writer.id().to_string();
    snapshot.save(writer.path())?;
    let id = writer.publish()?;
    phases.finish();
    Ok(TrainReport {
        snapshot: id,
        as_of,
        items: snapshot.manifest.items,
        users: snapshot.manifest.users,
        events: snapshot.manifest.events,
        terms: snapshot.text.n_terms(),
        content: content_build,
        phases: phases.done,
        rankers: snapshot.manifest.rankers.clone(),
        intent: snapshot.manifest.intent.clone(),
    })
}

/// A snapshot of `records` as of `as_of` (default: the newest event's time), built in
/// memory and written nowhere, learned rankers included (content vectors and the intent
/// classifier are not): for simulations and tools that retrain often.
pub fn snapshot_in_memory(
    records: impl IntoIterator<Item = Record>,
    config: &EngineConfig,
    as_of: Option<Timestamp>,
) -> Result<Snapshot, EngineError> {
    let mut gathered = Gathered::default();
    records.into_iter().for_each(|record| gathered.record(record));
    let as_of = as_of.unwrap_or_else(|| gathered.interactions.iter().map(|i| i.timestamp).max().unwrap_or(0));
    let mut quiet = |_: &str| {};
    let mut phases = Phases { progress: &mut quiet, done: Vec::new(), current: None };
    let rankers = crate::learn::train_rankers(&mut gathered, config, as_of, &mut None, &mut phases)?;
    let mut snapshot = assemble(&gathered, config, as_of, None, &mut phases);
    snapshot.manifest.rankers = rankers.iter().map(|(surface, r)| (surface.clone(), r.report.clone())).collect();
    snapshot.rankers = rankers;
    Ok(snapshot)
}

/// Every model and index of a snapshot as of `as_of` (events after it are ignored), not
/// yet written; `manifest.id` is left empty.
pub(crate) fn assemble(
    gathered: &Gathered,
    config: &EngineConfig,
    as_of: Timestamp,
    content: Option<ContentIndex>,
    phases: &mut Phases<'_>,
) -> Snapshot {
    let events = gathered.interactions.iter().filter(|i| i.timestamp <= as_of).count() as u64;
    phases.start("popularity and histories");
    let popularity = popularity(gathered, &config.train, as_of);
    let histories = histories(gathered, as_of);
    let segments = segments(gathered, config, as_of);
    let reward = EventKind::parse(&config.train.bandit_reward).unwrap_or(EventKind::Click);
    let window = (config.train.bandit_window_days * 86_400.0) as i64;
    let bandit_events = crate::feedback::bandit_events(gathered, reward, window, as_of);
    let feedback = Feedback::build(&bandit_events, gathered.items.len(), &segments);
    let linucb =
        config.surfaces.values().any(|s| s.exploration == "linucb").then(|| LinUcb::fit(&bandit_events, &segments));
    drop(bandit_events);
    phases.start("collaborative filtering");
    let features = TowerFeatures {
        content: content.as_ref(),
        item_labels: category_labels(&gathered.items),
        user_labels: (segments.of_users(), segments.len()),
    };
    let liked = positives(gathered, &config.train, as_of);
    let n_users = gathered.user_ids.len() as u32;
    let cf = Collaborative::train(&liked, n_users, &config.train, &features, config.train.seed);
    let mut cf_models = std::collections::BTreeMap::new();
    for kind in named_cf_models(config) {
        let model = match kind {
            // Consumption: every rating counts, however low.
            "consumed" => {
                let train = TrainConfig { min_rating: f64::NEG_INFINITY, ..config.train.clone() };
                let consumed = positives(gathered, &train, as_of);
                Collaborative::train(&consumed, n_users, &train, &features, config.train.seed)
            }
            _ => {
                let train = TrainConfig { cf_model: kind.to_owned(), ..config.train.clone() };
                Collaborative::train(&liked, n_users, &train, &features, config.train.seed)
            }
        };
        if let Some(model) = model {
            cf_models.insert(kind.to_owned(), model);
        }
    }
    drop(features);
    phases.start("text index");
    let text = build_text_index(&gathered.items, &config.search);
    let speller = config.search.spell.enabled.then(|| {
        Speller::new(build_vocabulary(&gathered.items, &config.search), config.search.spell, config.search.stem)
    });
    let passages = (!config.search.cross_encoder.is_empty())
        .then(|| gathered.items.iter().map(crate::content::content_text).collect());
    phases.start("catalog");
    let catalog = Catalog::from_items(&gathered.items);
    Snapshot {
        manifest: Manifest {
            format_version: FORMAT_VERSION,
            id: String::new(),
            as_of,
            items: catalog.len(),
            users: gathered.user_ids.len(),
            events,
            cf_model: cf.as_ref().map(|cf| format!("{} over {} items", cf.name(), cf.n_items())),
            content_model: content
                .as_ref()
                .map(|c| format!("{} ({} search over {} items)", c.model, c.kind(), c.len())),
            segments: segments.len(),
            rankers: Default::default(),
            intent: None,
            train: config.train.clone(),
            search: config.search.clone(),
            files: Vec::new(),
        },
        catalog,
        popularity,
        histories,
        segments,
        feedback,
        linucb,
        text,
        cf,
        cf_models,
        content,
        speller,
        rankers: Default::default(),
        passages,
        intent: None,
        // Derived on load; training only writes the snapshot.
        facets: QueryFacets::default(),
    }
}

/// A snapshot of just these items (no events), for stage tests.
#[cfg(test)]
pub(crate) fn snapshot_of(items: Vec<Item>) -> Snapshot {
    let mut gathered = Gathered::default();
    items.into_iter().for_each(|item| gathered.record(Record::Item(item)));
    snapshot_from(&gathered)
}

/// A snapshot of a gathered log as of its newest event, for stage tests.
#[cfg(test)]
pub(crate) fn snapshot_from(gathered: &Gathered) -> Snapshot {
    let mut quiet = |_: &str| {};
    let mut phases = Phases { progress: &mut quiet, done: Vec::new(), current: None };
    let as_of = gathered.interactions.iter().map(|i| i.timestamp).max().unwrap_or(0);
    assemble(gathered, &EngineConfig::default(), as_of, None, &mut phases)
}

/// A request context over `snapshot` for stage tests.
#[cfg(test)]
pub(crate) fn context<'a>(snapshot: &'a Snapshot, request: &'a crate::Request) -> crate::RequestContext<'a> {
    crate::RequestContext {
        snapshot,
        request,
        query: None,
        understanding: None,
        query_vector: None,
        now: request.now.unwrap_or(0),
        seen: Default::default(),
        item: None,
    }
}

/// The CF models that `cf-<kind>` sources of any surface name.
fn named_cf_models(config: &EngineConfig) -> std::collections::BTreeSet<&str> {
    let sources = config.surfaces.values().flat_map(|s| &s.sources);
    sources.filter_map(|s| s.name.strip_prefix("cf-")).collect()
}

/// Each item's categories as label ids (numbered in order of first appearance), and how
/// many there are.
fn category_labels(items: &[Item]) -> (Vec<Vec<u32>>, usize) {
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let labels = items
        .iter()
        .map(|item| {
            item.categories
                .iter()
                .map(|c| {
                    let next = ids.len() as u32;
                    *ids.entry(c.as_str()).or_insert(next)
                })
                .collect()
        })
        .collect();
    (labels, ids.len())
}

/// Weight of one interaction as a positive signal; 0 for none.
pub(crate) fn positive_weight(config: &TrainConfig, kind: EventKind, value: Option<f32>) -> f64 {
    let weight = config.event_weights.get(kind.as_str()).copied().unwrap_or(0.0);
    if kind == EventKind::Rating && value.is_some_and(|v| f64::from(v) < config.min_rating) {
        return 0.0;
    }
    weight
}

/// (user, item, weight · 2^(−age / half-life)) of every positive event up to `as_of`:
/// what popularity counts.
fn decayed<'a>(
    gathered: &'a Gathered,
    config: &'a TrainConfig,
    as_of: Timestamp,
) -> impl Iterator<Item = (u32, u32, f64)> + 'a {
    let half_life_seconds = config.popularity_half_life_days * 86_400.0;
    gathered.interactions.iter().filter(move |i| i.timestamp <= as_of).filter_map(move |event| {
        let weight = positive_weight(config, event.kind, event.value);
        let age = (as_of - event.timestamp) as f64;
        (weight > 0.0).then(|| (event.user, event.item, weight * (-age / half_life_seconds).exp2()))
    })
}

/// Σ weight · 2^(−age / half-life) per item, over events up to `as_of`.
fn popularity(gathered: &Gathered, config: &TrainConfig, as_of: Timestamp) -> Popularity {
    let mut scores = vec![0f64; gathered.items.len()];
    for (_, item, weight) in decayed(gathered, config, as_of) {
        scores[item as usize] += weight;
    }
    let mut order: Vec<u32> = (0..scores.len() as u32).filter(|&i| scores[i as usize] > 0.0).collect();
    order.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]).then(a.cmp(&b)));
    let mut interactions = vec![0u32; gathered.items.len()];
    for event in gathered.interactions.iter().filter(|e| e.timestamp <= as_of) {
        if positive_weight(config, event.kind, event.value) > 0.0 {
            interactions[event.item as usize] += 1;
        }
    }
    let mean_rating = mean_ratings(gathered, as_of, gathered.items.len(), |e| e.item);
    let most_interactions = interactions.iter().copied().max().unwrap_or(0);
    let scores = scores.into_iter().map(|s| s as f32).collect();
    Popularity { scores, order, interactions, most_interactions, mean_rating }
}

/// Per `key` (item or user index), the mean rating up to `as_of`; NaN without any.
fn mean_ratings(gathered: &Gathered, as_of: Timestamp, len: usize, key: impl Fn(&Interaction) -> u32) -> Vec<f32> {
    let mut sums = vec![(0f64, 0u32); len];
    for event in gathered.interactions.iter().filter(|e| e.timestamp <= as_of && e.kind == EventKind::Rating) {
        if let Some(value) = event.value.filter(|v| v.is_finite()) {
            let sum = &mut sums[key(event) as usize];
            *sum = (sum.0 + f64::from(value), sum.1 + 1);
        }
    }
    sums.into_iter().map(|(sum, n)| if n == 0 { f32::NAN } else { (sum / f64::from(n)) as f32 }).collect()
}

/// Popularity within each segment of users sharing an attribute value.
fn segments(gathered: &Gathered, config: &EngineConfig, as_of: Timestamp) -> Segments {
    let input =
        SegmentInput { attributes: &gathered.user_attributes, weighted: &mut decayed(gathered, &config.train, as_of) };
    Segments::build(input, &config.segments)
}

/// (user, item, weight) per distinct pair with a positive weight up to `as_of`, the
/// weights of its events summed: what collaborative filtering learns from. A watch
/// with a duration counts its weight times log2(1 + seconds / `watch_seconds_unit`),
/// so a long watch counts more than a short one.
fn positives(gathered: &Gathered, config: &TrainConfig, as_of: Timestamp) -> Vec<(u32, u32, f32)> {
    let mut triples: Vec<(u32, u32, f32)> = gathered
        .interactions
        .iter()
        .filter(|e| e.timestamp <= as_of)
        .filter_map(|e| {
            let mut weight = positive_weight(config, e.kind, e.value);
            if let (EventKind::Watch, Some(seconds)) = (e.kind, e.value) {
                weight *= (1.0 + f64::from(seconds.max(0.0)) / config.watch_seconds_unit).log2();
            }
            (weight > 0.0).then_some((e.user, e.item, weight as f32))
        })
        .collect();
    triples.sort_unstable_by_key(|&(user, item, _)| (user, item));
    triples.dedup_by(|later, kept| {
        let same = (later.0, later.1) == (kept.0, kept.1);
        if same {
            kept.2 += later.2;
        }
        same
    });
    triples
}

/// Items each user has interacted with in any way but an impression ("seen").
fn histories(gathered: &Gathered, as_of: Timestamp) -> Histories {
    let mut per_user: Vec<Vec<u32>> = vec![Vec::new(); gathered.user_ids.len()];
    for event in &gathered.interactions {
        if event.timestamp <= as_of && event.kind != EventKind::Impression {
            per_user[event.user as usize].push(event.item);
        }
    }
    let mean_rating = mean_ratings(gathered, as_of, gathered.user_ids.len(), |e| e.user);
    let mut histories = Histories { offsets: vec![0], mean_rating, ..Histories::default() };
    for (user, mut items) in per_user.into_iter().enumerate() {
        items.sort_unstable();
        items.dedup();
        histories.items.extend(items);
        histories.offsets.push(histories.items.len() as u64);
        histories.users.insert(gathered.user_ids[user].clone(), user as u32);
    }
    histories
}

/// The BM25 index of `items` (document i is item i) as `train` builds it.
pub fn build_text_index(items: &[Item], config: &SearchConfig) -> Bm25Index {
    let analyzer = AnalyzerConfig { stem: config.stem, stop_words: config.stop_words };
    let params = Bm25Params { k1: config.k1, b: config.b };
    Bm25Index::build(items.len(), |i| item_text(&items[i], config), analyzer, params)
}

/// The spell corrector's vocabulary: the words of the fields the text index reads.
pub fn build_vocabulary(items: &[Item], config: &SearchConfig) -> Vocabulary {
    Vocabulary::build(items.iter().flat_map(|item| item_text(item, config).fields.into_iter().map(|(text, _)| text)))
}

/// The weighted text of an item: title, categories and tags, and its free-text fields
/// (those configured, or all of them; URLs are left out).
fn item_text<'a>(item: &'a Item, config: &SearchConfig) -> DocText<'a> {
    let mut fields = vec![(item.title.as_str(), config.title_weight)];
    fields.extend(item.categories.iter().chain(&item.tags).map(|label| (label.as_str(), 1.0)));
    for (name, text) in &item.fields {
        let wanted = config.fields.is_empty() || config.fields.contains(name);
        if wanted && !text.starts_with("http://") && !text.starts_with("https://") {
            fields.push((text.as_str(), 1.0));
        }
    }
    DocText { fields }
}

#[cfg(test)]
mod tests {
    use funnel_core::{Event, EventContext};

    use super::*;

    #[test]
    fn positives_sum_event_weights_and_scale_watches_by_duration() {
        let mut gathered = Gathered::default();
        let events = [
            ("a", EventKind::Click, None),
            ("a", EventKind::Click, None),
            ("b", EventKind::Watch, Some(300.0)),
            ("c", EventKind::Watch, Some(3.0)),
            ("d", EventKind::Rating, Some(2.0)),
            ("e", EventKind::Impression, None),
            ("f", EventKind::Watch, None),
        ];
        for (item, kind, value) in events {
            let event = Event {
                user: "u".into(),
                item: item.into(),
                kind,
                value,
                timestamp: 10,
                context: EventContext::default(),
            };
            gathered.record(Record::Event(event));
        }
        let config = TrainConfig { min_rating: 3.0, ..TrainConfig::default() };
        let weights: HashMap<String, f32> = positives(&gathered, &config, 10)
            .into_iter()
            .map(|(_, item, w)| (gathered.items[item as usize].id.clone(), w))
            .collect();
        assert_eq!(weights["a"], 2.0, "two clicks");
        assert!((weights["b"] - 2.0 * 11f32.log2()).abs() < 1e-5, "a 5-minute watch: {}", weights["b"]);
        assert!(weights["c"] < weights["a"] / 2.0, "a 3-second watch counts less than a click");
        assert_eq!(weights["f"], 2.0, "a watch without a duration counts its weight");
        assert!(!weights.contains_key("d") && !weights.contains_key("e"), "low rating and impression: {weights:?}");
        assert!(positives(&gathered, &config, 9).is_empty(), "nothing before as_of");
    }
}
