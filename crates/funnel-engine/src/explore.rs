//! Exploration policies: the last stage, which picks the slate and records with what
//! probability each item landed in its position.

use funnel_core::Candidate;
use rand::Rng;
use rand::rngs::StdRng;

use crate::config::RerankConfig;
use crate::{ExplorationPolicy, RequestContext};

pub(crate) fn by_name(name: &str, config: &RerankConfig) -> Box<dyn ExplorationPolicy> {
    match name {
        "none" => Box::new(Greedy),
        "epsilon-greedy" => Box::new(EpsilonGreedy { epsilon: f64::from(config.epsilon) }),
        other => unreachable!("config validation admits only known policies, got {other}"),
    }
}

/// No exploration: the top `k`, each shown with probability 1.
struct Greedy;

impl ExplorationPolicy for Greedy {
    fn name(&self) -> &'static str {
        "none"
    }

    fn choose(
        &self,
        _ctx: &RequestContext<'_>,
        mut ranked: Vec<Candidate>,
        k: usize,
        _rng: &mut StdRng,
    ) -> Vec<Candidate> {
        ranked.truncate(k);
        for candidate in &mut ranked {
            candidate.propensity = 1.0;
        }
        ranked
    }
}

/// ε-greedy over the ranked list, slot by slot: with probability 1 − ε the best remaining
/// candidate, with probability ε a uniformly random remaining one. Each item's propensity
/// is the probability that it took its slot given the slots above it:
/// (1 − ε)·[it was the best remaining] + ε / (candidates remaining). That is the factor a
/// slate-level estimator multiplies; it is not the marginal P(item at position) that
/// position-wise estimates (such as the Open Bandit Dataset's propensity_score) divide by,
/// except at the first slot.
struct EpsilonGreedy {
    epsilon: f64,
}

impl ExplorationPolicy for EpsilonGreedy {
    fn name(&self) -> &'static str {
        "epsilon-greedy"
    }

    fn choose(
        &self,
        _ctx: &RequestContext<'_>,
        mut ranked: Vec<Candidate>,
        k: usize,
        rng: &mut StdRng,
    ) -> Vec<Candidate> {
        let mut slate = Vec::with_capacity(k.min(ranked.len()));
        while slate.len() < k && !ranked.is_empty() {
            let remaining = ranked.len();
            let pick = if rng.random_bool(self.epsilon) { rng.random_range(0..remaining) } else { 0 };
            let mut candidate = ranked.remove(pick);
            let uniform = self.epsilon / remaining as f64;
            candidate.propensity = (if pick == 0 { 1.0 - self.epsilon + uniform } else { uniform }) as f32;
            slate.push(candidate);
        }
        slate
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn epsilon_greedy_logs_the_probability_of_each_slot() {
        let policy = EpsilonGreedy { epsilon: 0.3 };
        let ranked: Vec<Candidate> = (0..5).map(|i| Candidate::new(i, "test", 1.0 - i as f32 / 10.0)).collect();
        let snapshot = crate::train::snapshot_of(Vec::new());
        let request = crate::Request::default();
        let ctx = crate::train::context(&snapshot, &request);
        // The first slot: item 0 with 0.7 + 0.3/5, any other with 0.3/5; over many seeds
        // the frequencies match the logged propensities.
        let mut first = [0usize; 5];
        let runs = 20_000;
        for seed in 0..runs {
            let slate = policy.choose(&ctx, ranked.clone(), 2, &mut StdRng::seed_from_u64(seed));
            assert_eq!(slate.len(), 2);
            let expected = if slate[0].item == 0 { 0.76 } else { 0.06 };
            assert!((f64::from(slate[0].propensity) - expected).abs() < 1e-6, "{slate:?}");
            let best_left = if slate[0].item == 0 { 1 } else { 0 };
            let expected = if slate[1].item == best_left { 0.7 + 0.3 / 4.0 } else { 0.3 / 4.0 };
            assert!((f64::from(slate[1].propensity) - expected).abs() < 1e-6, "{slate:?}");
            first[slate[0].item as usize] += 1;
        }
        for (item, count) in first.iter().enumerate() {
            let expected = if item == 0 { 0.76 } else { 0.06 };
            assert!((*count as f64 / runs as f64 - expected).abs() < 0.01, "item {item}: {count}");
        }
        let greedy = EpsilonGreedy { epsilon: 0.0 }.choose(&ctx, ranked, 3, &mut StdRng::seed_from_u64(1));
        assert_eq!(greedy.iter().map(|c| (c.item, c.propensity)).collect::<Vec<_>>(), [(0, 1.0), (1, 1.0), (2, 1.0)]);
    }
}
