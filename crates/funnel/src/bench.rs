//! `funnel bench`: speed of Funnel's parts on the user's own data, measured in-process so
//! that the figures are the engine's and not the command's start-up.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use funnel_engine::{EngineConfig, build_text_index};
use funnel_store::import::{Format, read_items};
use serde_json::json;

use crate::cli::{BenchCommand, BenchHttpArgs, BenchSearchArgs};

pub fn run(config: &EngineConfig, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Search(args) => search(config, &args),
        BenchCommand::Http(args) => http(&args),
    }
}

/// What one client saw: latencies of answered requests (seconds), and errors.
#[derive(Default)]
struct ClientLog {
    latencies: Vec<f64>,
    errors: usize,
    first_error: Option<String>,
}

fn http(args: &BenchHttpArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(args.seconds > 0.0 && args.seconds.is_finite(), "--seconds must be a positive number");
    anyhow::ensure!(args.warmup >= 0.0 && args.warmup.is_finite(), "--warmup must be ≥ 0");
    let text = std::fs::read_to_string(&args.queries).with_context(|| format!("reading {}", args.queries.display()))?;
    let queries: Vec<String> = text.lines().map(str::trim).filter(|q| !q.is_empty()).map(str::to_owned).collect();
    anyhow::ensure!(!queries.is_empty(), "{}: no queries (one per line)", args.queries.display());
    let endpoint = format!("{}/search", args.url.trim_end_matches('/'));
    let started = Instant::now();
    let measure_from = started + std::time::Duration::from_secs_f64(args.warmup);
    let until = measure_from + std::time::Duration::from_secs_f64(args.seconds);
    let logs: Vec<ClientLog> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.concurrency)
            .map(|client| {
                let (queries, endpoint) = (&queries, &endpoint);
                scope.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .timeout_global(Some(std::time::Duration::from_secs(10)))
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let mut log = ClientLog::default();
                    let mut next = client * queries.len() / args.concurrency;
                    loop {
                        let sent = Instant::now();
                        if sent >= until {
                            break;
                        }
                        let query = &queries[next % queries.len()];
                        next += 1;
                        let answer = agent.get(endpoint).query("q", query).query("k", args.k.to_string()).call();
                        let elapsed = sent.elapsed().as_secs_f64();
                        let failure = match answer {
                            Ok(mut response) if response.status() == 200 => {
                                response.body_mut().read_to_vec().err().map(|e| e.to_string())
                            }
                            Ok(response) => Some(format!("HTTP {}", response.status())),
                            Err(error) => Some(error.to_string()),
                        };
                        if sent < measure_from {
                            continue;
                        }
                        match failure {
                            None => log.latencies.push(elapsed),
                            Some(reason) => {
                                log.errors += 1;
                                log.first_error.get_or_insert(reason);
                            }
                        }
                    }
                    log
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a client thread does not panic")).collect()
    });
    let errors: usize = logs.iter().map(|l| l.errors).sum();
    let first_error = logs.iter().find_map(|l| l.first_error.clone());
    let mut latencies: Vec<f64> = logs.into_iter().flat_map(|l| l.latencies).collect();
    anyhow::ensure!(
        !latencies.is_empty(),
        "no request to {endpoint} succeeded ({errors} errors; first: {})",
        first_error.unwrap_or_default()
    );
    latencies.sort_unstable_by(f64::total_cmp);
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize] * 1e3;
    let report = json!({
        "requests": latencies.len(),
        "errors": errors,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "qps": latencies.len() as f64 / args.seconds,
        "p50_ms": percentile(0.5),
        "p90_ms": percentile(0.9),
        "p99_ms": percentile(0.99),
        "max_ms": percentile(1.0),
    });
    if args.json {
        out!("{report}");
    } else {
        out!(
            "{} answers in {:.0} s from {} clients: {:.0}/s; p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} errors{}",
            latencies.len(),
            args.seconds,
            args.concurrency,
            latencies.len() as f64 / args.seconds,
            percentile(0.5),
            percentile(0.9),
            percentile(0.99),
            percentile(1.0),
            errors,
            first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()
        );
    }
    Ok(())
}

fn search(config: &EngineConfig, args: &BenchSearchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.k > 0, "--k must be at least 1");
    anyhow::ensure!(args.repeat > 0, "--repeat must be at least 1");
    let started = Instant::now();
    let items = read_items(&args.corpus, Format::Beir).with_context(|| format!("reading {}", args.corpus.display()))?;
    let read_s = started.elapsed().as_secs_f64();
    let queries =
        std::fs::read_to_string(&args.queries).with_context(|| format!("reading {}", args.queries.display()))?;
    let queries: Vec<&str> = queries.lines().map(str::trim).filter(|q| !q.is_empty()).collect();
    anyhow::ensure!(!queries.is_empty(), "{}: no queries (one per line)", args.queries.display());

    let mut search_config = config.search.clone();
    if !args.fields.is_empty() {
        search_config.fields = args.fields.clone();
    }
    let started = Instant::now();
    let index = build_text_index(&items, &search_config);
    let build_s = started.elapsed().as_secs_f64();

    // Untimed first pass: page in the postings, as a warm server would have them.
    let mut results = Vec::with_capacity(queries.len());
    for query in &queries {
        results.push(index.search(query, args.k, &|_| true));
    }
    let mut latencies = Vec::with_capacity(queries.len() * args.repeat);
    let timed = Instant::now();
    for _ in 0..args.repeat {
        for query in &queries {
            let started = Instant::now();
            let hits = index.search(query, args.k, &|_| true);
            latencies.push(started.elapsed().as_secs_f64());
            std::hint::black_box(hits);
        }
    }
    let total_s = timed.elapsed().as_secs_f64();
    latencies.sort_unstable_by(f64::total_cmp);
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize] * 1e3;

    if let Some(path) = &args.hits {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).with_context(|| path.display().to_string())?);
        for hits in &results {
            let ids: Vec<&str> = hits.iter().map(|h| items[h.doc as usize].id.as_str()).collect();
            writeln!(out, "{}", serde_json::to_string(&ids)?)?;
        }
        out.flush()?;
    }
    let report = json!({
        "docs": items.len(),
        "terms": index.n_terms(),
        "read_s": read_s,
        "build_s": build_s,
        "build_threads": rayon_threads(),
        "queries": queries.len(),
        "qps": latencies.len() as f64 / total_s,
        "p50_ms": percentile(0.5),
        "p99_ms": percentile(0.99),
        "peak_rss_mb": peak_rss_mb(),
    });
    if args.json {
        out!("{report}");
    } else {
        out!(
            "{} documents, {} terms: index built in {:.2} s on {} threads\n\
             {} queries × {}: {:.0} queries/s on one thread, p50 {:.3} ms, p99 {:.3} ms; peak memory {:.0} MB",
            items.len(),
            index.n_terms(),
            build_s,
            rayon_threads(),
            queries.len(),
            args.repeat,
            report["qps"].as_f64().unwrap_or(0.0),
            percentile(0.5),
            percentile(0.99),
            peak_rss_mb().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The process's peak resident memory (Linux: VmHWM in /proc/self/status).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
