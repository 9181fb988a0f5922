//! The collaborative-filtering model of a snapshot: trained by `train` on positive
//! interactions, over the items that have any (a dense index apart from the catalog's),
//! and scored from a user's history at request time so that events since training count.

use funnel_models::{Als, AlsConfig, Ease, EaseConfig, Interactions, ItemKnn, ItemKnnConfig, Recommender};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::TrainConfig;

#[derive(Debug, Serialize, Deserialize)]
pub enum CfModel {
    ItemKnn(ItemKnn),
    Ease(Ease),
    Als(Als),
}

impl CfModel {
    fn recommender(&self) -> &dyn Recommender {
        match self {
            Self::ItemKnn(m) => m,
            Self::Ease(m) => m,
            Self::Als(m) => m,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Collaborative {
    model: CfModel,
    /// CF index → catalog index.
    items: Vec<u32>,
    #[serde(skip)]
    index: FxHashMap<u32, u32>,
}

/// Which model `auto` picks: EASE while its dense item × item matrices stay small.
fn choose(config: &TrainConfig, n_items: usize) -> Option<&'static str> {
    match config.cf_model.as_str() {
        "none" => None,
        "auto" if n_items <= config.ease_max_items => Some("ease"),
        "auto" => Some("item-knn"),
        "ease" => Some("ease"),
        "als" => Some("als"),
        _ => Some("item-knn"),
    }
}

impl Collaborative {
    /// Trains on `(user, catalog item)` positives; `None` when there are none or the
    /// configuration says `none`.
    pub fn train(positives: &[(u32, u32)], n_users: u32, config: &TrainConfig, seed: u64) -> Option<Self> {
        let mut items: Vec<u32> = positives.iter().map(|&(_, item)| item).collect();
        items.sort_unstable();
        items.dedup();
        let kind = choose(config, items.len())?;
        if items.is_empty() {
            return None;
        }
        let index: FxHashMap<u32, u32> = items.iter().enumerate().map(|(cf, &item)| (item, cf as u32)).collect();
        let triples = positives.iter().map(|&(user, item)| (user, index[&item], 1.0));
        let data = Interactions::from_triples(n_users, items.len() as u32, triples);
        let mut model = match kind {
            "ease" => CfModel::Ease(Ease::new(EaseConfig { max_items: usize::MAX, ..EaseConfig::default() })),
            "als" => CfModel::Als(Als::new(AlsConfig::default())),
            _ => CfModel::ItemKnn(ItemKnn::new(ItemKnnConfig::default())),
        };
        let fitted = match &mut model {
            CfModel::ItemKnn(m) => m.fit(&data, seed),
            CfModel::Ease(m) => m.fit(&data, seed),
            CfModel::Als(m) => m.fit(&data, seed),
        };
        if let Err(error) = fitted {
            tracing::warn!(%error, "collaborative filtering not trained");
            return None;
        }
        Some(Self { model, items, index })
    }

    pub(crate) fn rebuild_index(&mut self) {
        self.index = self.items.iter().enumerate().map(|(cf, &item)| (item, cf as u32)).collect();
    }

    pub fn name(&self) -> &'static str {
        self.model.recommender().name()
    }

    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// Scores for a history of catalog items: (catalog item, score) for every CF item,
    /// or `None` when no history item is known to the model.
    pub fn score(&self, history: &[u32]) -> Option<Vec<(u32, f32)>> {
        let known: Vec<u32> = history.iter().filter_map(|item| self.index.get(item).copied()).collect();
        if known.is_empty() {
            return None;
        }
        let mut scores = vec![0f32; self.items.len()];
        if !self.model.recommender().score_history(&known, &mut scores) {
            return None;
        }
        Some(self.items.iter().copied().zip(scores).collect())
    }
}
