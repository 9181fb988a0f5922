//! A learned intent classifier, for catalogs with labelled queries
//! (`search.intent_labels`: a TSV of `query<TAB>navigational|filtered|exploratory`).
//!
//! Multinomial logistic regression over the query's words (hashed into buckets) and the
//! rule signals (a whole title matched, that title's popularity, categories named, the
//! number of words). It learns where a catalog's users part from the rules: a one-word
//! title that is also a topic (`python`) may be exploratory, say. Trained by `funnel
//! train` on a seeded 80% of the labels; the other 20% measure it against the rules, and
//! the report goes into the snapshot's manifest.

use std::path::Path;

use funnel_text::words;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::snapshot::Popularity;
use crate::understand::{EntityConfig, Intent, QueryFacets, hash};

/// The classes, in the model's order.
pub const INTENTS: [&str; 3] = ["navigational", "filtered", "exploratory"];
const BUCKETS: usize = 1 << 12;
const SIGNALS: usize = 5;
const WIDTH: usize = BUCKETS + SIGNALS;
const EPOCHS: usize = 40;
const LEARNING_RATE: f32 = 0.2;
const L2: f32 = 1e-4;

/// How the served intent did on the held-out labels (on the training labels when
/// `held_out` is 0: fewer than 10 distinct queries), next to the rules'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentReport {
    pub labels: usize,
    pub held_out: usize,
    pub accuracy: f64,
    pub rules_accuracy: f64,
}

/// Weights per class over the features, and a bias per class.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntentModel {
    weights: Vec<f32>,
    bias: [f32; 3],
    pub report: IntentReport,
}

/// A labelled query.
#[derive(Debug, Clone)]
pub struct LabelledQuery {
    pub query: String,
    pub intent: usize,
}

/// Reads `query<TAB>intent` lines (a first line `query<TAB>intent` is a header); errors
/// name the file, line and field.
pub fn read_labels(path: &Path) -> Result<Vec<LabelledQuery>, ConfigError> {
    let key = "search.intent_labels";
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())))?;
    let mut labels = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || (n == 0 && line.trim() == "query\tintent") {
            continue;
        }
        let at = |field: &str, reason: String| {
            ConfigError::new(key, format!("{}:{}: {field}: {reason}", path.display(), n + 1))
        };
        let (query, intent) = line.rsplit_once('\t').ok_or_else(|| at("intent", "no tab before the intent".into()))?;
        let intent = INTENTS
            .iter()
            .position(|i| *i == intent.trim())
            .ok_or_else(|| at("intent", format!("`{}` is not one of {}", intent.trim(), INTENTS.join(", "))))?;
        if query.trim().is_empty() {
            return Err(at("query", "empty".into()));
        }
        labels.push(LabelledQuery { query: query.to_owned(), intent });
    }
    if labels.is_empty() {
        return Err(ConfigError::new(key, format!("{}: no labelled queries", path.display())));
    }
    Ok(labels)
}

/// The rules' answer as a class index.
fn class_of(intent: Intent) -> usize {
    match intent {
        Intent::Navigational(_) => 0,
        Intent::Filtered => 1,
        Intent::Exploratory => 2,
    }
}

/// A query's sparse features from its words, the title they are (if any) and the number
/// of categories they name: hashed words and the rule signals.
pub(crate) fn features(
    words: &[String],
    title: Option<u32>,
    categories: usize,
    popularity: &Popularity,
) -> Vec<(usize, f32)> {
    let n = words.len().max(1) as f32;
    let bucket = |word: &String| (hash(std::slice::from_ref(word)) % BUCKETS as u64) as usize;
    let mut out: Vec<(usize, f32)> = words.iter().map(|w| (bucket(w), 1.0 / n.sqrt())).collect();
    let top = popularity.log_top().max(1e-6);
    out.extend([
        (BUCKETS, f32::from(u8::from(title.is_some()))),
        (BUCKETS + 1, f32::from(u8::from(title.is_some() && words.len() == 1))),
        (BUCKETS + 2, title.map_or(0.0, |item| popularity.log_score(item) / top)),
        (BUCKETS + 3, categories.min(3) as f32 / 3.0),
        (BUCKETS + 4, 1.0 / n),
    ]);
    out
}

impl IntentModel {
    /// Trains on a seeded 80% of the distinct queries of `labels` (all of them when there
    /// are fewer than 10) and measures the intent it would serve on the rest, next to the
    /// rules' (default `[search.entities]`).
    pub fn train(labels: &[LabelledQuery], facets: &QueryFacets, popularity: &Popularity, seed: u64) -> Self {
        // A query labelled twice stays on one side of the split.
        let keys: Vec<String> = labels.iter().map(|l| words(&l.query).join(" ")).collect();
        let mut distinct: Vec<&str> = keys.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let mut rng = StdRng::seed_from_u64(seed);
        distinct.shuffle(&mut rng);
        let held: std::collections::HashSet<&str> =
            distinct.iter().take(if distinct.len() >= 10 { distinct.len() / 5 } else { 0 }).copied().collect();
        let (test, mut train): (Vec<usize>, Vec<usize>) =
            (0..labels.len()).partition(|&i| held.contains(keys[i].as_str()));
        let rows: Vec<Vec<(usize, f32)>> = labels
            .iter()
            .map(|l| {
                let words = words(&l.query);
                features(&words, facets.title_of(&words), facets.categories_in(&words).len(), popularity)
            })
            .collect();
        let mut model = Self {
            weights: vec![0.0; 3 * WIDTH],
            bias: [0.0; 3],
            report: IntentReport { labels: labels.len(), held_out: test.len(), accuracy: 0.0, rules_accuracy: 0.0 },
        };
        for _ in 0..EPOCHS {
            train.shuffle(&mut rng);
            for &i in &train {
                model.step(&rows[i], labels[i].intent);
            }
        }
        let measured: &[usize] = if test.is_empty() { &train } else { &test };
        let share =
            |hit: &dyn Fn(usize) -> bool| measured.iter().filter(|&&i| hit(i)).count() as f64 / measured.len() as f64;
        let config = EntityConfig::default();
        model.report.accuracy = share(&|i| {
            class_of(facets.understand(&labels[i].query, &config, Some((&model, popularity))).intent)
                == labels[i].intent
        });
        model.report.rules_accuracy = share(&|i| class_of(facets.rules_intent(&labels[i].query)) == labels[i].intent);
        model
    }

    /// One stochastic gradient step of the cross-entropy, with L2 on the touched weights.
    fn step(&mut self, row: &[(usize, f32)], label: usize) {
        let p = self.probabilities(row);
        for (class, &p) in p.iter().enumerate() {
            let gradient = p - f32::from(u8::from(class == label));
            self.bias[class] -= LEARNING_RATE * gradient;
            for &(f, x) in row {
                let w = &mut self.weights[class * WIDTH + f];
                *w -= LEARNING_RATE * (gradient * x + L2 * *w);
            }
        }
    }

    /// P(class) for a feature row.
    pub(crate) fn probabilities(&self, row: &[(usize, f32)]) -> [f32; 3] {
        let mut z = self.bias;
        for (class, z) in z.iter_mut().enumerate() {
            *z += row.iter().map(|&(f, x)| self.weights[class * WIDTH + f] * x).sum::<f32>();
        }
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e = z.map(|z| (z - max).exp());
        let sum: f32 = e.iter().sum();
        e.map(|e| e / sum)
    }

    /// Whether the stored weights fit this build's feature layout.
    pub fn is_valid(&self) -> bool {
        self.weights.len() == 3 * WIDTH && self.weights.iter().chain(&self.bias).all(|w| w.is_finite())
    }
}

/// The most probable class.
pub(crate) fn argmax(p: [f32; 3]) -> usize {
    (0..3).fold(0, |best, c| if p[c] > p[best] { c } else { best })
}

#[cfg(test)]
mod tests {
    use funnel_core::Item;

    use super::*;

    const TOPICS: [&str; 20] = [
        "python", "web", "database", "testing", "crypto", "graphics", "audio", "network", "parser", "logging",
        "images", "charts", "email", "security", "cache", "queue", "search", "maps", "fonts", "math",
    ];
    const TITLES: [&str; 20] = [
        "fast json reader",
        "async http client",
        "image resize tool",
        "pdf text extractor",
        "tiny web server",
        "sql query builder",
        "markdown to html",
        "yaml config loader",
        "command line colors",
        "date time helpers",
        "unit test runner",
        "password hash kit",
        "audio wave player",
        "graph layout engine",
        "csv table reader",
        "zip archive writer",
        "email address checker",
        "color palette maker",
        "retry with backoff",
        "uuid generator kit",
    ];

    /// Items: twenty distinctive titles and twenty one-word titles that are also topics;
    /// two categories.
    fn catalog() -> crate::Snapshot {
        let mut items: Vec<Item> = Vec::new();
        for (n, title) in TITLES.iter().chain(&TOPICS).enumerate() {
            let mut item = Item { title: (*title).into(), ..Item::bare(format!("i{n}")) };
            item.categories = vec![if n % 2 == 0 { "machine learning" } else { "games" }.into()];
            items.push(item);
        }
        crate::train::snapshot_of(items)
    }

    /// Users of this catalog mean a one-word title as a topic: the rules call it
    /// navigational, the labels exploratory.
    fn labels() -> Vec<LabelledQuery> {
        let mut labels = Vec::new();
        let mut add = |query: &str, intent: &str| {
            labels
                .push(LabelledQuery { query: query.into(), intent: INTENTS.iter().position(|i| *i == intent).unwrap() })
        };
        TITLES.iter().for_each(|t| add(t, "navigational"));
        TOPICS.iter().for_each(|t| add(t, "exploratory"));
        for q in ["games", "machine learning", "games for kids", "machine learning tools", "best games", "games online"]
        {
            add(q, "filtered");
        }
        for q in ["how to sort a list", "read a file quickly", "something for plots", "draw shapes on screen"] {
            add(q, "exploratory");
        }
        labels
    }

    #[test]
    fn the_classifier_learns_where_users_part_from_the_rules() {
        let snapshot = catalog();
        let facets = QueryFacets::build(&snapshot.catalog, &snapshot.popularity);
        let labels = labels();
        let model = IntentModel::train(&labels, &facets, &snapshot.popularity, 7);
        assert!(model.is_valid());
        let report = &model.report;
        assert_eq!((report.labels, report.held_out), (50, 10));
        assert!(report.accuracy > report.rules_accuracy, "{report:?}");
        assert!(report.accuracy >= 0.9, "{report:?}");
        // Served: a one-word title is now a topic, a distinctive title still navigational.
        let config = EntityConfig::default();
        let learned = Some((&model, &snapshot.popularity));
        let topic = facets.understand("database", &config, learned);
        assert_eq!(topic.intent, Intent::Exploratory, "{topic:?}");
        assert_eq!(facets.understand("database", &config, None).intent, Intent::Navigational(22));
        let title = facets.understand("tiny web server", &config, learned);
        assert_eq!(title.intent, Intent::Navigational(4), "{title:?}");
        assert!(title.probabilities.unwrap()[0] > 0.5);
        assert_eq!(facets.understand("games for adults", &config, learned).intent, Intent::Filtered);
        // Navigational needs a title: the model cannot name an item the query does not.
        let understood = facets.understand("tiny web servers", &config, learned);
        assert!(!matches!(understood.intent, Intent::Navigational(_)), "{understood:?}");
    }

    #[test]
    fn the_same_labels_and_seed_give_the_same_model() {
        let snapshot = catalog();
        let facets = QueryFacets::build(&snapshot.catalog, &snapshot.popularity);
        let a = IntentModel::train(&labels(), &facets, &snapshot.popularity, 3);
        let b = IntentModel::train(&labels(), &facets, &snapshot.popularity, 3);
        assert_eq!((a.weights, a.bias, a.report), (b.weights, b.bias, b.report));
    }

    #[test]
    fn bad_label_files_name_the_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("intents.tsv");
        std::fs::write(&path, "query\tintent\nstar wars\tnavigational\ncomedy\tfunny\n").unwrap();
        let err = read_labels(&path).unwrap_err().to_string();
        assert!(err.contains("intents.tsv:3: intent") && err.contains("`funny`"), "{err}");
        std::fs::write(&path, "star wars navigational\n").unwrap();
        let err = read_labels(&path).unwrap_err().to_string();
        assert!(err.contains("intents.tsv:1: intent: no tab"), "{err}");
        std::fs::write(&path, "\tfiltered\n").unwrap();
        assert!(read_labels(&path).unwrap_err().to_string().contains(":1: query: empty"));
        std::fs::write(&path, "query\tintent\n").unwrap();
        assert!(read_labels(&path).unwrap_err().to_string().contains("no labelled queries"));
        std::fs::write(&path, "query\tintent\ncomedy films\tfiltered\n").unwrap();
        assert_eq!(read_labels(&path).unwrap()[0].intent, 1);
        let missing = read_labels(&dir.path().join("nope.tsv")).unwrap_err().to_string();
        assert!(missing.contains("search.intent_labels") && missing.contains("nope.tsv"), "{missing}");
    }
}
