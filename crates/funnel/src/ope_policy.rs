//! `funnel eval ope --policy NAME`: the action distribution of one of Funnel's own
//! exploration policies over a bandit dataset's items, measured by serving it.
//!
//! The logs become a store (one item per `item_id`, an impression per round and a click
//! where it was clicked, all by one anonymous visitor at one instant: the policies read
//! no context and no time here), a snapshot is trained from them, and the engine serves
//! `samples` slates of the logs' length from a surface of the `popular` and `unexplored`
//! sources (so every item is a candidate) with the named exploration stage. How often each
//! item landed at each position is the policy's probability of showing it there.

use std::sync::Arc;

use anyhow::{Context, bail};
use funnel_core::{Event, EventContext, EventKind, Item, Record};
use funnel_engine::{Engine, EngineConfig, Request, snapshot_in_memory};
use funnel_eval::ope::{ActionDist, Logs};
use serde::Serialize;

const POLICIES: &[&str] = &["thompson", "bandit-greedy", "epsilon-greedy", "none"];

#[derive(Debug, Clone, Serialize)]
pub struct PolicyAbout {
    pub name: String,
    pub trained_on: String,
    pub training_rounds: usize,
    /// Trained on the very logs it is evaluated on.
    pub in_sample: bool,
    pub samples: usize,
}

pub fn action_dist(
    name: &str,
    logs: &Logs,
    trained_on: &Logs,
    samples: usize,
) -> anyhow::Result<(ActionDist, PolicyAbout)> {
    if !POLICIES.contains(&name) {
        bail!("--policy: unknown policy `{name}` (one of {})", POLICIES.join(", "));
    }
    if !(100..=10_000_000).contains(&samples) {
        bail!("--policy-samples must be between 100 and 10000000");
    }
    if !(1..=100_000).contains(&logs.n_items) {
        bail!("{} items: --policy serves catalogs of 1 to 100000 items", logs.n_items);
    }
    if trained_on.n_items != logs.n_items {
        bail!(
            "--policy-logs lists {} items, --logs {}: they must share one item_context.csv",
            trained_on.n_items,
            logs.n_items
        );
    }
    let n_items = logs.n_items;
    let k = logs.n_positions;
    if n_items < k {
        bail!("{} items cannot fill {k} positions", n_items);
    }
    let config = EngineConfig::load(
        &format!(
            "[train]\ncf_model = \"none\"\n[surfaces.ope]\nsources = [{{ name = \"popular\", quota = {n} }}, \
             {{ name = \"unexplored\", quota = {n}, weight = 0.01 }}]\nrules = []\nexploration = \"{name}\"\n\
             max_candidates = {n}\n[surfaces.ope.rerank]\nexplore_depth = {depth}\npropensity_samples = 10\n",
            n = n_items,
            depth = n_items.clamp(1, 1000),
        ),
        std::iter::empty(),
    )
    .context("the evaluation surface")?;
    let mut records: Vec<Record> = (0..n_items).map(|i| Record::Item(Item::bare(i.to_string()))).collect();
    // All at one instant: popularity is then plain click counts (no time decay), and each
    // click still follows its impression (impressions first within a second).
    for round in &trained_on.rounds {
        let event = |kind| Event {
            user: "visitor".into(),
            item: round.item.to_string(),
            kind,
            value: None,
            timestamp: 0,
            context: EventContext { position: Some(round.position + 1), ..EventContext::default() },
        };
        records.push(Record::Event(event(EventKind::Impression)));
        if round.reward > 0.0 {
            records.push(Record::Event(event(EventKind::Click)));
        }
    }
    let engine = Engine::new(Arc::new(snapshot_in_memory(records, &config, None)?), &config)?;
    let mut counts = vec![0u64; n_items * k];
    for seed in 0..samples as u64 {
        let request = Request { surface: "ope".into(), k, seed, ..Request::default() };
        let slate = engine.run(&request)?;
        for (position, item) in slate.items.iter().enumerate() {
            let item: usize = item.id.parse().context("an item id of the evaluation store")?;
            counts[item * k + position] += 1;
        }
    }
    let dist = ActionDist::context_free(logs, |item, position| {
        counts[item as usize * k + position as usize] as f64 / samples as f64
    })?;
    let about = PolicyAbout {
        name: name.to_owned(),
        trained_on: trained_on.file.display().to_string(),
        training_rounds: trained_on.rounds.len(),
        in_sample: same_file(&trained_on.file, &logs.file),
        samples,
    };
    Ok((dist, about))
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use funnel_eval::ope::{OpeOptions, evaluate, read_logs};

    use super::*;

    /// Three items, two positions, ten uniformly random rounds (propensity 1/3): item 2
    /// clicked three times at position 1, item 1 twice at position 2, item 0 never.
    fn logs() -> (tempfile::TempDir, Logs) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("item_context.csv"), ",item_id\n0,0\n1,1\n2,2\n").unwrap();
        let mut rows = String::from(",item_id,position,click,propensity_score\n");
        let rounds = [
            (2, 1, 1),
            (2, 1, 1),
            (2, 1, 1),
            (0, 1, 0),
            (0, 1, 0),
            (0, 1, 0),
            (1, 2, 1),
            (1, 2, 1),
            (0, 2, 0),
            (0, 2, 0),
        ];
        for (t, (item, position, click)) in rounds.iter().enumerate() {
            rows.push_str(&format!("{t},{item},{position},{click},0.3333333333\n"));
        }
        std::fs::write(dir.path().join("all.csv"), rows).unwrap();
        let logs = read_logs(dir.path()).unwrap();
        (dir, logs)
    }

    #[test]
    fn a_greedy_policy_is_measured_by_serving_it() {
        let (_dir, logs) = logs();
        let (dist, about) = action_dist("none", &logs, &logs, 200).unwrap();
        assert!(about.in_sample);
        // Greedy by clicks serves [2, 1] every time: it matches the logged item in the
        // three clicked rounds at position 1 and the two at position 2, each weighted 3.
        let report = evaluate(&logs, &dist, &OpeOptions { bootstrap: 100, ..OpeOptions::default() });
        assert!((report.metrics["ips"] - 1.5).abs() < 1e-6, "{:?}", report.metrics);
        assert!((report.metrics["snips"] - 1.0).abs() < 1e-6, "{:?}", report.metrics);
    }

    #[test]
    fn thompson_sampling_spreads_its_slates() {
        let (_dir, logs) = logs();
        let (dist, _) = action_dist("thompson", &logs, &logs, 2000).unwrap();
        let report = evaluate(&logs, &dist, &OpeOptions { bootstrap: 100, ..OpeOptions::default() });
        // It shows item 0 at times, so its value lies between the uniform logging policy's
        // (the mean logged reward, 0.5) and greedy's 1.5.
        let ips = report.metrics["ips"];
        assert!(ips > 0.5 && ips < 1.5, "{ips}");
        assert!(action_dist("coin", &logs, &logs, 200).unwrap_err().to_string().contains("unknown policy"));
    }
}
