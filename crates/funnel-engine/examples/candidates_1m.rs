//! Candidate generation over a 1M-item synthetic catalog, one thread: trains ALS
//! (64 factors) with its item factors in an HNSW graph, then serves the `cf` source for
//! sampled users through the engine and reports the latency of the candidate stage
//! (p50/p99/max) and the recall of the ANN top-500 against exact scoring of every item.
//!
//! cargo run --release -p funnel-engine --example candidates_1m -- [--items 1000000] [--users 200000]
//!
//! Data: items fall in 1,000 taste clusters; each user favours one cluster and two
//! others a little, and picks items within a cluster with Zipf-like popularity; every
//! item gets at least one event, so all 1M items are in the model.

use std::time::Instant;

use funnel_core::{Event, EventContext, EventKind, Record};
use funnel_engine::{Engine, EngineConfig, Request, train};
use funnel_store::{FileLog, RecordLog, SnapshotDir};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn click(user: usize, item: usize) -> Record {
    Record::Event(Event {
        user: format!("u{user}"),
        item: format!("i{item}"),
        kind: EventKind::Click,
        value: None,
        timestamp: 1_700_000_000,
        context: EventContext::default(),
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (n_items, n_users, per_user) = (arg("--items", 1_000_000), arg("--users", 200_000), arg("--per-user", 10));
    let requests = arg("--requests", 2000);
    let clusters = 1000.min(n_items);
    let per_cluster = n_items / clusters;
    let dir = tempfile::tempdir()?;
    let log = FileLog::open(dir.path().join("log"))?;
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    let mut batch = Vec::with_capacity(100_000);
    let flush = |batch: &mut Vec<Record>| -> Result<(), Box<dyn std::error::Error>> {
        log.append(batch)?;
        batch.clear();
        Ok(())
    };
    for item in 0..n_items {
        batch.push(click(rng.random_range(0..n_users), item));
        if batch.len() == 100_000 {
            flush(&mut batch)?;
        }
    }
    for user in 0..n_users {
        let home = user % clusters;
        for _ in 0..per_user {
            let cluster = if rng.random_bool(0.8) { home } else { rng.random_range(0..clusters) };
            // Zipf-like rank within the cluster: r = per_cluster^u - 1.
            let rank = ((per_cluster as f64).powf(rng.random::<f64>()) - 1.0) as usize;
            batch.push(click(user, cluster + clusters * rank.min(per_cluster - 1)));
            if batch.len() == 100_000 {
                flush(&mut batch)?;
            }
        }
    }
    flush(&mut batch)?;
    eprintln!("log written in {:.1} s", started.elapsed().as_secs_f64());

    let toml = "[train]\ncf_model = \"als\"\n[surfaces.home]\nsources = [{ name = \"cf\", quota = 500 }]\n";
    let config = EngineConfig::load(toml, [])?;
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    let started = Instant::now();
    let report = train(&log.reader(), &snapshots, &config, None, &mut |phase| eprintln!("  {phase}"))?;
    let train_seconds = started.elapsed().as_secs_f64();
    let engine = Engine::open_latest(&snapshots, &config)?;
    let cf = engine.snapshot().cf.as_ref().ok_or("no CF model")?;
    eprintln!("trained in {train_seconds:.1} s: {}", engine.snapshot().manifest.cf_model.as_deref().unwrap_or(""));

    let mut micros = Vec::with_capacity(requests);
    let mut total_micros = Vec::with_capacity(requests);
    let (mut hits, mut wanted) = (0usize, 0usize);
    for r in 0..requests {
        let user = rng.random_range(0..n_users);
        let request = Request { surface: "home".into(), user: Some(format!("u{user}")), k: 500, ..Request::default() };
        let started = Instant::now();
        let response = engine.run(&request)?;
        total_micros.push(started.elapsed().as_secs_f64() * 1e6);
        let stage = response.stage_micros.iter().find(|(s, _)| *s == "candidates").map_or(0, |(_, m)| *m);
        micros.push(stage as f64);
        if r % 10 == 0 {
            // Recall of the served top-500 against scoring every item exactly.
            let history = engine.snapshot().histories.of(&format!("u{user}"));
            let seen: std::collections::HashSet<u32> = history.iter().copied().collect();
            let mut exact = cf.score(history).unwrap_or_default();
            exact.retain(|(item, score)| *score > 0.0 && !seen.contains(item));
            exact.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let truth: std::collections::HashSet<u32> = exact.iter().take(500).map(|&(i, _)| i).collect();
            let catalog = &engine.snapshot().catalog;
            hits +=
                response.items.iter().filter(|i| catalog.index_of(&i.id).is_some_and(|x| truth.contains(&x))).count();
            wanted += truth.len();
        }
    }
    micros.sort_by(f64::total_cmp);
    total_micros.sort_by(f64::total_cmp);
    let body = serde_json::json!({
        "items": report.items, "users": report.users, "events": report.events,
        "train_seconds": train_seconds,
        "cf_model": engine.snapshot().manifest.cf_model,
        "requests": requests, "candidates_per_request": 500, "threads": 1,
        "candidate_stage_ms": {"p50": percentile(&micros, 0.5) / 1e3, "p99": percentile(&micros, 0.99) / 1e3, "max": micros[micros.len() - 1] / 1e3},
        "request_ms": {"p50": percentile(&total_micros, 0.5) / 1e3, "p99": percentile(&total_micros, 0.99) / 1e3},
        "recall_at_500_vs_exact": hits as f64 / wanted.max(1) as f64,
    });
    println!("{body}");
    Ok(())
}
