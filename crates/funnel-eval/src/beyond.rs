//! Beyond accuracy: what a set of recommendation lists does to the catalog.

/// Share of the catalog that appears in at least one list.
pub fn coverage(lists: &[Vec<u32>], n_items: usize) -> f64 {
    if n_items == 0 {
        return 0.0;
    }
    let mut shown = vec![false; n_items];
    for &item in lists.iter().flatten() {
        shown[item as usize] = true;
    }
    shown.iter().filter(|&&s| s).count() as f64 / n_items as f64
}

/// Mean self-information −log2(p(i)) of recommended items, where p(i) is the share of
/// training users who interacted with i (an item nobody touched counts as one user).
/// Higher means less obvious recommendations.
pub fn novelty(lists: &[Vec<u32>], item_users: &[u32], n_users: usize) -> f64 {
    let mut sum = 0.0;
    let mut n = 0usize;
    for &item in lists.iter().flatten() {
        let users = f64::from(item_users[item as usize].max(1));
        sum += -(users / n_users.max(1) as f64).log2();
        n += 1;
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Mean over lists of the mean pairwise Jaccard distance between the items' category
/// sets (two items without categories are at distance 0).
pub fn intra_list_diversity(lists: &[Vec<u32>], categories: &[Vec<u32>]) -> f64 {
    let mut total = 0.0;
    let mut counted = 0usize;
    for list in lists.iter().filter(|l| l.len() >= 2) {
        let mut sum = 0.0;
        let mut pairs = 0usize;
        for (i, &a) in list.iter().enumerate() {
            for &b in &list[i + 1..] {
                sum += jaccard_distance(&categories[a as usize], &categories[b as usize]);
                pairs += 1;
            }
        }
        total += sum / pairs as f64;
        counted += 1;
    }
    if counted == 0 { 0.0 } else { total / counted as f64 }
}

/// 1 − |A ∩ B| / |A ∪ B| for sorted, distinct category lists.
fn jaccard_distance(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    let common = a.iter().filter(|c| b.binary_search(c).is_ok()).count();
    1.0 - common as f64 / (a.len() + b.len() - common) as f64
}

/// Gini coefficient of how often each catalog item was shown: 0 when exposure is spread
/// evenly, towards 1 when a few items get it all.
pub fn exposure_gini(lists: &[Vec<u32>], n_items: usize) -> f64 {
    let mut exposure = vec![0u64; n_items];
    for &item in lists.iter().flatten() {
        exposure[item as usize] += 1;
    }
    gini(&mut exposure)
}

/// G = Σ_i (2i − n − 1) x_(i) / (n Σ x), with x sorted ascending and i from 1.
fn gini(values: &mut [u64]) -> f64 {
    let n = values.len();
    let total: u64 = values.iter().sum();
    if n == 0 || total == 0 {
        return 0.0;
    }
    values.sort_unstable();
    let weighted: f64 =
        values.iter().enumerate().map(|(i, &x)| (2.0 * (i + 1) as f64 - n as f64 - 1.0) * x as f64).sum();
    weighted / (n as f64 * total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_and_gini_extremes() {
        let same = vec![vec![0, 1], vec![0, 1]];
        assert_eq!(coverage(&same, 4), 0.5);
        let spread = vec![vec![0, 1], vec![2, 3]];
        assert_eq!(coverage(&spread, 4), 1.0);
        assert_eq!(exposure_gini(&spread, 4), 0.0);
        // All exposure on one of four items: (2·4 − 5)·1 / 4 = 0.75.
        assert!((exposure_gini(&[vec![0], vec![0]], 4) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn novelty_rewards_rare_items() {
        let users = [8, 1];
        assert_eq!(novelty(&[vec![0]], &users, 8), 0.0);
        assert_eq!(novelty(&[vec![1]], &users, 8), 3.0);
    }

    #[test]
    fn diversity_is_mean_pairwise_jaccard_distance() {
        let categories = vec![vec![0], vec![0], vec![1], vec![0, 1]];
        assert_eq!(intra_list_diversity(&[vec![0, 1]], &categories), 0.0);
        assert_eq!(intra_list_diversity(&[vec![0, 2]], &categories), 1.0);
        assert!((intra_list_diversity(&[vec![0, 3]], &categories) - 0.5).abs() < 1e-12);
    }
}
