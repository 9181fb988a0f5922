//! EASE (Steck 2019): a closed-form item-item model for catalogs whose item × item matrix
//! fits in memory. With G = XᵀX + λI and P = G⁻¹, the weights are B = I − P·diag(1/Pⱼⱼ)
//! (so Bᵢⱼ = −Pᵢⱼ / Pⱼⱼ and Bⱼⱼ = 0); a user's scores are xᵤB.

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};

use crate::{Interactions, ModelError, Recommender};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EaseConfig {
    pub lambda: f64,
    /// Refuse catalogs above this many items (the dense matrices grow with its square).
    pub max_items: usize,
}

impl Default for EaseConfig {
    fn default() -> Self {
        Self { lambda: 500.0, max_items: 30_000 }
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Ease {
    pub config: EaseConfig,
    n_items: usize,
    /// Row-major n × n weights.
    weights: Vec<f32>,
}

impl Ease {
    pub fn new(config: EaseConfig) -> Self {
        Self { config, ..Self::default() }
    }
}

impl Recommender for Ease {
    fn name(&self) -> &'static str {
        "ease"
    }

    fn fit(&mut self, data: &Interactions, _seed: u64) -> Result<(), ModelError> {
        let n = data.n_items() as usize;
        if n > self.config.max_items {
            return Err(ModelError::Invalid {
                model: "ease",
                reason: format!(
                    "{n} items is above max_items {} (it needs two dense {n}×{n} matrices)",
                    self.config.max_items
                ),
            });
        }
        if self.config.lambda <= 0.0 {
            return Err(ModelError::Invalid { model: "ease", reason: "lambda must be > 0".into() });
        }
        let mut gram = Mat::<f64>::zeros(n, n);
        for user in 0..data.n_users() {
            let items = data.items_of(user);
            for &a in items {
                for &b in items {
                    gram[(a as usize, b as usize)] += 1.0;
                }
            }
        }
        for d in 0..n {
            gram[(d, d)] += self.config.lambda;
        }
        let inverse = gram
            .llt(Side::Lower)
            .map_err(|e| ModelError::Invalid {
                model: "ease",
                reason: format!("XᵀX + λI is not positive definite: {e:?}"),
            })?
            .inverse();
        drop(gram);
        self.n_items = n;
        self.weights = vec![0f32; n * n];
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    self.weights[i * n + j] = (-inverse[(i, j)] / inverse[(j, j)]) as f32;
                }
            }
        }
        Ok(())
    }

    fn score(&self, user: u32, data: &Interactions, out: &mut [f32]) {
        self.score_history(data.items_of(user), out);
    }

    fn score_history(&self, items: &[u32], out: &mut [f32]) -> bool {
        out.fill(0.0);
        let n = self.n_items;
        for &i in items {
            crate::linalg::axpy(1.0, &self.weights[i as usize * n..(i as usize + 1) * n], out);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_closed_form_on_a_tiny_matrix() {
        // Two users: {0, 1} and {1, 2}. G = [[1,1,0],[1,2,1],[0,1,1]] + λI.
        let data = Interactions::from_triples(2, 3, [(0, 0, 1.0), (0, 1, 1.0), (1, 1, 1.0), (1, 2, 1.0)]);
        let mut model = Ease::new(EaseConfig { lambda: 1.0, ..EaseConfig::default() });
        model.fit(&data, 0).unwrap();
        // G = [[2,1,0],[1,3,1],[0,1,2]]; det = 8; P = adj/det:
        // P00 = 5/8, P01 = -2/8, P11 = 4/8, P12 = -2/8, P02 = 1/8, P22 = 5/8.
        let b = |i: usize, j: usize| model.weights[i * 3 + j];
        assert!((b(0, 1) - 0.5).abs() < 1e-6, "{}", b(0, 1)); // −P01/P11 = (2/8)/(4/8)
        assert!((b(1, 0) - 0.4).abs() < 1e-6); // −P10/P00 = (2/8)/(5/8)
        assert!((b(0, 2) + 0.2).abs() < 1e-6); // −P02/P22 = −(1/8)/(5/8)
        assert_eq!(b(1, 1), 0.0);
        let mut scores = vec![0.0; 3];
        model.score(0, &data, &mut scores);
        assert!(scores[2] > 0.0, "item 2 is reached through item 1: {scores:?}");
    }

    #[test]
    fn oversized_catalogs_are_refused() {
        let data = Interactions::from_triples(1, 10, [(0, 0, 1.0)]);
        let mut model = Ease::new(EaseConfig { max_items: 5, ..EaseConfig::default() });
        assert!(model.fit(&data, 0).unwrap_err().to_string().contains("max_items"));
    }
}
