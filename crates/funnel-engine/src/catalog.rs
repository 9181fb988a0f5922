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
}

impl Catalog {
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a Item>) -> Self {
        let mut catalog = Self::default();
        let mut category_ids: HashMap<String, u32> = HashMap::new();
        for item in items {
            let categories = item
                .categories
                .iter()
                .map(|name| {
                    let next = category_ids.len() as u32;
                    *category_ids.entry(name.clone()).or_insert_with(|| {
                        catalog.categories.push(name.clone());
                        next
                    })
                })
                .collect();
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

    /// Restores the id lookup after deserialisation.
    pub(crate) fn rebuild_index(&mut self) {
        self.index = self.items.iter().enumerate().map(|(i, item)| (item.id.clone(), i as u32)).collect();
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

    pub fn category_name(&self, category: u32) -> &str {
        &self.categories[category as usize]
    }

    /// Whether an item may be served at all (available and safe).
    pub fn servable(&self, index: u32) -> bool {
        let item = self.get(index);
        item.available && item.safe
    }
}
