//! The collaborative-filtering model of a snapshot: trained by `train` on positive
//! interactions, over the items that have any (a dense index apart from the catalog's),
//! and scored from a user's history at request time so that events since training count.
//! Vector models (ALS, two-tower) answer through a nearest-neighbour index over the item factors
//! (maximum inner product), so a request does not score every item of a large catalog.

use funnel_ann::{HnswParams, Metric, VectorIndex};
use funnel_models::{
    Als, AlsConfig, Ease, EaseConfig, Interactions, ItemKnn, ItemKnnConfig, Recommender, TwoTower, TwoTowerConfig,
};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::TrainConfig;
use crate::content::ContentIndex;

#[derive(Debug, Serialize, Deserialize)]
pub enum CfModel {
    ItemKnn(ItemKnn),
    Ease(Ease),
    Als(Als),
    TwoTower(Box<TwoTower>),
}

impl CfModel {
    fn recommender(&self) -> &dyn Recommender {
        match self {
            Self::ItemKnn(m) => m,
            Self::Ease(m) => m,
            Self::Als(m) => m,
            Self::TwoTower(m) => m.as_ref(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Collaborative {
    model: CfModel,
    /// CF index → catalog index.
    items: Vec<u32>,
    /// Item factors of a factor model, for top-k by inner product.
    #[serde(default)]
    ann: Option<VectorIndex>,
    #[serde(default)]
    ef_search: usize,
    #[serde(skip)]
    index: FxHashMap<u32, u32>,
}

/// What the two-tower model learns from besides the interactions.
#[derive(Default)]
pub struct TowerFeatures<'a> {
    /// Content vectors by catalog item.
    pub content: Option<&'a ContentIndex>,
    /// Category labels by catalog item, and how many labels there are.
    pub item_labels: (Vec<Vec<u32>>, usize),
    /// Segments by user index, and how many segments there are.
    pub user_labels: (Vec<Vec<u32>>, usize),
}

/// An untrained two-tower model over the CF items (`items`: CF index → catalog index).
fn two_tower(items: &[u32], features: &TowerFeatures<'_>) -> TwoTower {
    let mut model = TwoTower::new(TwoTowerConfig::default());
    if let Some(content) = features.content
        && let Some(width) = content.vector(0).map(<[f32]>::len)
    {
        let rows: Vec<f32> = items.iter().flat_map(|&item| content.vector(item).unwrap_or(&[]).to_vec()).collect();
        if rows.len() == items.len() * width {
            model = model.with_item_features(items.len(), width, rows);
        }
    }
    let (item_labels, n_item_labels) = &features.item_labels;
    if *n_item_labels > 0 {
        let per_item: Vec<Vec<u32>> =
            items.iter().map(|&item| item_labels.get(item as usize).cloned().unwrap_or_default()).collect();
        model = model.with_item_labels(*n_item_labels, &per_item);
    }
    let (user_labels, n_user_labels) = &features.user_labels;
    if *n_user_labels > 0 {
        model = model.with_user_labels(*n_user_labels, user_labels);
    }
    model
}

/// Which model `auto` picks: EASE while its dense item × item matrices stay small.
fn choose(config: &TrainConfig, n_items: usize) -> Option<&'static str> {
    match config.cf_model.as_str() {
        "none" => None,
        "auto" if n_items <= config.ease_max_items => Some("ease"),
        "auto" => Some("item-knn"),
        "ease" => Some("ease"),
        "als" => Some("als"),
        "two-tower" => Some("two-tower"),
        _ => Some("item-knn"),
    }
}

impl Collaborative {
    /// Trains on `(user, catalog item)` positives; `None` when there are none or the
    /// configuration says `none`.
    /// `features` feed the two-tower model: content vectors, item categories, user segments.
    pub fn train(
        positives: &[(u32, u32, f32)],
        n_users: u32,
        config: &TrainConfig,
        features: &TowerFeatures<'_>,
        seed: u64,
    ) -> Option<Self> {
        let mut items: Vec<u32> = positives.iter().map(|&(_, item, _)| item).collect();
        items.sort_unstable();
        items.dedup();
        let kind = choose(config, items.len())?;
        if items.is_empty() {
            return None;
        }
        let index: FxHashMap<u32, u32> = items.iter().enumerate().map(|(cf, &item)| (item, cf as u32)).collect();
        let triples = positives.iter().map(|&(user, item, weight)| (user, index[&item], weight));
        let data = Interactions::from_triples(n_users, items.len() as u32, triples);
        let mut model = match kind {
            "ease" => CfModel::Ease(Ease::new(EaseConfig { max_items: usize::MAX, ..EaseConfig::default() })),
            "als" => CfModel::Als(Als::new(AlsConfig {
                factors: config.als_factors,
                iterations: config.als_iterations,
                use_values: true,
                ..AlsConfig::default()
            })),
            "two-tower" => CfModel::TwoTower(Box::new(two_tower(&items, features))),
            _ => CfModel::ItemKnn(ItemKnn::new(ItemKnnConfig::default())),
        };
        let fitted = match &mut model {
            CfModel::ItemKnn(m) => m.fit(&data, seed),
            CfModel::Ease(m) => m.fit(&data, seed),
            CfModel::Als(m) => m.fit(&data, seed),
            CfModel::TwoTower(m) => m.fit(&data, seed),
        };
        if let Err(error) = fitted {
            tracing::warn!(%error, "collaborative filtering not trained");
            return None;
        }
        let vectors = match &model {
            CfModel::Als(als) => Some((als.item_factors().to_vec(), als.config.factors)),
            CfModel::TwoTower(tt) => Some((tt.item_vectors().to_vec(), tt.config.dim)),
            _ => None,
        };
        let ann = vectors.and_then(|(data, dim)| {
            let params = HnswParams { seed, ..HnswParams::default() };
            VectorIndex::build(data, dim, Metric::Dot, params, config.cf_exact_below)
                .map_err(|error| tracing::warn!(%error, "no index over the item vectors"))
                .ok()
        });
        Some(Self { model, items, index, ann, ef_search: config.cf_ef_search })
    }

    pub(crate) fn rebuild_index(&mut self) {
        self.index = self.items.iter().enumerate().map(|(cf, &item)| (item, cf as u32)).collect();
    }

    pub fn name(&self) -> &'static str {
        self.model.recommender().name()
    }

    /// Whether [`Collaborative::top`] uses the user's segments (the two-tower model does).
    pub fn reads_segments(&self) -> bool {
        matches!(self.model, CfModel::TwoTower(_))
    }

    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// The `limit` best (catalog item, score) pairs for a history (and the user's
    /// segments, which the two-tower model reads) that pass `keep`, best first; `None`
    /// when no history item is known to the model.
    pub fn top(
        &self,
        history: &[u32],
        segments: &[u32],
        limit: usize,
        keep: &dyn Fn(u32) -> bool,
    ) -> Option<Vec<(u32, f32)>> {
        let query = |known: &[u32]| match &self.model {
            CfModel::Als(als) => Some(als.fold_in(known, &vec![1.0; known.len()])),
            CfModel::TwoTower(tt) => Some(tt.user_vector(None, known, Some(segments))),
            _ => None,
        };
        // Only vector models (ALS, two-tower) have an index.
        let Some(ann) = &self.ann else {
            let mut scored = self.score(history)?;
            scored.retain(|&(item, score)| score > 0.0 && keep(item));
            let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            if scored.len() > limit {
                scored.select_nth_unstable_by(limit.max(1) - 1, order);
                scored.truncate(limit);
            }
            scored.sort_unstable_by(order);
            return Some(scored);
        };
        let known: Vec<u32> = history.iter().filter_map(|item| self.index.get(item).copied()).collect();
        if known.is_empty() {
            return None;
        }
        let user = query(&known)?;
        // The user's own items come back too (they score high): ask for that many more.
        let wanted = (limit + known.len()).min(self.items.len());
        let found = ann.search(&user, wanted, self.ef_search.max(wanted)).ok()?;
        let items = found.into_iter().map(|n| (self.items[n.id as usize], n.score));
        Some(items.filter(|&(item, score)| score > 0.0 && keep(item)).take(limit).collect())
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
