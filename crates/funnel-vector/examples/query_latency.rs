//! Latency of embedding one short query at a time (what a search request pays).
//!
//! cargo run --release -p funnel-vector --example query_latency -- MODEL_DIR [N]

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: query_latency MODEL_DIR [N]")?;
    let n: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(200);
    let embedder = funnel_vector::Embedder::load(std::path::Path::new(&model))?;
    let queries = ["toys come alive", "python web framework", "fast json parser", "rust", "async http client library"];
    for q in queries {
        embedder.embed(&[q])?;
    }
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        embedder.embed(&[queries[i % queries.len()]])?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{n} queries one at a time: p50 {:.2} ms, p99 {:.2} ms, min {:.2} ms",
        times[n / 2],
        times[n * 99 / 100],
        times[0]
    );
    Ok(())
}
