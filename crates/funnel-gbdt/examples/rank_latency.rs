//! Ranking latency: one request scores `--candidates` rows of `--features` features with
//! a `--trees`-tree, 31-leaf LambdaMART model, on one thread. Reports p50/p99/max over
//! `--requests` requests (after 20 untimed ones).
//!
//! cargo run --release -p funnel-gbdt --example rank_latency -- [--candidates 1000] [--features 100] [--trees 300]
//!
//! The model is trained on seeded synthetic queries whose labels depend on a handful of
//! the features, so its trees have the depth and shape of a real ranker's; requests are
//! fresh seeded rows.

use std::time::Instant;

use funnel_gbdt::{Dataset, Params, train};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rows(rng: &mut StdRng, n: usize, width: usize) -> Vec<f32> {
    (0..n * width).map(|_| if rng.random_bool(0.3) { 0.0 } else { rng.random::<f32>() }).collect()
}

fn main() {
    let (candidates, width, trees, requests) =
        (arg("--candidates", 1000), arg("--features", 100), arg("--trees", 300), arg("--requests", 500));
    let mut rng = StdRng::seed_from_u64(11);
    let queries = 200;
    let features = rows(&mut rng, queries * 50, width);
    let labels: Vec<f64> = features
        .chunks(width)
        .map(|r| {
            let signal =
                2.0 * r[0] + r[1] * r[2] - r[3] + 0.5 * r[4 % width] * r[5 % width] + 0.3 * rng.random::<f32>();
            f64::from((signal * 1.5).clamp(0.0, 4.0).floor())
        })
        .collect();
    let data = Dataset::new(features, width, labels, vec![50; queries]).expect("consistent sizes");
    let params = Params { trees, threads: Some(1), min_data_in_leaf: 5, ..Params::default() };
    let started = Instant::now();
    let (model, _) = train(&data, None, &params, &mut |_, _| {}).expect("trains");
    let leaves: usize = model.trees.iter().map(|t| t.leaves()).sum();
    eprintln!("trained {} trees ({leaves} leaves) in {:.1} s", model.trees.len(), started.elapsed().as_secs_f64());

    let forest = model.compile();
    let batches: Vec<Vec<f32>> = (0..20).map(|_| rows(&mut rng, candidates, width)).collect();
    let mut times = Vec::with_capacity(requests);
    let mut checksum = 0.0;
    for i in 0..requests + 20 {
        let batch = &batches[i % batches.len()];
        let started = Instant::now();
        let scores = forest.predict_rows(batch, width);
        let elapsed = started.elapsed().as_secs_f64() * 1e3;
        checksum += scores[0];
        if i >= 20 {
            times.push(elapsed);
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{{\"candidates\": {candidates}, \"features\": {width}, \"trees\": {}, \"leaves\": {leaves}, \"mean_depth\": {:.1}, \
         \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"max_ms\": {:.3}, \"checksum\": {checksum:.6}}}",
        model.trees.len(),
        forest.mean_depth(),
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    );
}
