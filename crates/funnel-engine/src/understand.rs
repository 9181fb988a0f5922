//! Query understanding beyond spelling: which catalog facets a query names, and what
//! the user is after.
//!
//! - **Navigational**: the whole query is an item's title (`fastapi`, `star wars` for
//!   "Star Wars (1977)": a trailing parenthesis is optional). That item goes first.
//! - **Filtered**: the query names categories (`comedy romance`); matching items are
//!   boosted, or the others dropped, as `[search.entities] mode` says.
//! - **Exploratory**: anything else; text relevance alone decides.
//!
//! Both lookups are built from the catalog when a snapshot loads: titles as 64-bit hashes
//! of their normalised words (a sorted array of 16-byte entries, one or two per item),
//! category names as word sequences.

use funnel_text::words;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Catalog;
use crate::intent::IntentModel;
use crate::snapshot::Popularity;

/// What the query is after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// One item, by its exact title.
    Navigational(u32),
    /// Items of the named categories.
    Filtered,
    Exploratory,
}

/// How recognised categories act on the text results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityMode {
    /// Items in a named category score `1 + boost` times higher per category.
    Boost,
    /// Only items in every named category are kept (by the `bm25` and `dense` sources).
    Filter,
    /// Categories are not recognised.
    Off,
}

/// `[search.entities]`: read when serving (no retraining needed to change it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EntityConfig {
    pub mode: EntityMode,
    pub boost: f32,
    /// Put the item whose title is the whole query first.
    pub navigational: bool,
}

impl Default for EntityConfig {
    fn default() -> Self {
        Self { mode: EntityMode::Boost, boost: 0.5, navigational: true }
    }
}

/// What the understand stage found in one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Understanding {
    pub intent: Intent,
    /// P(navigational, filtered, exploratory) by the learned classifier, when the
    /// snapshot has one (it then chose `intent`).
    pub probabilities: Option<[f32; 3]>,
    /// Categories named in the query, in query order, distinct.
    pub categories: Vec<u32>,
    pub mode: EntityMode,
    pub boost: f32,
}

impl Understanding {
    /// How much an item's text score is multiplied by, or `None` when a filter drops it.
    /// Only a filtered query's categories act: a navigational query names one item (its
    /// words are the title's, not facets), and an exploratory one (which the learned
    /// classifier may call a query naming a category) is left to text relevance.
    pub fn factor(&self, item_categories: &[u32]) -> Option<f32> {
        if self.intent != Intent::Filtered {
            return Some(1.0);
        }
        let matched = self.categories.iter().filter(|c| item_categories.contains(c)).count();
        match self.mode {
            EntityMode::Filter if matched < self.categories.len() => None,
            EntityMode::Boost => Some((1.0 + self.boost).powi(matched as i32)),
            _ => Some(1.0),
        }
    }

    pub fn describe(&self, catalog: &Catalog) -> Value {
        let intent = match self.intent {
            Intent::Navigational(item) => json!({ "navigational": catalog.get(item).id }),
            Intent::Filtered => json!("filtered"),
            Intent::Exploratory => json!("exploratory"),
        };
        let names: Vec<&str> = self.categories.iter().map(|&c| catalog.category_name(c)).collect();
        let by = match self.probabilities {
            Some(p) => {
                json!({ "model": crate::intent::INTENTS.iter().zip(p).map(|(i, p)| (i.to_string(), json!(p))).collect::<serde_json::Map<_, _>>() })
            }
            None => json!("rules"),
        };
        json!({ "intent": intent, "intent_by": by, "categories": names, "entity_mode": self.mode })
    }
}

/// The lookups: title hashes and category names.
#[derive(Debug, Default)]
pub struct QueryFacets {
    /// (hash of a title's words, item), sorted; for equal titles the most popular item
    /// comes first.
    titles: Vec<(u64, u32)>,
    /// Each category's name as lower-case words, with its id; longest first.
    categories: Vec<(Vec<String>, u32)>,
}

/// Longest category name, in words, that is looked for.
const MAX_PHRASE: usize = 6;

impl QueryFacets {
    pub fn build(catalog: &Catalog, popularity: &Popularity) -> Self {
        let mut rank = vec![u32::MAX; catalog.len()];
        for (position, &item) in popularity.order.iter().enumerate() {
            rank[item as usize] = position as u32;
        }
        let mut titles: Vec<(u64, u32, u32)> = Vec::new();
        for item in 0..catalog.len() as u32 {
            let title = &catalog.get(item).title;
            let full = words(title);
            if full.is_empty() {
                continue;
            }
            titles.push((hash(&full), rank[item as usize], item));
            if let Some(cut) = title.trim_end().strip_suffix(')').and_then(|t| t.rfind('(')) {
                let short = words(&title[..cut]);
                if !short.is_empty() {
                    titles.push((hash(&short), rank[item as usize], item));
                }
            }
        }
        titles.sort_unstable();
        titles.dedup_by_key(|entry| (entry.0, entry.2));
        let mut categories: Vec<(Vec<String>, u32)> = (0..catalog.n_categories() as u32)
            .map(|c| (words(catalog.category_name(c)), c))
            .filter(|(w, _)| !w.is_empty() && w.len() <= MAX_PHRASE)
            .collect();
        categories.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Self { titles: titles.into_iter().map(|(key, _, item)| (key, item)).collect(), categories }
    }

    /// Whether `query` is exactly some item's title (then its spelling is the catalog's own).
    pub fn is_title(&self, query: &str) -> bool {
        self.title_of(&words(query)).is_some()
    }

    /// The item whose title is exactly `query` (the most popular of equal titles).
    pub(crate) fn title_of(&self, query: &[String]) -> Option<u32> {
        let key = hash(query);
        let at = self.titles.partition_point(|&(k, _)| k < key);
        self.titles.get(at).filter(|&&(k, _)| k == key).map(|&(_, item)| item)
    }

    /// Categories named in `query`: at each word the longest name starting there.
    pub(crate) fn categories_in(&self, query: &[String]) -> Vec<u32> {
        let mut found = Vec::new();
        let mut at = 0;
        while at < query.len() {
            let hit = self.categories.iter().find(|(name, _)| query[at..].starts_with(name));
            match hit {
                Some((name, category)) => {
                    if !found.contains(category) {
                        found.push(*category);
                    }
                    at += name.len();
                }
                None => at += 1,
            }
        }
        found
    }

    /// The query's categories and intent: by the rules, or by `learned` (the snapshot's
    /// classifier, with the popularity its features read) when given. A navigational
    /// answer needs a title the whole query matches and a filtered one a category it
    /// names; otherwise the rules' answer among the other two stands.
    pub fn understand(
        &self,
        query: &str,
        config: &EntityConfig,
        learned: Option<(&IntentModel, &Popularity)>,
    ) -> Understanding {
        let words = words(query);
        // Looked up whatever the config says: the classifier's features do not depend on it.
        let (named, title) = (self.categories_in(&words), self.title_of(&words));
        let navigational = title.filter(|_| config.navigational);
        let categories = match config.mode {
            EntityMode::Off => Vec::new(),
            _ => named.clone(),
        };
        let otherwise = if categories.is_empty() { Intent::Exploratory } else { Intent::Filtered };
        let (intent, probabilities) = match learned {
            None => (navigational.map_or(otherwise, Intent::Navigational), None),
            Some((model, popularity)) => {
                let p = model.probabilities(&crate::intent::features(&words, title, named.len(), popularity));
                // Navigational needs a title the query is, filtered a category it names.
                let intent = match crate::intent::argmax(p) {
                    0 => navigational.map_or(otherwise, Intent::Navigational),
                    1 => otherwise,
                    _ => Intent::Exploratory,
                };
                (intent, Some(p))
            }
        };
        Understanding { intent, probabilities, categories, mode: config.mode, boost: config.boost.max(0.0) }
    }

    /// The rules' intent for `query` (titles and categories both looked for).
    pub(crate) fn rules_intent(&self, query: &str) -> Intent {
        self.understand(query, &EntityConfig::default(), None).intent
    }
}

/// FNV-1a over the words, a separator between them.
pub(crate) fn hash(words: &[String]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for word in words {
        for b in word.bytes().chain([0xff]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use funnel_core::Item;

    use super::*;

    fn item(id: &str, title: &str, categories: &[&str]) -> Item {
        let mut item = Item::bare(id);
        item.title = title.into();
        item.categories = categories.iter().map(|c| (*c).to_owned()).collect();
        item
    }

    fn facets() -> (Catalog, QueryFacets) {
        let items = [
            item("sw", "Star Wars (1977)", &["Sci-Fi", "Action"]),
            item("love", "Love Actually", &["Comedy", "Romance"]),
            item("fa", "fastapi", &[]),
            item("fa2", "FastAPI", &["Web Framework"]),
            item("guide", "Comedy Writing Guide", &["Book"]),
        ];
        let catalog = Catalog::from_items(&items);
        // fa2 is more popular than fa.
        let popularity =
            Popularity { scores: vec![1.0, 1.0, 1.0, 5.0, 1.0], order: vec![3, 0, 1, 2, 4], ..Popularity::default() };
        let facets = QueryFacets::build(&catalog, &popularity);
        (catalog, facets)
    }

    #[test]
    fn a_whole_title_is_navigational_with_or_without_its_parenthesis() {
        let (_, facets) = facets();
        let config = EntityConfig::default();
        assert_eq!(facets.understand("Star Wars", &config, None).intent, Intent::Navigational(0));
        assert_eq!(facets.understand("star wars (1977)", &config, None).intent, Intent::Navigational(0));
        assert_eq!(facets.understand("star wars sequel", &config, None).intent, Intent::Exploratory);
        assert_eq!(facets.understand("FASTAPI", &config, None).intent, Intent::Navigational(3), "the more popular one");
        let off = EntityConfig { navigational: false, ..config };
        assert_eq!(facets.understand("fastapi", &off, None).intent, Intent::Exploratory);
    }

    #[test]
    fn named_categories_filter_or_boost() {
        let (catalog, facets) = facets();
        let boost = EntityConfig::default();
        let understood = facets.understand("funny comedy with romance", &boost, None);
        assert_eq!(understood.intent, Intent::Filtered);
        let names: Vec<&str> = understood.categories.iter().map(|&c| catalog.category_name(c)).collect();
        assert_eq!(names, ["Comedy", "Romance"]);
        assert_eq!(understood.factor(&catalog.get(1).categories), Some(2.25));
        assert_eq!(understood.factor(&catalog.get(0).categories), Some(1.0));
        // Multi-word names match whole; "sci fi" is the words of "Sci-Fi".
        let phrase = facets.understand("async web framework", &boost, None);
        assert_eq!(phrase.categories.len(), 1);
        assert_eq!(facets.understand("sci fi classics", &boost, None).categories.len(), 1);

        let filter = EntityConfig { mode: EntityMode::Filter, ..boost };
        let understood = facets.understand("comedy romance", &filter, None);
        assert_eq!(understood.factor(&catalog.get(1).categories), Some(1.0));
        assert_eq!(understood.factor(&catalog.get(0).categories), None);
        let off = EntityConfig { mode: EntityMode::Off, ..boost };
        assert_eq!(facets.understand("comedy", &off, None).intent, Intent::Exploratory);
    }

    #[test]
    fn a_navigational_query_is_not_filtered_by_the_categories_its_title_names() {
        let (catalog, facets) = facets();
        let filter = EntityConfig { mode: EntityMode::Filter, ..EntityConfig::default() };
        // The title names the Comedy category, but the guide is a Book: still the item asked for.
        let understood = facets.understand("comedy writing guide", &filter, None);
        assert_eq!(understood.intent, Intent::Navigational(4));
        assert_eq!(understood.factor(&catalog.get(4).categories), Some(1.0));
        assert!(facets.is_title("Ｓtar Wars"), "full-width letters are NFKC-normalised");
    }

    #[test]
    fn only_a_filtered_query_boosts_or_filters() {
        // As a learned classifier may answer: a query naming a category, called exploratory.
        let exploratory = Understanding {
            intent: Intent::Exploratory,
            probabilities: Some([0.1, 0.2, 0.7]),
            categories: vec![0],
            mode: EntityMode::Filter,
            boost: 0.5,
        };
        assert_eq!(exploratory.factor(&[1]), Some(1.0));
        let filtered = Understanding { intent: Intent::Filtered, ..exploratory.clone() };
        assert_eq!(filtered.factor(&[1]), None);
        assert_eq!(filtered.factor(&[0]), Some(1.0));
        let boosted = Understanding { mode: EntityMode::Boost, ..filtered };
        assert_eq!(boosted.factor(&[0]), Some(1.5));
    }
}
