//! Closed-loop simulation: a policy (one of Funnel's surfaces) serves every simulated
//! user a slate each round, the users react, the reactions join the log, and the next
//! round is served from a snapshot retrained on it. This is where feedback loops show:
//! a greedy policy learns only from what it chose to show, so exposure concentrates on
//! a few items; exploration and popularity penalties spread it, at some cost in clicks.

use std::collections::HashMap;
use std::sync::Arc;

use funnel_core::Record;
use funnel_engine::{Engine, EngineConfig, EngineError, Request, SourceConfig, SurfaceConfig, snapshot_in_memory};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::{Shown, SimConfig, World};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// The world; `sessions_per_user` random-policy sessions per user make the warm-up
    /// log, `slate_size` is the slate each round serves.
    pub world: SimConfig,
    pub rounds: usize,
    /// Standard deviation of each item's quality step per round (see [`World::drift`]).
    pub drift: f64,
    /// Training settings and any surfaces the policies name.
    pub engine: EngineConfig,
}

/// A policy: a name and the surface that serves it.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub surface: SurfaceConfig,
}

/// The policies `funnel simulate` knows without configuration: the default `home`
/// surface plus the `unexplored` source (quota 100, weight 0.05: items nobody has
/// interacted with, which only an exploring stage will show), changed in one stage.
pub const BUILTIN: &[&str] =
    &["greedy", "epsilon-greedy", "bandit-greedy", "thompson", "linucb", "popularity-penalty", "diversity"];

impl Policy {
    /// A built-in policy over the `base` surface; `None` for an unknown name.
    pub fn builtin(name: &str, base: &SurfaceConfig) -> Option<Self> {
        let mut surface = base.clone();
        if !surface.sources.iter().any(|s| s.name == "unexplored") {
            surface.sources.push(SourceConfig { name: "unexplored".into(), quota: 100, weight: 0.05 });
        }
        let mut add_rule = |rule: &str| {
            if !surface.rules.iter().any(|r| r == rule) {
                // Score-sorting rules go before the ones that only reorder.
                let orderers = ["diversity", "category-cap"];
                let first_orderer = surface.rules.iter().position(|r| orderers.contains(&r.as_str()));
                let at = match orderers.contains(&rule) {
                    true => surface.rules.len(),
                    false => first_orderer.unwrap_or(surface.rules.len()),
                };
                surface.rules.insert(at, rule.to_owned());
            }
        };
        match name {
            "greedy" => surface.exploration = "none".into(),
            "epsilon-greedy" | "bandit-greedy" | "thompson" | "linucb" => surface.exploration = name.into(),
            "popularity-penalty" => add_rule("popularity"),
            "diversity" => add_rule("diversity"),
            _ => return None,
        }
        Some(Self { name: name.to_owned(), surface })
    }
}

/// One round's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct RoundMetrics {
    pub round: usize,
    pub impressions: u64,
    pub clicks: u64,
    /// Clicks per impression, as the simulated users clicked.
    pub ctr: f64,
    /// The same without the users' coin flips: the mean over impressions of P(examined)
    /// × P(click | examined) under the world's truth.
    pub expected_ctr: f64,
    /// Share of the catalog shown to anyone this round, and in any round so far.
    pub coverage: f64,
    pub cumulative_coverage: f64,
    /// Gini coefficient of impressions over the whole catalog this round: 0 when every
    /// item is shown equally often, towards 1 when a few items take all exposure.
    pub exposure_gini: f64,
}

/// The long run: means over the second half of the rounds (the short run: the first half).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub ctr: f64,
    /// CTR over the first half of the rounds: where exploration's cost shows.
    pub early_ctr: f64,
    pub expected_ctr: f64,
    pub exposure_gini: f64,
    /// Coverage after the last round.
    pub cumulative_coverage: f64,
    pub clicks: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyRun {
    pub name: String,
    pub exploration: String,
    pub rules: Vec<String>,
    pub rounds: Vec<RoundMetrics>,
    pub summary: Summary,
}

/// Gini coefficient of non-negative counts (0 for all-equal or all-zero counts).
pub fn gini(counts: &[u64]) -> f64 {
    let total: f64 = counts.iter().map(|&c| c as f64).sum();
    if counts.is_empty() || total == 0.0 {
        return 0.0;
    }
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    let n = sorted.len() as f64;
    let weighted: f64 = sorted.iter().enumerate().map(|(i, &c)| (2.0 * (i as f64 + 1.0) - n - 1.0) * c as f64).sum();
    weighted / (n * total)
}

/// A seed per (stream, round, user), so every policy meets the same users' coin flips.
fn seed_of(seed: u64, stream: u64, round: usize, user: usize) -> u64 {
    let mut x = seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((round as u64) << 32) ^ user as u64;
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Runs `policy` for `config.rounds` rounds from the warm-up log; `progress` hears of
/// each finished round.
pub fn run(config: &LoopConfig, policy: &Policy, progress: &mut dyn FnMut(usize)) -> Result<PolicyRun, EngineError> {
    let mut engine_config = config.engine.clone();
    engine_config.surfaces.insert(policy.name.clone(), policy.surface.clone());
    engine_config.validate()?;
    let mut world = World::new(config.world.clone());
    let index: HashMap<String, usize> = world.items.iter().enumerate().map(|(i, s)| (s.item.id.clone(), i)).collect();
    let mut log: Vec<Record> = world.items.iter().map(|s| Record::Item(s.item.clone())).collect();
    log.extend(world.users.iter().map(|s| Record::User(s.user.clone())));
    log.extend(world.history().into_iter().map(Record::Event));
    let seed = config.world.seed;
    let mut drift = StdRng::seed_from_u64(seed_of(seed, 3, 0, 0));
    let mut now = config.world.start + i64::from(config.world.days) * 86_400;
    let mut ever_shown = vec![false; world.items.len()];
    let mut rounds = Vec::with_capacity(config.rounds);
    for round in 0..config.rounds {
        let snapshot = snapshot_in_memory(log.iter().cloned(), &engine_config, Some(now))?;
        let engine = Engine::new(Arc::new(snapshot), &engine_config)?;
        let mut shown = vec![0u64; world.items.len()];
        let (mut clicks, mut expected) = (0u64, 0f64);
        for user in 0..world.users.len() {
            let request = Request {
                surface: policy.name.clone(),
                user: Some(world.users[user].user.id.clone()),
                k: config.world.slate_size,
                now: Some(now),
                seed: seed_of(seed, 1, round, user),
                ..Request::default()
            };
            let response = engine.run(&request)?;
            let slate: Vec<usize> = response.items.iter().filter_map(|i| index.get(&i.id).copied()).collect();
            let propensities: Vec<f64> = response.items.iter().map(|i| f64::from(i.propensity)).collect();
            let reactions = world.react(user, &slate, &mut StdRng::seed_from_u64(seed_of(seed, 2, round, user)));
            for (slot, &item) in slate.iter().enumerate() {
                shown[item] += 1;
                ever_shown[item] = true;
                let examined = (slot as f64 + 1.0).powf(-world.config.position_decay);
                expected += examined * world.click_probability(user, item);
            }
            clicks += reactions.iter().filter(|r| r.clicked).count() as u64;
            // Spread over the round's day, before the next round's snapshot.
            let at = Shown {
                user,
                at: now + (user as i64 * 86_000) / world.users.len() as i64,
                request_id: format!("{}-{round}-{user}", policy.name),
                surface: &policy.name,
            };
            log.extend(world.events(&at, &slate, &propensities, &reactions).into_iter().map(Record::Event));
        }
        let impressions: u64 = shown.iter().sum();
        let catalog = world.items.len().max(1) as f64;
        rounds.push(RoundMetrics {
            round,
            impressions,
            clicks,
            ctr: clicks as f64 / impressions.max(1) as f64,
            expected_ctr: expected / impressions.max(1) as f64,
            coverage: shown.iter().filter(|&&n| n > 0).count() as f64 / catalog,
            cumulative_coverage: ever_shown.iter().filter(|&&s| s).count() as f64 / catalog,
            exposure_gini: gini(&shown),
        });
        world.drift(config.drift, &mut drift);
        now += 86_400;
        progress(round + 1);
    }
    let summary = summarise(&rounds);
    Ok(PolicyRun {
        name: policy.name.clone(),
        exploration: policy.surface.exploration.clone(),
        rules: policy.surface.rules.clone(),
        rounds,
        summary,
    })
}

fn summarise(rounds: &[RoundMetrics]) -> Summary {
    let (early, late) = rounds.split_at(rounds.len() / 2);
    let mean = |rounds: &[RoundMetrics], f: fn(&RoundMetrics) -> f64| {
        rounds.iter().map(f).sum::<f64>() / rounds.len().max(1) as f64
    };
    Summary {
        ctr: mean(late, |r| r.ctr),
        early_ctr: if early.is_empty() { f64::NAN } else { mean(early, |r| r.ctr) },
        expected_ctr: mean(late, |r| r.expected_ctr),
        exposure_gini: mean(late, |r| r.exposure_gini),
        cumulative_coverage: rounds.last().map_or(0.0, |r| r.cumulative_coverage),
        clicks: rounds.iter().map(|r| r.clicks).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_is_zero_for_equal_exposure_and_grows_with_concentration() {
        assert_eq!(gini(&[3, 3, 3, 3]), 0.0);
        assert_eq!(gini(&[0, 0, 0, 0]), 0.0);
        assert!((gini(&[0, 0, 0, 4]) - 0.75).abs() < 1e-12);
        assert!(gini(&[1, 2, 3, 10]) > gini(&[2, 3, 4, 5]));
    }

    fn small(rounds: usize) -> LoopConfig {
        let world = SimConfig { items: 120, users: 60, sessions_per_user: 2, slate_size: 5, ..SimConfig::default() };
        let mut engine = EngineConfig::default();
        engine.train.cf_model = "item-knn".into();
        LoopConfig { world, rounds, drift: 0.05, engine }
    }

    #[test]
    fn exploration_spreads_exposure_that_a_greedy_policy_concentrates() {
        let config = small(6);
        let base = config.engine.surfaces["home"].clone();
        let play = |name: &str| run(&config, &Policy::builtin(name, &base).unwrap(), &mut |_| {}).unwrap();
        let greedy = play("greedy");
        let explore = play("epsilon-greedy");
        let thompson = play("thompson");
        let linucb = play("linucb");
        assert_eq!(greedy.rounds.len(), 6);
        assert!(greedy.rounds.iter().all(|r| r.impressions == 60 * 5), "{:?}", greedy.rounds);
        // LinUCB is deterministic per segment: in a world this small its optimism does not
        // reliably widen coverage, so it is only played here.
        assert!(linucb.rounds.iter().all(|r| r.impressions == 60 * 5));
        for other in [&explore, &thompson] {
            assert!(
                other.summary.cumulative_coverage > greedy.summary.cumulative_coverage,
                "{}: {:?} vs greedy {:?}",
                other.name,
                other.summary,
                greedy.summary
            );
        }
        assert!(
            explore.summary.exposure_gini < greedy.summary.exposure_gini,
            "{:?} {:?}",
            explore.summary,
            greedy.summary
        );
        // The same seed replays the same run.
        let again = play("thompson");
        let curve = |run: &PolicyRun| run.rounds.iter().map(|r| (r.clicks, r.exposure_gini)).collect::<Vec<_>>();
        assert_eq!(curve(&again), curve(&thompson));
    }

    #[test]
    fn a_policy_the_engine_rejects_is_an_error() {
        let config = small(1);
        let mut surface = config.engine.surfaces["home"].clone();
        surface.exploration = "coin-toss".into();
        let error = run(&config, &Policy { name: "odd".into(), surface }, &mut |_| {}).unwrap_err();
        assert!(error.to_string().contains("exploration"), "{error}");
    }
}
