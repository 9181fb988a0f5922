//! Fusing ranked lists from several retrievers (BM25 and dense vectors, say) into one.
//!
//! - **Reciprocal rank fusion**: Σ weight / (k + rank), rank from 1. Needs no score scale,
//!   so it fuses retrievers whose scores are not comparable.
//! - **Weighted sum of normalised scores**: each list's scores mapped to a common scale
//!   (min-max to [0, 1], or z-scores), then Σ weight · score. A document missing from a
//!   list counts 0 under min-max; under z-scores, the list's lowest score, or −1 when all
//!   its scores are equal (so a list of one hit still lifts that hit).
//!
//! Results are best first, ties broken by the smaller document id (deterministic).

use rustc_hash::FxHashMap;

/// One retriever's result: (document, score), best first, and the list's weight.
#[derive(Debug, Clone, Copy)]
pub struct Ranked<'a> {
    pub hits: &'a [(u32, f32)],
    pub weight: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalisation {
    /// (s − min) / (max − min); all equal → 1.
    MinMax,
    /// (s − mean) / standard deviation; all equal → 0.
    ZScore,
}

fn sorted(scores: FxHashMap<u32, f32>, limit: usize) -> Vec<(u32, f32)> {
    let mut fused: Vec<(u32, f32)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused.truncate(limit);
    fused
}

/// Reciprocal rank fusion with constant `k` (60 is the usual choice).
pub fn reciprocal_rank(lists: &[Ranked<'_>], k: f32, limit: usize) -> Vec<(u32, f32)> {
    let mut scores: FxHashMap<u32, f32> = FxHashMap::default();
    for list in lists {
        for (rank, &(doc, _)) in list.hits.iter().enumerate() {
            *scores.entry(doc).or_default() += list.weight / (k + rank as f32 + 1.0);
        }
    }
    sorted(scores, limit)
}

fn normalised(hits: &[(u32, f32)], how: Normalisation) -> Vec<f32> {
    let n = hits.len().max(1) as f32;
    match how {
        Normalisation::MinMax => {
            let min = hits.iter().map(|h| h.1).fold(f32::INFINITY, f32::min);
            let max = hits.iter().map(|h| h.1).fold(f32::NEG_INFINITY, f32::max);
            hits.iter().map(|h| if max > min { (h.1 - min) / (max - min) } else { 1.0 }).collect()
        }
        Normalisation::ZScore => {
            let mean = hits.iter().map(|h| h.1).sum::<f32>() / n;
            let sd = (hits.iter().map(|h| (h.1 - mean).powi(2)).sum::<f32>() / n).sqrt();
            hits.iter().map(|h| if sd > 0.0 { (h.1 - mean) / sd } else { 0.0 }).collect()
        }
    }
}

/// Two scores of the same documents blended, per position: `weight` × `second` +
/// (1 − `weight`) × `first`, each min-max normalised over the slice (a NaN in `second`
/// counts as its lowest). A reranker's scores blended with the first stage's, say.
pub fn blend(first: &[f32], second: &[f32], weight: f32) -> Vec<f32> {
    let lowest = second.iter().copied().filter(|s| !s.is_nan()).fold(f32::INFINITY, f32::min);
    let listed = |scores: &mut dyn Iterator<Item = f32>| -> Vec<(u32, f32)> {
        scores.enumerate().map(|(n, s)| (n as u32, s)).collect()
    };
    let first = normalised(&listed(&mut first.iter().copied()), Normalisation::MinMax);
    let second = listed(&mut second.iter().map(|&s| if s.is_nan() { lowest } else { s }));
    let second = normalised(&second, Normalisation::MinMax);
    first.iter().zip(second).map(|(f, s)| (1.0 - weight) * f + weight * s).collect()
}

/// Weighted sum of scores normalised per list.
pub fn weighted(lists: &[Ranked<'_>], how: Normalisation, limit: usize) -> Vec<(u32, f32)> {
    let normal: Vec<Vec<f32>> = lists.iter().map(|l| normalised(l.hits, how)).collect();
    let floors: Vec<f32> = normal
        .iter()
        .map(|v| {
            let lowest = v.iter().copied().fold(f32::INFINITY, f32::min);
            let highest = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            match how {
                Normalisation::MinMax => 0.0,
                Normalisation::ZScore if lowest < highest => lowest,
                Normalisation::ZScore => -1.0,
            }
        })
        .collect();
    // Every document starts at the sum of the floors; a list that has it adds the gap.
    let base: f32 = lists.iter().zip(&floors).filter(|(_, f)| f.is_finite()).map(|(l, f)| l.weight * f).sum();
    let mut scores: FxHashMap<u32, f32> = FxHashMap::default();
    for ((list, normal), floor) in lists.iter().zip(&normal).zip(&floors) {
        for (&(doc, _), &score) in list.hits.iter().zip(normal) {
            *scores.entry(doc).or_insert(base) += list.weight * (score - floor);
        }
    }
    sorted(scores, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BM25: &[(u32, f32)] = &[(1, 12.0), (2, 9.0), (3, 3.0)];
    const DENSE: &[(u32, f32)] = &[(3, 0.9), (4, 0.8), (1, 0.7)];

    fn both(w: f32) -> [Ranked<'static>; 2] {
        [Ranked { hits: BM25, weight: 1.0 - w }, Ranked { hits: DENSE, weight: w }]
    }

    #[test]
    fn blend_mixes_two_min_max_scales_per_position() {
        // First: 1, 0.5, 0 after min-max; second: 0, 1, NaN → its lowest, 0.
        let blended = blend(&[12.0, 9.0, 6.0], &[0.1, 0.3, f32::NAN], 0.25);
        assert_eq!(blended, [0.75, 0.625, 0.0]);
        assert_eq!(blend(&[1.0, 1.0], &[2.0, 3.0], 1.0), [0.0, 1.0]);
    }

    #[test]
    fn rrf_rewards_agreement_between_lists() {
        let fused = reciprocal_rank(&both(0.5), 60.0, 10);
        let ids: Vec<u32> = fused.iter().map(|f| f.0).collect();
        // 1 is first and third, 3 third and first: tied, broken by id; 2 and 4 once each.
        assert_eq!(ids, [1, 3, 2, 4]);
        let expected = 0.5 / 61.0 + 0.5 / 63.0;
        assert!((fused[0].1 - expected).abs() < 1e-7, "{fused:?}");
        assert_eq!(reciprocal_rank(&both(0.5), 60.0, 2).len(), 2);
    }

    #[test]
    fn min_max_weighting_moves_with_the_weights() {
        // BM25 min-max: 1 → 1, 2 → 0.667, 3 → 0. Dense: 3 → 1, 4 → 0.5, 1 → 0.
        let bm25_only: Vec<u32> = weighted(&both(0.0), Normalisation::MinMax, 10).iter().map(|f| f.0).collect();
        assert_eq!(&bm25_only[..2], [1, 2]);
        let dense_only: Vec<u32> = weighted(&both(1.0), Normalisation::MinMax, 10).iter().map(|f| f.0).collect();
        assert_eq!(&dense_only[..2], [3, 4]);
        let even = weighted(&both(0.5), Normalisation::MinMax, 10);
        // 1: 0.5·1 + 0.5·0 = 0.5; 3: 0.5·0 + 0.5·1 = 0.5; 2: 0.333 + 0 (missing → floor 0).
        assert_eq!(even[0], (1, 0.5));
        assert_eq!(even[1], (3, 0.5));
        assert!((even[2].1 - 1.0 / 3.0).abs() < 1e-6, "{even:?}");
    }

    #[test]
    fn z_scores_give_a_missing_document_the_lists_floor() {
        let fused = weighted(&both(0.5), Normalisation::ZScore, 10);
        let score = |doc| fused.iter().find(|f| f.0 == doc).unwrap().1;
        assert!(score(1) > score(4) && score(3) > score(2), "{fused:?}");
        // A list of one hit (or of equal scores) still lifts its documents over missing ones.
        let one =
            [Ranked { hits: &[(7, 2.0)], weight: 0.5 }, Ranked { hits: &[(8, 1.0), (7, 0.9), (9, 0.0)], weight: 0.5 }];
        for how in [Normalisation::MinMax, Normalisation::ZScore] {
            assert_eq!(weighted(&one, how, 5)[0].0, 7, "{how:?}");
        }
    }
}
