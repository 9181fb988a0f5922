//! Recall and single-thread queries per second of the HNSW index over an `.npy` file of
//! vectors: the first `--n` rows are indexed, the next `--queries` rows are the queries.
//! Prints one JSON object; `bench/ann_speed.py` runs it beside hnswlib.
//!
//! cargo run --release -p funnel-ann --example ann_bench -- VECTORS.npy --n 100000 --queries 1000

use std::time::Instant;

use funnel_ann::{Exact, Hnsw, HnswParams, Metric, npy};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path =
        args.first().ok_or("usage: ann_bench VECTORS.npy [--n N] [--queries Q] [--m M] [--ef-construction E]")?;
    let matrix = npy::read(std::path::Path::new(path))?;
    let n: usize = arg(&args, "--n", matrix.rows.saturating_sub(1000));
    let queries: usize = arg(&args, "--queries", 1000);
    if n + queries > matrix.rows {
        return Err(format!("{path} has {} rows, fewer than --n + --queries", matrix.rows).into());
    }
    let params = HnswParams {
        m: arg(&args, "--m", 16),
        ef_construction: arg(&args, "--ef-construction", 200),
        seed: arg(&args, "--seed", 42),
    };
    let efs: Vec<usize> = arg(&args, "--efs", "10,16,24,32,48,64,96,128,192,256".to_string())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let dim = matrix.cols;
    let base = matrix.data[..n * dim].to_vec();
    let query_rows = &matrix.data[n * dim..(n + queries) * dim];

    let started = Instant::now();
    let index = Hnsw::build(base.clone(), dim, Metric::Cosine, params)?;
    let build_seconds = started.elapsed().as_secs_f64();
    let exact = Exact::new(base, dim, Metric::Cosine)?;
    let truth: Vec<Vec<u32>> = query_rows
        .chunks_exact(dim)
        .map(|q| exact.search(q, 10).map(|found| found.iter().map(|n| n.id).collect()))
        .collect::<Result<_, _>>()?;

    let mut sweep = Vec::new();
    for &ef in &efs {
        let started = Instant::now();
        let results: Vec<Vec<u32>> = query_rows
            .chunks_exact(dim)
            .map(|q| index.search(q, 10, ef).map(|found| found.iter().map(|n| n.id).collect()))
            .collect::<Result<_, _>>()?;
        let seconds = started.elapsed().as_secs_f64();
        let hits: usize = results.iter().zip(&truth).map(|(r, t)| r.iter().filter(|id| t.contains(id)).count()).sum();
        sweep.push(serde_json::json!({
            "ef": ef,
            "recall_at_10": hits as f64 / (10 * queries) as f64,
            "qps": queries as f64 / seconds,
        }));
    }
    let body = serde_json::json!({
        "n": n, "dim": dim, "queries": queries,
        "m": params.m, "ef_construction": params.ef_construction,
        "build_seconds": build_seconds,
        "build_threads": rayon::current_num_threads(),
        "sweep": sweep,
    });
    println!("{body}");
    Ok(())
}
