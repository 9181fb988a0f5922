use crate::{Interactions, ModelError, Recommender};

/// Scores an item by the number of distinct training users who interacted with it: the
/// baseline every other model must beat.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct MostPopular {
    counts: Vec<f32>,
}

impl Recommender for MostPopular {
    fn name(&self) -> &'static str {
        "pop"
    }

    fn fit(&mut self, data: &Interactions, _seed: u64) -> Result<(), ModelError> {
        self.counts = vec![0.0; data.n_items() as usize];
        for user in 0..data.n_users() {
            for &item in data.items_of(user) {
                self.counts[item as usize] += 1.0;
            }
        }
        Ok(())
    }

    fn score(&self, _user: u32, _data: &Interactions, out: &mut [f32]) {
        out.copy_from_slice(&self.counts);
    }
}

/// Uniform random scores, fixed per (seed, user, item): the floor any model must clear.
#[derive(Debug, Default)]
pub struct RandomScores {
    seed: u64,
}

/// SplitMix64: a fast, well-mixed hash of one 64-bit value.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Recommender for RandomScores {
    fn name(&self) -> &'static str {
        "random"
    }

    fn fit(&mut self, _data: &Interactions, seed: u64) -> Result<(), ModelError> {
        self.seed = seed;
        Ok(())
    }

    fn score(&self, user: u32, _data: &Interactions, out: &mut [f32]) {
        let base = splitmix(self.seed ^ (u64::from(user) << 32));
        for (item, score) in out.iter_mut().enumerate() {
            *score = (splitmix(base ^ item as u64) >> 40) as f32 / (1u64 << 24) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn popularity_counts_distinct_users() {
        let data = Interactions::from_triples(3, 3, [(0, 1, 5.0), (0, 1, 1.0), (1, 1, 1.0), (2, 2, 1.0)]);
        let mut model = MostPopular::default();
        model.fit(&data, 0).unwrap();
        let mut out = vec![0.0; 3];
        model.score(0, &data, &mut out);
        assert_eq!(out, [0.0, 2.0, 1.0]);
    }

    #[test]
    fn random_scores_are_fixed_by_seed_and_differ_by_user() {
        let data = Interactions::from_triples(2, 50, []);
        let mut model = RandomScores::default();
        model.fit(&data, 7).unwrap();
        let (mut a, mut b, mut c) = (vec![0.0; 50], vec![0.0; 50], vec![0.0; 50]);
        model.score(0, &data, &mut a);
        model.score(0, &data, &mut b);
        model.score(1, &data, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|s| (0.0..1.0).contains(s)));
    }
}
