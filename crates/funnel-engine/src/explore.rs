//! Exploration policies: the last stage, which picks the slate and records with what
//! probability each item landed in its position.

use funnel_core::Candidate;
use rand::rngs::StdRng;

use crate::{ExplorationPolicy, RequestContext};

pub(crate) fn by_name(name: &str) -> Box<dyn ExplorationPolicy> {
    match name {
        "none" => Box::new(Greedy),
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
