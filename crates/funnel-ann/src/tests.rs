use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;

/// Clustered random vectors, like embeddings: `clusters` centres plus noise.
fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
    (0..n)
        .flat_map(|i| {
            let c = i % clusters;
            (0..dim).map(|j| centres[c * dim + j] + 0.4 * rng.random_range(-1.0f32..1.0)).collect::<Vec<_>>()
        })
        .collect()
}

fn recall_at_10(index: &Hnsw, exact: &Exact, queries: &[f32], dim: usize, ef: usize) -> f64 {
    let mut hits = 0;
    let mut total = 0;
    for query in queries.chunks_exact(dim) {
        let truth: Vec<u32> = exact.search(query, 10).unwrap().iter().map(|n| n.id).collect();
        let found = index.search(query, 10, ef).unwrap();
        hits += found.iter().filter(|n| truth.contains(&n.id)).count();
        total += truth.len();
    }
    hits as f64 / total as f64
}

#[test]
fn hnsw_finds_the_true_neighbours() {
    let dim = 24;
    let data = clustered(5000, dim, 50, 1);
    let queries = clustered(200, dim, 50, 2);
    let index = Hnsw::build(data.clone(), dim, Metric::Cosine, HnswParams::default()).unwrap();
    let exact = Exact::new(data, dim, Metric::Cosine).unwrap();
    let recall = recall_at_10(&index, &exact, &queries, dim, 64);
    assert!(recall >= 0.95, "recall@10 {recall}");
    // A narrow search is worse than a wide one, or the ef knob does nothing.
    let narrow = recall_at_10(&index, &exact, &queries, dim, 10);
    assert!(narrow < recall, "ef=10 recall {narrow} vs ef=64 {recall}");
}

#[test]
fn scores_are_cosine_similarities_most_similar_first() {
    let data = vec![1.0, 0.0, 0.0, 2.0, 3.0, 3.0];
    let index = Hnsw::build(data, 2, Metric::Cosine, HnswParams::default()).unwrap();
    let found = index.search(&[0.0, 5.0], 3, 10).unwrap();
    assert_eq!(found.iter().map(|n| n.id).collect::<Vec<_>>(), vec![1, 2, 0]);
    assert!((found[0].score - 1.0).abs() < 1e-6);
    assert!((found[1].score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    assert!(found[2].score.abs() < 1e-6);
}

#[test]
fn dot_metric_keeps_magnitudes() {
    let data = vec![1.0, 0.0, 3.0, 0.0];
    let exact = Exact::new(data, 2, Metric::Dot).unwrap();
    let found = exact.search(&[2.0, 0.0], 2).unwrap();
    assert_eq!((found[0].id, found[0].score), (1, 6.0));
    assert_eq!((found[1].id, found[1].score), (0, 2.0));
}

#[test]
fn the_graph_does_not_depend_on_the_thread_count() {
    let dim = 8;
    let data = clustered(3000, dim, 20, 3);
    let build = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| Hnsw::build(data.clone(), dim, Metric::Dot, HnswParams::default()).unwrap())
    };
    let one = build(1);
    let two = build(2);
    assert_eq!(postcard::to_allocvec(&one).unwrap(), postcard::to_allocvec(&two).unwrap());
}

#[test]
fn wrong_dimensions_and_parameters_are_errors() {
    let index = Hnsw::build(vec![0.5; 12], 4, Metric::Cosine, HnswParams::default()).unwrap();
    let err = index.search(&[1.0, 2.0], 1, 10).unwrap_err().to_string();
    assert!(err.contains("dimension 2") && err.contains("expected 4"), "{err}");
    assert!(Hnsw::build(vec![0.0; 7], 4, Metric::Cosine, HnswParams::default()).is_err());
    let params = HnswParams { m: 1, ..HnswParams::default() };
    assert!(Hnsw::build(vec![0.0; 8], 4, Metric::Cosine, params).is_err());
}

#[test]
fn an_empty_index_finds_nothing() {
    let index = Hnsw::build(Vec::new(), 4, Metric::Cosine, HnswParams::default()).unwrap();
    assert!(index.is_empty());
    assert!(index.search(&[1.0; 4], 5, 10).unwrap().is_empty());
}

#[test]
fn the_front_picks_exact_for_small_sets_and_survives_serialisation() {
    let dim = 8;
    let data = clustered(300, dim, 5, 4);
    let small = VectorIndex::build(data.clone(), dim, Metric::Cosine, HnswParams::default(), 1000).unwrap();
    assert!(matches!(small, VectorIndex::Exact(_)));
    let large = VectorIndex::build(data.clone(), dim, Metric::Cosine, HnswParams::default(), 100).unwrap();
    assert!(matches!(large, VectorIndex::Hnsw(_)));
    let bytes = postcard::to_allocvec(&large).unwrap();
    let back: VectorIndex = postcard::from_bytes(&bytes).unwrap();
    let query = &data[..dim];
    assert_eq!(back.search(query, 5, 50).unwrap(), large.search(query, 5, 50).unwrap());
    assert_eq!(small.search(query, 1, 0).unwrap()[0].id, 0);
}
