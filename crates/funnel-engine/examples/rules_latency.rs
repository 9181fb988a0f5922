//! What re-ranking costs per request: 1000 candidates (the `popular` source over a
//! 5,000-item catalog in 20 categories), every rule (seen, available, safe, dedupe,
//! freshness, popularity, boost, diversity over the top 100, category-cap, two pins) and
//! each exploration policy (ε-greedy, Thompson sampling with 200 propensity draws over the
//! best 100, LinUCB over the best 100) choosing a 20-item slate; one thread. The bandits
//! refuse diversity and category-cap (they re-choose the slate), so their surfaces run
//! the other seven rules. The log has
//! 100,000 impressions (10% clicked) by 2,000 users in 10 segments. Reports the p50/p99 of
//! the rules stage and of the exploration stage as the engine times them
//! (`Response::stage_micros`).
//!
//! cargo run --release -p funnel-engine --example rules_latency -- [--requests 5000]

use funnel_core::{Event, EventContext, EventKind, Item, Record, User};
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
    // A promotion nobody has interacted with yet, pinned first.
    log.append(&[Record::Item(Item { title: "promotion".into(), ..Item::bare("promo") })])?;
    let users: Vec<Record> = (0..2000)
        .map(|u| {
            let attributes = [("country".to_owned(), serde_json::json!(format!("c{}", u % 10)))].into();
            Record::User(User { id: format!("u{u}"), attributes })
        })
        .collect();
    log.append(&users)?;
    let mut events = Vec::new();
    for n in 0..100_000 {
        let shown = Event {
            user: format!("u{}", n % 2000),
            item: format!("i{}", (rng.random_range(0.0f64..1.0).powi(2) * 5000.0) as usize),
            kind: EventKind::Impression,
            value: None,
            timestamp: now - rng.random_range(0..30 * day),
            context: EventContext::default(),
        };
        if rng.random_bool(0.1) {
            events.push(Record::Event(Event {
                kind: EventKind::Click,
                timestamp: shown.timestamp + 1,
                ..shown.clone()
            }));
        }
        events.push(Record::Event(shown));
    }
    log.append(&events)?;
    let policies = ["epsilon-greedy", "thompson", "linucb"];
    let surfaces: String = policies
        .iter()
        .map(|policy| {
            let orderers = if *policy == "epsilon-greedy" { r#", "diversity", "category-cap""# } else { "" };
            format!(
                r#"
        [surfaces.{policy}]
        sources = [{{ name = "popular", quota = 1000 }}]
        rules = ["seen", "available", "safe", "dedupe", "freshness", "popularity", "boost"{orderers}]
        exploration = "{policy}"
        [surfaces.{policy}.rerank]
        boosts = [{{ category = "c3", boost = 0.5 }}, {{ item = "i42", boost = 1.0 }}]
        pins = [{{ item = "promo", position = 1 }}, {{ item = "i4000", position = 5 }}]
        "#
            )
        })
        .collect();
    let config = EngineConfig::load(&format!("[train]\ncf_model = \"none\"\n{surfaces}"), std::iter::empty())?;
    let snapshots = SnapshotDir::new(dir.path().join("snapshots"));
    train(&log.reader(), &snapshots, &config, None, &mut |_| {})?;
    let engine = Engine::open_latest(&snapshots, &config)?;
    let probe =
        Request { surface: "thompson".into(), user: Some("u1".into()), k: 20, explain: true, ..Request::default() };
    let trace = engine.run(&probe)?.trace.expect("explained");
    let into_rules = trace.stages.iter().find(|s| s.stage == "rules").map_or(0, |s| s.input);
    println!("{into_rules} candidates reach the rules");
    for policy in policies {
        let (mut rules, mut explore) = (Vec::with_capacity(requests), Vec::with_capacity(requests));
        for n in 0..requests {
            let request = Request {
                surface: policy.into(),
                user: Some(format!("u{}", n % 2000)),
                k: 20,
                seed: n as u64,
                ..Request::default()
            };
            let response = engine.run(&request)?;
            let micros =
                |stage: &str| response.stage_micros.iter().filter(|(s, _)| *s == stage).map(|(_, m)| *m).sum::<u64>();
            rules.push(micros("rules") as f64 / 1000.0);
            explore.push(micros("explore") as f64 / 1000.0);
            assert_eq!(response.items.len(), 20);
            assert_eq!(response.items[0].id, "promo", "pinned first");
        }
        println!("{policy}:");
        for (name, values) in [("rules", &mut rules), ("explore", &mut explore)] {
            values.sort_by(f64::total_cmp);
            println!(
                "{name:>10}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {requests} requests",
                percentile(values, 0.5),
                percentile(values, 0.99),
                values[values.len() - 1]
            );
        }
    }
    Ok(())
}
