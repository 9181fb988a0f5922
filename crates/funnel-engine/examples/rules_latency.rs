//! What re-ranking costs per request: 1000 candidates (the `popular` source over a
//! 5,000-item catalog in 20 categories), every rule (seen, available, safe, dedupe,
//! freshness, popularity, diversity over the top 100, category-cap) and ε-greedy
//! exploration choosing a 20-item slate; one thread. Reports the p50/p99 of the rules stage and of the exploration stage
//! as the engine times them (`Response::stage_micros`).
//!
//! cargo run --release -p funnel-engine --example rules_latency -- [--requests 5000]

use funnel_core::{Event, EventContext, EventKind, Item, Record};
use funnel_engine::{Engine, EngineConfig, Request, train};
use funnel_store::{FileLog, RecordLog, SnapshotDir};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let requests: usize =
        args.iter().position(|a| a == "--requests").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(5000);
    let dir = tempfile::tempdir()?;
    let log = FileLog::open(dir.path().join("log"))?;
    let day = 86_400;
    let now = 1_700_000_000;
    let mut rng = StdRng::seed_from_u64(7);
    let items: Vec<Record> = (0..5000)
        .map(|i| {
            Record::Item(Item {
                title: format!("item {i}"),
                categories: vec![format!("c{}", i % 20)],
                created_at: Some(now - rng.random_range(0..365) * day),
                ..Item::bare(format!("i{i}"))
            })
        })
        .collect();
    log.append(&items)?;
    let events: Vec<Record> = (0..50_000)
        .map(|n| {
            Record::Event(Event {
                user: format!("u{}", n % 2000),
                item: format!("i{}", (rng.random_range(0.0f64..1.0).powi(2) * 5000.0) as usize),
                kind: EventKind::Click,
                value: None,
                timestamp: now - rng.random_range(0..30 * day),
                context: EventContext::default(),
            })
        })
        .collect();
    log.append(&events)?;
    let config = EngineConfig::load(
        r#"
        [train]
        cf_model = "none"
        [surfaces.home]
        sources = [{ name = "popular", quota = 1000 }]
        rules = ["seen", "available", "safe", "dedupe", "freshness", "popularity", "diversity", "category-cap"]
        exploration = "epsilon-greedy"
        "#,
        std::iter::empty(),
    )?;
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    train(&log.reader(), &snapshots, &config, None, &mut |_| {})?;
    let engine = Engine::open_latest(&snapshots, &config)?;
    let probe = Request { surface: "home".into(), user: Some("u1".into()), k: 20, explain: true, ..Request::default() };
    let trace = engine.run(&probe)?.trace.expect("explained");
    let into_rules = trace.stages.iter().find(|s| s.stage == "rules").map_or(0, |s| s.input);
    println!("{into_rules} candidates reach the rules");
    let (mut rules, mut explore) = (Vec::with_capacity(requests), Vec::with_capacity(requests));
    for n in 0..requests {
        let request = Request {
            surface: "home".into(),
            user: Some(format!("u{}", n % 2000)),
            k: 20,
            seed: n as u64,
            ..Request::default()
        };
        let response = engine.run(&request)?;
        let micros = |stage: &str| response.stage_micros.iter().find(|(s, _)| *s == stage).map_or(0, |(_, m)| *m);
        rules.push(micros("rules") as f64 / 1000.0);
        explore.push(micros("explore") as f64 / 1000.0);
        assert_eq!(response.items.len(), 20);
    }
    for (name, values) in [("rules", &mut rules), ("explore", &mut explore)] {
        values.sort_by(f64::total_cmp);
        println!(
            "{name:>8}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {requests} requests",
            percentile(values, 0.5),
            percentile(values, 0.99),
            values[values.len() - 1]
        );
    }
    Ok(())
}
