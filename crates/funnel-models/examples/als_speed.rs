//! ALS training speed on a pairs file written by `bench/als_speed.py`: little-endian u32
//! (user, item) pairs. Prints one JSON line with the seconds of each iteration.
//!
//! cargo run --release -p funnel-models --example als_speed -- PAIRS USERS ITEMS FACTORS ITERATIONS

use std::time::Instant;

use funnel_models::{Als, AlsConfig, Interactions, Recommender};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, users, items, factors, iterations] = &args[..] else {
        eprintln!("usage: als_speed PAIRS USERS ITEMS FACTORS ITERATIONS");
        std::process::exit(2);
    };
    let parse = |s: &str| s.parse::<usize>().expect("a number");
    let (users, items, factors, iterations) = (parse(users), parse(items), parse(factors), parse(iterations));
    let bytes = std::fs::read(path).expect("the pairs file");
    let started = Instant::now();
    let pairs = bytes.chunks_exact(8).map(|c| {
        let user = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        let item = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        (user, item, 1.0)
    });
    let data = Interactions::from_triples(users as u32, items as u32, pairs);
    drop(bytes);
    let load_s = started.elapsed().as_secs_f64();
    let mut seconds = Vec::new();
    for iteration in 0..iterations {
        // One iteration per fit keeps the timing per iteration; the model restarts each
        // time, which costs the same work as continuing.
        let mut model = Als::new(AlsConfig { factors, iterations: 1, ..AlsConfig::default() });
        let started = Instant::now();
        model.fit(&data, iteration as u64).expect("valid config");
        seconds.push(started.elapsed().as_secs_f64());
    }
    println!(
        "{{\"nnz\": {}, \"load_s\": {load_s:.3}, \"factors\": {factors}, \"seconds_per_iteration\": {:?}, \"peak_mib\": {}}}",
        data.nnz(),
        seconds,
        peak_mib()
    );
}

/// This process's peak resident memory (VmHWM), in MiB; 0 where /proc is missing.
fn peak_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).unwrap_or(0) / 1024
}
