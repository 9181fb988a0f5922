//! `funnel quickstart`: a working engine in one command.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use funnel_core::Record;
use funnel_engine::{Engine, EngineConfig};
use funnel_server::{AppState, DEFAULT_MAX_BODY_BYTES, ServeOptions};
use funnel_sim::{SimConfig, World};
use funnel_store::import::{Format, ImportOptions, Kind, import_file};
use funnel_store::{DataDir, FileLog};

use crate::cli::QuickstartArgs;

pub fn run(data: &DataDir, config: EngineConfig, args: &QuickstartArgs) -> anyhow::Result<()> {
    {
        let log = FileLog::open(data.log())?;
        if log.reader().stats()?.frames > 0 {
            out!("reusing the store in {} (delete it for a fresh start)", data.root().display());
        } else if let Some(dir) = &args.data {
            import_movielens(&log, dir)?;
        } else {
            import_simulated(&log, args.seed)?;
        }
    }
    let report = crate::train::build(data, &config, None, true)?;
    out!(
        "trained snapshot {}: {} items, {} users, {} events",
        report.snapshot,
        report.items,
        report.users,
        report.events
    );
    let engine = Engine::open_latest(&data.snapshots(), &config)?;
    print_examples(&engine, args);
    if args.no_serve {
        return Ok(());
    }
    let models = crate::train::serving_models(&config);
    let state = Arc::new(AppState::open(data, config, models)?);
    let options =
        ServeOptions { addr: args.addr, reload_every: Duration::from_secs(2), max_body_bytes: DEFAULT_MAX_BODY_BYTES };
    crate::serve::serve_until_signal(state, options)
}

fn import_simulated(log: &FileLog, seed: u64) -> anyhow::Result<()> {
    let world = World::new(SimConfig { seed, ..SimConfig::default() });
    let history = world.history();
    let mut tx = log.begin_import()?;
    for item in &world.items {
        tx.push(&Record::Item(item.item.clone()))?;
    }
    for user in &world.users {
        tx.push(&Record::User(user.user.clone()))?;
    }
    for event in &history {
        tx.push(&Record::Event(event.clone()))?;
    }
    tx.commit()?;
    out!(
        "simulated {} items, {} users and {} events (seed {seed})",
        world.items.len(),
        world.users.len(),
        history.len()
    );
    Ok(())
}

/// Imports whichever MovieLens files the folder has.
fn import_movielens(log: &FileLog, dir: &Path) -> anyhow::Result<()> {
    let files = [
        ("u.item", Kind::Items, Format::Movielens),
        ("u.user", Kind::Users, Format::Movielens),
        ("u.data", Kind::Events, Format::Movielens),
        ("movies.csv", Kind::Items, Format::Movielens),
        ("ratings.csv", Kind::Events, Format::Movielens),
    ];
    let mut imported = 0;
    for (name, kind, format) in files {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let options = ImportOptions { kind, format, skip_bad: false };
        let report =
            import_file(log, &path, &options, &mut |_| {}).with_context(|| format!("importing {}", path.display()))?;
        out!("imported {} records from {}", report.records, path.display());
        imported += 1;
    }
    if imported == 0 {
        anyhow::bail!(
            "{}: no MovieLens files found (expected u.data and u.item, or ratings.csv and movies.csv)",
            dir.display()
        );
    }
    Ok(())
}

fn print_examples(engine: &Engine, args: &QuickstartArgs) {
    let snapshot = engine.snapshot();
    let user = snapshot.histories.users.keys().min().cloned().unwrap_or_else(|| "1".into());
    let top = snapshot.popularity.order.first().map(|&i| snapshot.catalog.get(i));
    let item = top.map_or_else(|| "1".to_owned(), |t| t.id.clone());
    let word = top.and_then(|t| t.title.split_whitespace().find(|w| w.len() > 3)).unwrap_or("love").to_lowercase();
    let base = format!("http://{}", args.addr);
    out!("\nTry these{}:", if args.no_serve { " after `funnel serve`" } else { " while it serves (Ctrl-C stops)" });
    out!("  curl '{base}/recommend?user={user}&k=5'");
    out!("  curl '{base}/recommend?user={user}&k=5&explain=true'");
    if let Some(segment) = snapshot.segments.segments.iter().max_by_key(|s| s.users) {
        let (name, value) = segment.name.split_once('=').unwrap_or((&segment.name, ""));
        // Percent-encoded for the query string ("65+" would read as "65 ").
        let (name, value) = (percent_encode(name), percent_encode(value));
        out!("  curl '{base}/recommend?context.{name}={value}&k=5&explain=true'   # a new visitor, by context");
    }
    out!("  curl '{base}/search?q={word}&k=5'");
    out!("  curl '{base}/items/{item}/similar?k=5'");
    out!(
        "  curl -X POST '{base}/events' -H 'content-type: application/json' \\\n       -d '[{{\"user\":\"{user}\",\"item\":\"{item}\",\"kind\":\"click\",\"timestamp\":{}}}]'",
        snapshot.manifest.as_of
    );
    out!("  curl '{base}/metrics'    # Prometheus; /openapi.json describes the API\n");
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
