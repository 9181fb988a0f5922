//! The embedder's data-parallel batches give the vectors that embedding each text on its
//! own gives, in the caller's order (on the tiny random checkpoint of the cross-encoder
//! test: its `bert.*` weights are a BERT encoder).

use std::path::Path;

use funnel_vector::Embedder;

fn embedder() -> Embedder {
    Embedder::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-cross-encoder")).unwrap()
}

#[test]
fn batches_on_several_workers_equal_texts_embedded_one_by_one() {
    let model = embedder();
    // 50 texts of varied lengths: several batches of 16 after sorting by length.
    let texts: Vec<String> =
        (0..50).map(|i| format!("item {i} {}", "with a longer description ".repeat(i % 7))).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    let mut progressed = 0;
    let together = pool.install(|| model.embed_with_progress(&refs, |n| progressed += n)).unwrap();
    assert_eq!(progressed, texts.len());
    assert_eq!(together.len(), texts.len());
    for (text, vector) in refs.iter().zip(&together) {
        let alone = &model.embed(&[text]).unwrap()[0];
        let worst = alone.iter().zip(vector).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "{text}: differs by {worst}");
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{text}: norm {norm}");
    }
    // Different texts give different vectors (the order was not lost in a shuffle).
    assert!(together[0] != together[1]);
}
