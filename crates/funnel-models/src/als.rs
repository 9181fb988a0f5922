//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008) with the conjugate-gradient solver
//! of Takács et al. (2011): each user (then item) vector solves
//! (YᵀY + Yᵀ(Cᵤ − I)Y + λI) xᵤ = YᵀCᵤpᵤ with a few CG steps from its previous value,
//! where cᵤᵢ = 1 + α·wᵤᵢ for observed pairs. Rows are solved in parallel.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::linalg::{axpy, dot, gram, symv};
use crate::{Interactions, ModelError, Recommender};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlsConfig {
    pub factors: usize,
    pub regularization: f32,
    /// Confidence slope: c = 1 + alpha · w.
    pub alpha: f32,
    pub iterations: usize,
    pub cg_steps: usize,
    /// Use interaction values as w (else every observed pair has w = 1).
    pub use_values: bool,
}

impl Default for AlsConfig {
    fn default() -> Self {
        Self { factors: 64, regularization: 0.05, alpha: 2.0, iterations: 15, cg_steps: 3, use_values: false }
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Als {
    pub config: AlsConfig,
    user_factors: Vec<f32>,
    item_factors: Vec<f32>,
    /// YᵀY + λI of the trained item factors, kept for folding users in.
    item_gram: Vec<f32>,
}

impl Als {
    pub fn new(config: AlsConfig) -> Self {
        Self { config, ..Self::default() }
    }

    pub fn item_factors(&self) -> &[f32] {
        &self.item_factors
    }

    pub fn user_factors(&self) -> &[f32] {
        &self.user_factors
    }

    /// A vector for a user from their items alone (a new user, or fresh events), solved
    /// against the trained item factors without retraining anything.
    pub fn fold_in(&self, items: &[u32], weights: &[f32]) -> Vec<f32> {
        let f = self.config.factors;
        let mut x = vec![0f32; f];
        let rows = Rows { items, weights, others: &self.item_factors };
        let (alpha, steps) = (self.config.alpha, f.max(self.config.cg_steps));
        let scratch = &mut Scratch::default();
        pulp::Arch::new().dispatch(SolveRow { yty: &self.item_gram, rows, x: &mut x, alpha, steps, scratch });
        x
    }

    fn weight(&self, value: f32) -> f32 {
        if self.config.use_values { value } else { 1.0 }
    }
}

/// One row's observations: indices into `others` (the fixed factors) and weights.
struct Rows<'a> {
    items: &'a [u32],
    weights: &'a [f32],
    others: &'a [f32],
}

/// CG work vectors of one row, reused across the rows a thread solves.
#[derive(Default)]
struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
}

/// [`solve_row`] compiled for the CPU's widest SIMD: `pulp` runs `with_simd` inside a
/// function built with those target features, and everything below it is inlined.
struct SolveRow<'a> {
    yty: &'a [f32],
    rows: Rows<'a>,
    x: &'a mut [f32],
    alpha: f32,
    steps: usize,
    scratch: &'a mut Scratch,
}

impl pulp::WithSimd for SolveRow<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        solve_row(self.yty, &self.rows, self.x, self.alpha, self.steps, self.scratch);
    }
}

/// A few CG steps on one row's normal equations, starting from `x`.
#[inline(always)]
fn solve_row(yty: &[f32], rows: &Rows<'_>, x: &mut [f32], alpha: f32, steps: usize, scratch: &mut Scratch) {
    let f = x.len();
    let factor = |i: u32| &rows.others[i as usize * f..(i as usize + 1) * f];
    let Scratch { r, p, ap } = scratch;
    r.resize(f, 0.0);
    p.resize(f, 0.0);
    ap.resize(f, 0.0);
    // r = b − A x = Σ cᵢ yᵢ − YtY x − Σ (cᵢ − 1)(yᵢ·x) yᵢ
    symv(yty, x, r);
    r.iter_mut().for_each(|v| *v = -*v);
    for (&i, &w) in rows.items.iter().zip(rows.weights) {
        let y = factor(i);
        let confidence = 1.0 + alpha * w;
        axpy(confidence - (confidence - 1.0) * dot(y, x), y, r);
    }
    p.copy_from_slice(r);
    let mut rs_old = dot(r, r);
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        symv(yty, p, ap);
        for (&i, &w) in rows.items.iter().zip(rows.weights) {
            let y = factor(i);
            axpy(alpha * w * dot(y, p), y, ap);
        }
        let step = rs_old / dot(p, ap);
        axpy(step, p, x);
        axpy(-step, ap, r);
        let rs_new = dot(r, r);
        for (pi, ri) in p.iter_mut().zip(r.iter()) {
            *pi = ri + (rs_new / rs_old) * *pi;
        }
        rs_old = rs_new;
    }
}

/// Solves every row of `target` against the fixed `others` factors.
fn solve_all(target: &mut [f32], others: &[f32], data: &Interactions, weights: &[Vec<f32>], config: &AlsConfig) {
    let f = config.factors;
    let yty = gram(others, f, config.regularization);
    let arch = pulp::Arch::new();
    target.par_chunks_mut(f).enumerate().for_each_init(Scratch::default, |scratch, (row, x)| {
        let rows = Rows { items: data.items_of(row as u32), weights: &weights[row], others };
        arch.dispatch(SolveRow { yty: &yty, rows, x, alpha: config.alpha, steps: config.cg_steps, scratch });
    });
}

fn random_factors(n: usize, f: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..n * f).map(|_| rng.random::<f32>() * 0.01).collect()
}

impl Recommender for Als {
    fn name(&self) -> &'static str {
        "als"
    }

    fn fit(&mut self, data: &Interactions, seed: u64) -> Result<(), ModelError> {
        let config = self.config.clone();
        if config.factors == 0 || config.regularization < 0.0 || config.alpha < 0.0 {
            return Err(ModelError::Invalid {
                model: "als",
                reason: "factors ≥ 1, regularization ≥ 0, alpha ≥ 0".into(),
            });
        }
        let f = config.factors;
        let transposed = data.transpose();
        let user_weights: Vec<Vec<f32>> =
            (0..data.n_users()).map(|u| data.values_of(u).iter().map(|&v| self.weight(v)).collect()).collect();
        let item_weights: Vec<Vec<f32>> = (0..transposed.n_users())
            .map(|i| transposed.values_of(i).iter().map(|&v| self.weight(v)).collect())
            .collect();
        let mut rng = StdRng::seed_from_u64(seed);
        self.user_factors = random_factors(data.n_users() as usize, f, &mut rng);
        self.item_factors = random_factors(data.n_items() as usize, f, &mut rng);
        for _ in 0..config.iterations {
            solve_all(&mut self.user_factors, &self.item_factors, data, &user_weights, &config);
            solve_all(&mut self.item_factors, &self.user_factors, &transposed, &item_weights, &config);
        }
        self.item_gram = gram(&self.item_factors, f, config.regularization);
        Ok(())
    }

    fn score(&self, user: u32, _data: &Interactions, out: &mut [f32]) {
        let f = self.config.factors;
        let x = &self.user_factors[user as usize * f..(user as usize + 1) * f];
        for (score, y) in out.iter_mut().zip(self.item_factors.chunks_exact(f)) {
            *score = dot(x, y);
        }
    }

    fn score_history(&self, items: &[u32], out: &mut [f32]) -> bool {
        let x = self.fold_in(items, &vec![1.0; items.len()]);
        for (score, y) in out.iter_mut().zip(self.item_factors.chunks_exact(self.config.factors)) {
            *score = dot(&x, y);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two taste groups: users 0..10 like items 0..5, users 10..20 like items 5..10.
    fn two_groups() -> Interactions {
        let triples = (0..20u32).flat_map(|u| {
            let base = if u < 10 { 0 } else { 5 };
            (0..5u32).filter(move |i| (u + i) % 5 != 0).map(move |i| (u, base + i, 1.0))
        });
        Interactions::from_triples(20, 10, triples)
    }

    #[test]
    fn als_ranks_the_held_out_item_of_the_users_group_first() {
        let data = two_groups();
        let mut model = Als::new(AlsConfig { factors: 4, iterations: 10, ..AlsConfig::default() });
        model.fit(&data, 7).unwrap();
        let mut scores = vec![0.0; 10];
        // User 0 skipped item 0 (u + i ≡ 0 mod 5); it must beat every item of the other group.
        model.score(0, &data, &mut scores);
        assert!(scores[..5].iter().all(|&s| s > scores[5..].iter().copied().fold(f32::MIN, f32::max)), "{scores:?}");
        // Folding in a new user with items of group two scores group two higher.
        let x = model.fold_in(&[6, 7], &[1.0, 1.0]);
        let item = |i: usize| &model.item_factors()[i * 4..(i + 1) * 4];
        assert!(dot(&x, item(8)) > dot(&x, item(2)));
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let data = two_groups();
        let mut a = Als::new(AlsConfig { factors: 4, iterations: 3, ..AlsConfig::default() });
        let mut b = Als::new(AlsConfig { factors: 4, iterations: 3, ..AlsConfig::default() });
        a.fit(&data, 1).unwrap();
        b.fit(&data, 1).unwrap();
        assert_eq!(a.item_factors(), b.item_factors());
    }
}
