//! Item-based k-nearest neighbours: cosine similarity between items' user sets, shrunk
//! towards zero when two items share few users (s·n/(n + shrinkage), Koren 2008), the
//! top `neighbours` kept per item. A user's score for item j is the sum of j's
//! similarities to the items the user has.

use rayon::prelude::*;

use crate::{Interactions, ModelError, Recommender};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ItemKnnConfig {
    pub neighbours: usize,
    pub shrinkage: f32,
}

impl Default for ItemKnnConfig {
    fn default() -> Self {
        Self { neighbours: 100, shrinkage: 10.0 }
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ItemKnn {
    pub config: ItemKnnConfig,
    /// CSR: the kept neighbours of each item, with similarities.
    offsets: Vec<usize>,
    neighbours: Vec<(u32, f32)>,
}

impl ItemKnn {
    pub fn new(config: ItemKnnConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// The kept neighbours of an item, most similar first.
    pub fn neighbours_of(&self, item: u32) -> &[(u32, f32)] {
        &self.neighbours[self.offsets[item as usize]..self.offsets[item as usize + 1]]
    }
}

impl Recommender for ItemKnn {
    fn name(&self) -> &'static str {
        "item-knn"
    }

    fn fit(&mut self, data: &Interactions, _seed: u64) -> Result<(), ModelError> {
        if self.config.neighbours == 0 || self.config.shrinkage < 0.0 {
            return Err(ModelError::Invalid { model: "item-knn", reason: "neighbours ≥ 1, shrinkage ≥ 0".into() });
        }
        let users_of = data.transpose();
        let n_items = data.n_items() as usize;
        let norms: Vec<f32> = (0..n_items as u32).map(|i| (users_of.items_of(i).len() as f32).sqrt()).collect();
        let ItemKnnConfig { neighbours: k, shrinkage } = self.config;
        let lists: Vec<Vec<(u32, f32)>> = (0..n_items as u32)
            .into_par_iter()
            .map_init(
                || (vec![0u32; n_items], Vec::new()),
                |(counts, touched), i| {
                    for &u in users_of.items_of(i) {
                        for &j in data.items_of(u) {
                            if counts[j as usize] == 0 {
                                touched.push(j);
                            }
                            counts[j as usize] += 1;
                        }
                    }
                    let mut list: Vec<(u32, f32)> = touched
                        .drain(..)
                        .filter(|&j| j != i)
                        .map(|j| {
                            let common = counts[j as usize] as f32;
                            let cosine = common / (norms[i as usize] * norms[j as usize]);
                            (j, cosine * common / (common + shrinkage))
                        })
                        .collect();
                    touched.clear();
                    for &(j, _) in &list {
                        counts[j as usize] = 0;
                    }
                    counts[i as usize] = 0;
                    list.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    list.truncate(k);
                    list
                },
            )
            .collect();
        self.offsets = Vec::with_capacity(n_items + 1);
        self.offsets.push(0);
        self.neighbours.clear();
        for list in lists {
            self.neighbours.extend(list);
            self.offsets.push(self.neighbours.len());
        }
        Ok(())
    }

    fn score(&self, user: u32, data: &Interactions, out: &mut [f32]) {
        self.score_history(data.items_of(user), out);
    }

    fn score_history(&self, items: &[u32], out: &mut [f32]) -> bool {
        out.fill(0.0);
        for &i in items {
            for &(j, s) in self.neighbours_of(i) {
                out[j as usize] += s;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn co_consumed_items_are_neighbours_and_shrinkage_damps_rare_pairs() {
        // Items 0 and 1 share three users; 0 and 2 share one.
        let data = Interactions::from_triples(
            4,
            3,
            [(0, 0, 1.0), (0, 1, 1.0), (1, 0, 1.0), (1, 1, 1.0), (2, 0, 1.0), (2, 1, 1.0), (3, 0, 1.0), (3, 2, 1.0)],
        );
        let mut model = ItemKnn::new(ItemKnnConfig { neighbours: 5, shrinkage: 0.0 });
        model.fit(&data, 0).unwrap();
        let n0 = model.neighbours_of(0);
        assert_eq!(n0[0].0, 1);
        assert!((n0[0].1 - 3.0 / (2.0 * 3f32.sqrt())).abs() < 1e-6);
        let mut shrunk = ItemKnn::new(ItemKnnConfig { neighbours: 5, shrinkage: 10.0 });
        shrunk.fit(&data, 0).unwrap();
        assert!(shrunk.neighbours_of(0)[1].1 < model.neighbours_of(0)[1].1 / 5.0);
        let mut scores = vec![0.0; 3];
        model.score(3, &data, &mut scores); // user 3 has items 0 and 2
        assert!(scores[1] > 0.0);
    }
}
