//! Bayesian Personalised Ranking (Rendle et al. 2009): SGD on ln σ(x̂ᵤᵢ − x̂ᵤⱼ) for an
//! observed item i and a uniformly sampled unobserved item j, with an item bias.
//! Sequential and seeded, so training is reproducible.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::linalg::dot;
use crate::{Interactions, ModelError, Recommender};

#[derive(Debug, Clone, PartialEq)]
pub struct BprConfig {
    pub factors: usize,
    pub learning_rate: f32,
    pub regularization: f32,
    /// Passes; each draws as many (user, positive, negative) triples as there are pairs.
    pub iterations: usize,
}

impl Default for BprConfig {
    fn default() -> Self {
        Self { factors: 64, learning_rate: 0.05, regularization: 0.01, iterations: 60 }
    }
}

#[derive(Debug, Default)]
pub struct Bpr {
    pub config: BprConfig,
    user_factors: Vec<f32>,
    item_factors: Vec<f32>,
    item_bias: Vec<f32>,
}

impl Bpr {
    pub fn new(config: BprConfig) -> Self {
        Self { config, ..Self::default() }
    }
}

impl Recommender for Bpr {
    fn name(&self) -> &'static str {
        "bpr"
    }

    fn fit(&mut self, data: &Interactions, seed: u64) -> Result<(), ModelError> {
        let BprConfig { factors: f, learning_rate: lr, regularization: reg, iterations } = self.config;
        if f == 0 || lr <= 0.0 || reg < 0.0 {
            return Err(ModelError::Invalid {
                model: "bpr",
                reason: "factors ≥ 1, learning_rate > 0, regularization ≥ 0".into(),
            });
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let (n_users, n_items) = (data.n_users() as usize, data.n_items() as usize);
        self.user_factors = (0..n_users * f).map(|_| (rng.random::<f32>() - 0.5) / f as f32).collect();
        self.item_factors = (0..n_items * f).map(|_| (rng.random::<f32>() - 0.5) / f as f32).collect();
        self.item_bias = vec![0.0; n_items];
        let pairs: Vec<(u32, u32)> =
            (0..data.n_users()).flat_map(|u| data.items_of(u).iter().map(move |&i| (u, i))).collect();
        if pairs.is_empty() || n_items < 2 {
            return Ok(());
        }
        let (mut p_u, mut grad_i) = (vec![0f32; f], vec![0f32; f]);
        for _ in 0..iterations {
            for _ in 0..pairs.len() {
                let (u, i) = pairs[rng.random_range(0..pairs.len())];
                let j = rng.random_range(0..n_items as u32);
                if data.contains(u, j) {
                    continue;
                }
                let (u, i, j) = (u as usize, i as usize, j as usize);
                p_u.copy_from_slice(&self.user_factors[u * f..(u + 1) * f]);
                let (q_i, q_j) = (&self.item_factors[i * f..(i + 1) * f], &self.item_factors[j * f..(j + 1) * f]);
                let x = dot(&p_u, q_i) - dot(&p_u, q_j) + self.item_bias[i] - self.item_bias[j];
                let z = 1.0 / (1.0 + x.exp()); // σ(−x): the gradient weight
                for d in 0..f {
                    grad_i[d] = q_i[d] - q_j[d];
                }
                for d in 0..f {
                    self.user_factors[u * f + d] += lr * (z * grad_i[d] - reg * p_u[d]);
                    self.item_factors[i * f + d] += lr * (z * p_u[d] - reg * self.item_factors[i * f + d]);
                    self.item_factors[j * f + d] += lr * (-z * p_u[d] - reg * self.item_factors[j * f + d]);
                }
                self.item_bias[i] += lr * (z - reg * self.item_bias[i]);
                self.item_bias[j] += lr * (-z - reg * self.item_bias[j]);
            }
        }
        Ok(())
    }

    fn score(&self, user: u32, _data: &Interactions, out: &mut [f32]) {
        let f = self.config.factors;
        let x = &self.user_factors[user as usize * f..(user as usize + 1) * f];
        for ((score, y), b) in out.iter_mut().zip(self.item_factors.chunks_exact(f)).zip(&self.item_bias) {
            *score = dot(x, y) + b;
        }
    }
}
