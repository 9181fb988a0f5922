use std::collections::HashMap;

use funnel_core::{Item, Timestamp};
use serde::{Deserialize, Serialize};

/// What a request needs to know of an item. Free text lives only in the text index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogItem {
    pub id: String,
    pub title: String,
    pub categories: Vec<u32>,
    pub created_at: Option<Timestamp>,
    pub available: bool,
    pub safe: bool,
}

/// The catalog as of a snapshot: items by dense index, ids, category names.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Catalog {
    items: Vec<CatalogItem>,
    categories: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
    /// Hash of each normalised title (0 for none), for duplicate detection.
    #[serde(skip)]
    title_keys: Vec<u64>,
}

/// A hash of the trimmed, lowercased title; equal titles get equal keys. 0 means "no title".
fn title_key(title: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let title = title.trim();
    if title.is_empty() {
        return 0;
    }
    let mut hasher = std::hash::DefaultHasher::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        c.hash(&mut hasher);
    }
    hasher.finish().max(1)
}

impl Catalog {
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a Item>) -> Self {
        let mut catalog = Self::default();
        let mut category_ids: HashMap<String, u32> = HashMap::new();
        for item in items {
            let mut categories: Vec<u32> = Vec::with_capacity(item.categories.len());
            for name in &item.categories {
                let next = category_ids.len() as u32;
                let id = *category_ids.entry(name.clone()).or_insert_with(|| {
                    catalog.categories.push(name.clone());
                    next
                });
                // A category listed twice counts once (similarities are over sets).
                if !categories.contains(&id) {
                    categories.push(id);
                }
            }
            catalog.items.push(CatalogItem {
                id: item.id.clone(),
                title: item.title.clone(),
                categories,
                created_at: item.created_at,
                available: item.available,
                safe: item.safe,
            });
        }
        catalog.rebuild_index();
        catalog
    }

    /// Restores the lookups that are not stored (id index, title keys).
    pub(crate) fn rebuild_index(&mut self) {
        self.index = self.items.iter().enumerate().map(|(i, item)| (item.id.clone(), i as u32)).collect();
        self.title_keys = self.items.iter().map(|item| title_key(&item.title)).collect();
    }

    /// Equal for items whose titles are equal ignoring case and surrounding space;
    /// `None` for an item without a title.
    pub fn title_key(&self, index: u32) -> Option<u64> {
        Some(self.title_keys[index as usize]).filter(|&k| k != 0)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn get(&self, index: u32) -> &CatalogItem {
        &self.items[index as usize]
    }

    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    pub fn n_categories(&self) -> usize {
        self.categories.len()
    }

    pub fn category_name(&self, category: u32) -> &str {
        &self.categories[category as usize]
    }

    /// Whether an item may be served at all (available and safe).
    pub fn servable(&self, index: u32) -> bool {
        let item = self.get(index);
        item.available && item.safe
    }
}
