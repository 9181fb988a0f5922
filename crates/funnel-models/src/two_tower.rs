//! Two-tower retrieval model, trained with candle on the interaction matrix.
//!
//! - **User tower**: the user's id embedding (dropped at random in training, absent for a
//!   user folded in from a history) plus the mean embedding of their other items, plus
//!   the mean embedding of their attribute labels (`country=DE`, when
//!   [`TwoTower::with_user_labels`] gave them; also dropped at random), through a
//!   two-layer MLP, normalised.
//! - **Item tower**: the item's id embedding plus a projection of its content vector
//!   (when [`TwoTower::with_item_features`] gave one) plus the mean embedding of its
//!   category labels ([`TwoTower::with_item_labels`]), through a linear layer,
//!   normalised. Id embeddings start at zero, so an item without interactions is placed
//!   by its content and categories alone.
//! - **Loss**: in-batch sampled softmax over the batch's items with a temperature, with
//!   the logQ correction for popular items being sampled as negatives more often; a
//!   repeat of the row's own item elsewhere in the batch is masked, not a negative.
//!
//! Parameters are initialised from a seeded RNG (not candle's), so training is
//! deterministic given the seed. Serving needs no candle: item vectors are computed once
//! after training and the user tower is a few small matrix products in plain Rust.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::linalg::dot;
use crate::{Interactions, ModelError, Recommender};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwoTowerConfig {
    /// Width of both towers' output (and of the embeddings).
    pub dim: usize,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Softmax temperature of the in-batch loss.
    pub temperature: f64,
    /// At most this many of the user's other items feed the user tower per example.
    pub max_history: usize,
    /// Probability of hiding the user id in training, so the tower also works from a
    /// history alone.
    pub id_dropout: f64,
    /// Probability of hiding the user's history in training, so the tower also works from
    /// attributes alone (a user with no events yet).
    pub history_dropout: f64,
}

impl Default for TwoTowerConfig {
    fn default() -> Self {
        Self {
            dim: 64,
            epochs: 20,
            batch: 512,
            learning_rate: 0.005,
            weight_decay: 1e-5,
            temperature: 0.1,
            max_history: 50,
            id_dropout: 0.5,
            history_dropout: 0.0,
        }
    }
}

/// Label sets per row (a user's attribute values, an item's categories), in CSR form.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct LabelSets {
    n_labels: usize,
    offsets: Vec<usize>,
    ids: Vec<u32>,
}

impl LabelSets {
    fn new(n_labels: usize, sets: &[Vec<u32>]) -> Self {
        let mut offsets = vec![0];
        let mut ids = Vec::new();
        for set in sets {
            ids.extend(set.iter().copied().filter(|&l| (l as usize) < n_labels));
            offsets.push(ids.len());
        }
        Self { n_labels, offsets, ids }
    }

    fn of(&self, row: usize) -> &[u32] {
        match (self.offsets.get(row), self.offsets.get(row + 1)) {
            (Some(&start), Some(&end)) => &self.ids[start..end],
            _ => &[],
        }
    }

    /// The labels of `rows`, flattened for pooling: each batch row's labels weigh 1 / count.
    fn bag(&self, rows: impl Iterator<Item = usize>, device: &Device) -> candle_core::Result<Option<Bag>> {
        let (mut ids, mut at, mut weights) = (Vec::new(), Vec::new(), Vec::new());
        for (batch_row, row) in rows.enumerate() {
            let labels = self.of(row);
            for &label in labels {
                ids.push(label);
                at.push(batch_row as u32);
                weights.push(1.0 / labels.len() as f32);
            }
        }
        Bag::new(ids, at, weights, device)
    }
}

/// Rows of an embedding table to average into batch rows: table row, batch row, weight.
struct Bag {
    ids: Tensor,
    rows: Tensor,
    weights: Tensor,
}

impl Bag {
    fn new(ids: Vec<u32>, rows: Vec<u32>, weights: Vec<f32>, device: &Device) -> candle_core::Result<Option<Self>> {
        if ids.is_empty() {
            return Ok(None);
        }
        let n = ids.len();
        Ok(Some(Self {
            ids: Tensor::from_vec(ids, n, device)?,
            rows: Tensor::from_vec(rows, n, device)?,
            weights: Tensor::from_vec(weights, n, device)?,
        }))
    }

    /// Σ weight · table[id] per batch row (`rows` × table width).
    fn pool(bag: Option<&Self>, table: &Tensor, rows: usize) -> candle_core::Result<Tensor> {
        let zeros = Tensor::zeros((rows, table.dim(1)?), DType::F32, table.device())?;
        match bag {
            None => Ok(zeros),
            Some(bag) => {
                let gathered = table.index_select(&bag.ids, 0)?.broadcast_mul(&bag.weights.unsqueeze(1)?)?;
                zeros.index_add(&bag.rows, &gathered, 0)
            }
        }
    }
}

/// A dense row-major matrix kept for serving.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Dense {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Dense {
    fn of(tensor: &Tensor) -> candle_core::Result<Self> {
        let (rows, cols) = tensor.dims2()?;
        Ok(Self { rows, cols, data: tensor.flatten_all()?.to_vec1::<f32>()? })
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// `x · self` for a row vector `x` of length `rows`.
    fn left_multiply(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; self.cols];
        for (xi, row) in x.iter().zip(self.data.chunks_exact(self.cols)) {
            out.iter_mut().zip(row).for_each(|(o, w)| *o += xi * w);
        }
        out
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TwoTower {
    pub config: TwoTowerConfig,
    /// Content vectors per item (row-major, `n_items × width`), if given.
    features: Option<Dense>,
    /// Attribute labels per user and their embeddings, if given.
    user_labels: Option<LabelSets>,
    user_label_table: Dense,
    /// Category labels per item (training only: the item vectors include them).
    #[serde(skip)]
    item_labels: Option<LabelSets>,
    user_ids: Dense,
    history: Dense,
    w1: Dense,
    b1: Vec<f32>,
    w2: Dense,
    b2: Vec<f32>,
    /// The item tower's output for every item, unit length.
    item_vectors: Dense,
}

fn invalid(reason: impl ToString) -> ModelError {
    ModelError::Invalid { model: "two-tower", reason: reason.to_string() }
}

/// Trainable parameters.
struct Params {
    user_ids: Var,
    history: Var,
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
    item_ids: Var,
    project: Option<Var>,
    user_labels: Option<Var>,
    item_labels: Option<Var>,
    w_item: Var,
    b_item: Var,
}

fn var(rng: &mut StdRng, shape: (usize, usize), scale: f64, device: &Device) -> candle_core::Result<Var> {
    let data: Vec<f32> =
        (0..shape.0 * shape.1).map(|_| (rng.random::<f64>() * 2.0 - 1.0) as f32 * scale as f32).collect();
    Var::from_tensor(&Tensor::from_vec(data, shape, device)?)
}

fn zeros(shape: (usize, usize), device: &Device) -> candle_core::Result<Var> {
    Var::zeros(shape, DType::F32, device)
}

fn normalise_rows(x: &Tensor) -> candle_core::Result<Tensor> {
    // ε inside the root keeps the gradient finite for a zero row.
    let norms = (x.sqr()?.sum_keepdim(1)? + 1e-8)?.sqrt()?;
    x.broadcast_div(&norms)
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// One batch's inputs, as index tensors.
struct Batch {
    users: Tensor,
    /// 1 where the user id is shown to the tower, 0 where dropped.
    id_mask: Tensor,
    items: Tensor,
    /// The other items of each row's user, to average.
    history: Option<Bag>,
    user_labels: Option<Bag>,
    item_labels: Option<Bag>,
    log_q: Tensor,
    /// −1e9 where column j's item equals row i's (j ≠ i): a repeated positive is not a
    /// negative.
    duplicates: Tensor,
}

impl TwoTower {
    pub fn new(config: TwoTowerConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// Content vectors for the items (row i = item i, all of one width); items without
    /// content may have a zero row.
    pub fn with_item_features(mut self, rows: usize, cols: usize, data: Vec<f32>) -> Self {
        self.features = Some(Dense { rows, cols, data });
        self
    }

    /// Attribute labels (ids below `n_labels`) of each user: row u = user u.
    pub fn with_user_labels(mut self, n_labels: usize, per_user: &[Vec<u32>]) -> Self {
        self.user_labels = Some(LabelSets::new(n_labels, per_user));
        self
    }

    /// Category labels (ids below `n_labels`) of each item: row i = item i.
    pub fn with_item_labels(mut self, n_labels: usize, per_item: &[Vec<u32>]) -> Self {
        self.item_labels = Some(LabelSets::new(n_labels, per_item));
        self
    }

    /// The unit-length vector of every item (row i = item i), for an ANN index.
    pub fn item_vectors(&self) -> &[f32] {
        &self.item_vectors.data
    }

    /// The user tower's output for a history, the user's id row when known, and attribute
    /// labels: `labels` when given, else the stored user's.
    pub fn user_vector(&self, user: Option<u32>, items: &[u32], labels: Option<&[u32]>) -> Vec<f32> {
        let dim = self.config.dim;
        let mut pooled = vec![0f32; dim];
        let known: Vec<u32> = items.iter().copied().filter(|&i| (i as usize) < self.history.rows).collect();
        // Training pools a random sample of at most `max_history` items; the mean over the
        // whole history is that sample mean's expectation.
        for &item in &known {
            pooled.iter_mut().zip(self.history.row(item as usize)).for_each(|(p, h)| *p += h);
        }
        let n = known.len().max(1) as f32;
        pooled.iter_mut().for_each(|p| *p /= n);
        if let Some(user) = user.filter(|&u| (u as usize) < self.user_ids.rows) {
            pooled.iter_mut().zip(self.user_ids.row(user as usize)).for_each(|(p, e)| *p += e);
        }
        let stored = match (&self.user_labels, user) {
            (Some(sets), Some(user)) => sets.of(user as usize),
            _ => &[],
        };
        let labels: Vec<u32> =
            labels.unwrap_or(stored).iter().copied().filter(|&l| (l as usize) < self.user_label_table.rows).collect();
        for &label in &labels {
            let weight = 1.0 / labels.len() as f32;
            pooled.iter_mut().zip(self.user_label_table.row(label as usize)).for_each(|(p, e)| *p += weight * e);
        }
        let mut hidden = self.w1.left_multiply(&pooled);
        hidden.iter_mut().zip(&self.b1).for_each(|(h, b)| *h = (*h + b).max(0.0));
        let mut out = self.w2.left_multiply(&hidden);
        out.iter_mut().zip(&self.b2).for_each(|(o, b)| *o += b);
        normalise(&mut out);
        out
    }

    /// Item id rows start small and random for items with interactions and at zero for
    /// the rest, which then never move: such items are placed by their content alone.
    fn init(&self, n_users: usize, counts: &[f32], seed: u64, device: &Device) -> candle_core::Result<Params> {
        let d = self.config.dim;
        let n_items = counts.len();
        let mut rng = StdRng::seed_from_u64(seed);
        let scale = (1.0 / d as f64).sqrt();
        let item_ids: Vec<f32> = counts
            .iter()
            .flat_map(|&c| {
                (0..d)
                    .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * 0.1 * f32::from(u8::from(c > 0.0)))
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(Params {
            user_ids: var(&mut rng, (n_users, d), 0.01, device)?,
            history: var(&mut rng, (n_items, d), 0.1, device)?,
            w1: var(&mut rng, (d, d), scale, device)?,
            b1: zeros((1, d), device)?,
            w2: var(&mut rng, (d, d), scale, device)?,
            b2: zeros((1, d), device)?,
            item_ids: Var::from_tensor(&Tensor::from_vec(item_ids, (n_items, d), device)?)?,
            project: match &self.features {
                Some(f) => Some(var(&mut rng, (f.cols, d), (1.0 / f.cols as f64).sqrt(), device)?),
                None => None,
            },
            w_item: var(&mut rng, (d, d), scale, device)?,
            b_item: var(&mut rng, (1, d), 0.1, device)?,
            user_labels: match &self.user_labels {
                Some(sets) => Some(var(&mut rng, (sets.n_labels.max(1), d), 0.1, device)?),
                None => None,
            },
            item_labels: match &self.item_labels {
                Some(sets) => Some(var(&mut rng, (sets.n_labels.max(1), d), 0.1, device)?),
                None => None,
            },
        })
    }

    fn user_tower(&self, p: &Params, batch: &Batch, rows: usize) -> candle_core::Result<Tensor> {
        let mut pooled = Bag::pool(batch.history.as_ref(), p.history.as_tensor(), rows)?;
        if let Some(table) = &p.user_labels {
            pooled = (pooled + Bag::pool(batch.user_labels.as_ref(), table.as_tensor(), rows)?)?;
        }
        let ids = p.user_ids.as_tensor().index_select(&batch.users, 0)?.broadcast_mul(&batch.id_mask.unsqueeze(1)?)?;
        let hidden = (pooled + ids)?.matmul(p.w1.as_tensor())?.broadcast_add(p.b1.as_tensor())?.relu()?;
        normalise_rows(&hidden.matmul(p.w2.as_tensor())?.broadcast_add(p.b2.as_tensor())?)
    }

    fn item_tower(
        &self,
        p: &Params,
        items: &Tensor,
        features: Option<&Tensor>,
        labels: Option<&Bag>,
    ) -> candle_core::Result<Tensor> {
        let mut x = p.item_ids.as_tensor().index_select(items, 0)?;
        if let (Some(project), Some(features)) = (&p.project, features) {
            x = (x + features.index_select(items, 0)?.matmul(project.as_tensor())?)?;
        }
        if let Some(table) = &p.item_labels {
            x = (x + Bag::pool(labels, table.as_tensor(), items.dim(0)?)?)?;
        }
        normalise_rows(&x.matmul(p.w_item.as_tensor())?.broadcast_add(p.b_item.as_tensor())?)
    }

    #[allow(clippy::too_many_arguments)]
    fn batch(
        &self,
        data: &Interactions,
        pairs: &[(u32, u32)],
        log_q: &[f32],
        rng: &mut StdRng,
        device: &Device,
    ) -> candle_core::Result<Batch> {
        let (mut h_items, mut h_rows, mut h_weights) = (Vec::new(), Vec::new(), Vec::new());
        let mut mask = Vec::with_capacity(pairs.len());
        for (row, &(user, item)) in pairs.iter().enumerate() {
            let mut others: Vec<u32> = data.items_of(user).iter().copied().filter(|&i| i != item).collect();
            if rng.random_bool(self.config.history_dropout) {
                others.clear();
            }
            if others.len() > self.config.max_history {
                others.shuffle(rng);
                others.truncate(self.config.max_history);
            }
            let weight = 1.0 / others.len().max(1) as f32;
            for other in others {
                h_items.push(other);
                h_rows.push(row as u32);
                h_weights.push(weight);
            }
            mask.push(if rng.random_bool(self.config.id_dropout) { 0f32 } else { 1.0 });
        }
        // Attributes are hidden at random too (rows past the sets have none), so the tower
        // also serves a user whose attributes are unknown.
        let user_labels = match &self.user_labels {
            Some(sets) => {
                let rows: Vec<usize> = pairs
                    .iter()
                    .map(|p| if rng.random_bool(self.config.id_dropout) { usize::MAX - 1 } else { p.0 as usize })
                    .collect();
                sets.bag(rows.into_iter(), device)?
            }
            None => None,
        };
        let item_labels = match &self.item_labels {
            Some(sets) => sets.bag(pairs.iter().map(|p| p.1 as usize), device)?,
            None => None,
        };
        let users: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let items: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        let q: Vec<f32> = items.iter().map(|&i| log_q[i as usize]).collect();
        let n = pairs.len();
        let duplicates: Vec<f32> =
            (0..n * n).map(|k| if k / n != k % n && items[k / n] == items[k % n] { -1e9 } else { 0.0 }).collect();
        Ok(Batch {
            users: Tensor::from_vec(users, n, device)?,
            id_mask: Tensor::from_vec(mask, n, device)?,
            history: Bag::new(h_items, h_rows, h_weights, device)?,
            user_labels,
            item_labels,
            items: Tensor::from_vec(items, n, device)?,
            log_q: Tensor::from_vec(q, (1, n), device)?,
            duplicates: Tensor::from_vec(duplicates, (n, n), device)?,
        })
    }

    fn train(&mut self, data: &Interactions, seed: u64) -> candle_core::Result<()> {
        let device = Device::Cpu;
        let (n_users, n_items) = (data.n_users() as usize, data.n_items() as usize);
        let mut counts = vec![0f32; n_items];
        (0..data.n_users()).for_each(|u| data.items_of(u).iter().for_each(|&i| counts[i as usize] += 1.0));
        let params = self.init(n_users, &counts, seed, &device)?;
        let features = match &self.features {
            Some(f) => Some(Tensor::from_vec(f.data.clone(), (f.rows, f.cols), &device)?),
            None => None,
        };
        let mut vars = vec![
            params.user_ids.clone(),
            params.history.clone(),
            params.w1.clone(),
            params.b1.clone(),
            params.w2.clone(),
            params.b2.clone(),
            params.item_ids.clone(),
            params.w_item.clone(),
            params.b_item.clone(),
        ];
        vars.extend(params.project.clone());
        vars.extend(params.user_labels.clone());
        vars.extend(params.item_labels.clone());
        let mut optimizer = AdamW::new(
            vars,
            ParamsAdamW { lr: self.config.learning_rate, weight_decay: self.config.weight_decay, ..Default::default() },
        )?;
        let mut pairs: Vec<(u32, u32)> =
            (0..data.n_users()).flat_map(|u| data.items_of(u).iter().map(move |&i| (u, i))).collect();
        let total = pairs.len().max(1) as f32;
        let log_q: Vec<f32> = counts.iter().map(|&c| (c.max(1.0) / total).ln()).collect();
        let mut rng = StdRng::seed_from_u64(seed ^ 0x2_70e7);
        let labels_full: Vec<u32> = (0..self.config.batch as u32).collect();
        for _epoch in 0..self.config.epochs {
            pairs.shuffle(&mut rng);
            for chunk in pairs.chunks(self.config.batch).filter(|c| c.len() > 1) {
                let batch = self.batch(data, chunk, &log_q, &mut rng, &device)?;
                let users = self.user_tower(&params, &batch, chunk.len())?;
                let items = self.item_tower(&params, &batch.items, features.as_ref(), batch.item_labels.as_ref())?;
                let logits = (users.matmul(&items.t()?)? / self.config.temperature)?.broadcast_sub(&batch.log_q)?;
                let logits = (logits + &batch.duplicates)?;
                let labels = Tensor::from_vec(labels_full[..chunk.len()].to_vec(), chunk.len(), &device)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
                optimizer.backward_step(&loss)?;
            }
        }
        let all_items = Tensor::arange(0u32, n_items as u32, &device)?;
        let all_labels = match &self.item_labels {
            Some(sets) => sets.bag(0..n_items, &device)?,
            None => None,
        };
        self.item_vectors =
            Dense::of(&self.item_tower(&params, &all_items, features.as_ref(), all_labels.as_ref())?)?;
        if let Some(table) = &params.user_labels {
            self.user_label_table = Dense::of(table.as_tensor())?;
        }
        self.user_ids = Dense::of(params.user_ids.as_tensor())?;
        self.history = Dense::of(params.history.as_tensor())?;
        self.w1 = Dense::of(params.w1.as_tensor())?;
        self.w2 = Dense::of(params.w2.as_tensor())?;
        self.b1 = params.b1.as_tensor().flatten_all()?.to_vec1()?;
        self.b2 = params.b2.as_tensor().flatten_all()?.to_vec1()?;
        Ok(())
    }

    fn score_vector(&self, user: &[f32], out: &mut [f32]) {
        for (score, item) in out.iter_mut().zip(self.item_vectors.data.chunks_exact(self.config.dim)) {
            *score = dot(user, item);
        }
    }
}

impl Recommender for TwoTower {
    fn name(&self) -> &'static str {
        "two-tower"
    }

    fn fit(&mut self, data: &Interactions, seed: u64) -> Result<(), ModelError> {
        let c = &self.config;
        if c.dim == 0
            || c.batch < 2
            || c.epochs == 0
            || c.temperature.is_nan()
            || c.temperature <= 0.0
            || !(0.0..1.0).contains(&c.id_dropout)
            || !(0.0..1.0).contains(&c.history_dropout)
        {
            return Err(invalid(
                "dim, epochs ≥ 1, batch ≥ 2, temperature > 0 and id_dropout, history_dropout in [0, 1) are required",
            ));
        }
        if let Some(f) = &self.features
            && f.rows != data.n_items() as usize
        {
            return Err(invalid(format!("{} feature rows for {} items", f.rows, data.n_items())));
        }
        self.train(data, seed).map_err(invalid)
    }

    fn score(&self, user: u32, data: &Interactions, out: &mut [f32]) {
        let vector = self.user_vector(Some(user), data.items_of(user), None);
        self.score_vector(&vector, out);
    }

    fn score_history(&self, items: &[u32], out: &mut [f32]) -> bool {
        let vector = self.user_vector(None, items, None);
        self.score_vector(&vector, out);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two taste groups: users 0..20 like items 0..5, users 20..40 like items 5..10;
    /// item 10 has no interactions.
    fn two_groups() -> Interactions {
        let triples = (0..40u32).flat_map(|u| {
            let base = if u < 20 { 0 } else { 5 };
            (0..5u32).filter(move |i| (u + i) % 5 != 0).map(move |i| (u, base + i, 1.0))
        });
        Interactions::from_triples(40, 11, triples)
    }

    fn small() -> TwoTowerConfig {
        TwoTowerConfig { dim: 8, epochs: 150, batch: 16, learning_rate: 0.02, ..TwoTowerConfig::default() }
    }

    fn best_other_group(scores: &[f32], group: std::ops::Range<usize>) -> f32 {
        (0..10).filter(|i| !group.contains(i)).map(|i| scores[i]).fold(f32::MIN, f32::max)
    }

    #[test]
    fn learns_the_groups_for_trained_and_folded_in_users() {
        let data = two_groups();
        let mut model = TwoTower::new(small());
        model.fit(&data, 7).unwrap();
        let mut scores = vec![0.0; 11];
        // User 0 never had item 0 (u + i ≡ 0 mod 5); it must beat the other group.
        model.score(0, &data, &mut scores);
        assert!(scores[0] > best_other_group(&scores, 0..5), "{scores:?}");
        // A history alone (no user id) places a new user in group two.
        assert!(model.score_history(&[6, 7], &mut scores));
        assert!(scores[8] > best_other_group(&scores, 5..10), "{scores:?}");
    }

    #[test]
    fn a_new_item_is_placed_by_its_content() {
        // Content: one feature per group; item 10 (no interactions) looks like group one.
        let mut features = vec![0f32; 11 * 2];
        for item in 0..11 {
            features[item * 2 + usize::from((5..10).contains(&item))] = 1.0;
        }
        let data = two_groups();
        let mut model = TwoTower::new(small()).with_item_features(11, 2, features);
        model.fit(&data, 7).unwrap();
        let mut scores = vec![0.0; 11];
        model.score_history(&[1, 2], &mut scores);
        assert!(scores[10] > best_other_group(&scores, 0..5), "{scores:?}");
    }

    /// Label 0 = group one (users 0..20, items 0..5), label 1 = group two.
    fn group_labels(n: u32, second: std::ops::Range<u32>) -> Vec<Vec<u32>> {
        (0..n).map(|i| vec![u32::from(second.contains(&i))]).collect()
    }

    #[test]
    fn attributes_alone_place_a_user_without_history() {
        // Histories are hidden in 30% of the examples, so the tower learns to read the
        // attributes alone.
        let data = two_groups();
        let config = TwoTowerConfig { history_dropout: 0.3, ..small() };
        let mut model = TwoTower::new(config).with_user_labels(2, &group_labels(40, 20..40));
        model.fit(&data, 7).unwrap();
        let mut scores = vec![0.0; 11];
        for (label, group) in [(0, 0..5), (1, 5..10)] {
            model.score_vector(&model.user_vector(None, &[], Some(&[label])), &mut scores);
            let worst_own = group.clone().map(|i| scores[i]).fold(f32::MAX, f32::min);
            assert!(worst_own > best_other_group(&scores, group), "label {label}: {scores:?}");
        }
    }

    #[test]
    fn a_new_item_is_placed_by_its_categories() {
        // Item 10 has no interactions and group one's category.
        let data = two_groups();
        let mut model = TwoTower::new(small()).with_item_labels(2, &group_labels(11, 5..10));
        model.fit(&data, 7).unwrap();
        let mut scores = vec![0.0; 11];
        model.score_history(&[1, 2], &mut scores);
        assert!(scores[10] > best_other_group(&scores, 0..5), "{scores:?}");
    }

    #[test]
    fn training_is_deterministic() {
        let data = two_groups();
        let fit = || {
            let mut model = TwoTower::new(TwoTowerConfig { epochs: 3, ..small() });
            model.fit(&data, 3).unwrap();
            model.item_vectors().to_vec()
        };
        assert_eq!(fit(), fit());
    }
}
