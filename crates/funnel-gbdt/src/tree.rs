//! One regression tree: its stored form, prediction, and leaf-wise growth on histograms.

use serde::{Deserialize, Serialize};

use crate::bins::Binned;
use crate::hist::{self, Split, SplitRules, Sums};

/// Internal nodes in arrays; a child `>= 0` is a node, `< 0` is leaf `!child`.
/// A row goes left when its value is `<= threshold` (NaN counts as 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub feature: Vec<u32>,
    pub threshold: Vec<f64>,
    pub left: Vec<i32>,
    pub right: Vec<i32>,
    /// Split gain of each internal node (for feature importance).
    pub gain: Vec<f64>,
    pub leaf_value: Vec<f64>,
}

impl Tree {
    pub fn leaves(&self) -> usize {
        self.leaf_value.len()
    }

    /// The leaf a row (all features, in order) lands in.
    pub fn leaf(&self, row: &[f32]) -> usize {
        if self.feature.is_empty() {
            return 0;
        }
        let mut node = 0i32;
        while node >= 0 {
            let n = node as usize;
            let value = row.get(self.feature[n] as usize).copied().unwrap_or(0.0);
            let value = if value.is_nan() { 0.0 } else { f64::from(value) };
            node = if value <= self.threshold[n] { self.left[n] } else { self.right[n] };
        }
        !node as usize
    }

    pub fn predict(&self, row: &[f32]) -> f64 {
        self.leaf_value[self.leaf(row)]
    }
}

/// Growth settings of one tree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Growth {
    pub leaves: usize,
    pub max_depth: Option<usize>,
    pub learning_rate: f64,
    pub rules: SplitRules,
}

struct Leaf {
    begin: usize,
    len: usize,
    depth: usize,
    hist: Vec<Sums>,
    split: Option<Split>,
    /// Features that may still split this leaf's descendants.
    features: Vec<u32>,
    /// The leaf's value before the learning rate (its parent's split computed it).
    output: f64,
    /// The node whose child this leaf is (`None` for the root) and on which side.
    parent: Option<(usize, bool)>,
}

/// Grows one tree leaf-wise (always splitting the leaf that gains most) on the rows in
/// `order` (which it reorders so that every leaf's rows are contiguous), and returns it
/// with each leaf's row range in `order`.
pub(crate) fn grow(
    data: &Binned,
    order: &mut [u32],
    grad: &[f64],
    hess: &[f64],
    growth: Growth,
    buffers: &mut hist::Buffers,
) -> (Tree, Vec<(usize, usize)>) {
    let mut tree =
        Tree { feature: vec![], threshold: vec![], left: vec![], right: vec![], gain: vec![], leaf_value: vec![] };
    let sums = Sums::of(order, grad, hess);
    let all: Vec<u32> = (0..data.width() as u32).collect();
    let mut hist = buffers.take(data.slots());
    let rows: &[u32] = order;
    let found = in_parts(data, hist::split_parts(data, &mut hist), |p, part| {
        let features = hist::features_in(data, p, &all);
        hist::build_part(data, p, rows, (grad, hess), sums, features, part);
        hist::best_split(data, p, part, sums, growth.rules, features)
    });
    let (split, features) = merge(found);
    let root = Leaf { begin: 0, len: order.len(), depth: 0, hist, split, features, output: 0.0, parent: None };
    let mut leaves = vec![root];
    let mut scratch = Vec::with_capacity(order.len());
    while leaves.len() < growth.leaves {
        let candidate = leaves
            .iter()
            .enumerate()
            .filter(|(_, l)| l.split.is_some() && growth.max_depth.is_none_or(|d| l.depth < d))
            // LightGBM's order: the larger gain, then the lower feature, then the lower leaf.
            .max_by(|a, b| {
                let key = |l: &Leaf| l.split.map_or((0.0, usize::MAX), |s| (s.gain, s.feature));
                let ((ga, fa), (gb, fb)) = (key(a.1), key(b.1));
                ga.total_cmp(&gb).then(fb.cmp(&fa)).then(b.0.cmp(&a.0))
            })
            .map(|(i, _)| i);
        let Some(index) = candidate else { break };
        let split = leaves[index].split.expect("filtered on a split");
        let (begin, len) = (leaves[index].begin, leaves[index].len);
        let left_len = partition(&data.columns[split.feature], &mut order[begin..begin + len], split.bin, &mut scratch);

        let node = tree.feature.len();
        tree.feature.push(split.feature as u32);
        tree.threshold.push(data.mappers[split.feature].upper[usize::from(split.bin)]);
        tree.gain.push(split.gain);
        let new_leaf = leaves.len();
        tree.left.push(!(index as i32));
        tree.right.push(!(new_leaf as i32));
        if let Some((parent, is_left)) = leaves[index].parent {
            let side = if is_left { &mut tree.left } else { &mut tree.right };
            side[parent] = node as i32;
        }

        // Build the smaller child's histogram (the right one on a tie, as LightGBM does); the
        // larger one's is the parent's minus it.
        let mut parent_hist = std::mem::take(&mut leaves[index].hist);
        let (left_rows, right_rows) = order[begin..begin + len].split_at(left_len);
        let (small_rows, small_sums, small_is_left) =
            if left_len < len - left_len { (left_rows, split.left, true) } else { (right_rows, split.right, false) };
        let features = std::mem::take(&mut leaves[index].features);
        let mut small = buffers.take(data.slots());
        let small_parts = hist::split_parts(data, &mut small);
        let parent_parts = hist::split_parts(data, &mut parent_hist);
        let pairs: Vec<_> = small_parts.into_iter().zip(parent_parts).collect();
        let found = in_parts(data, pairs, |p, (small, large)| {
            let features = hist::features_in(data, p, &features);
            hist::build_part(data, p, small_rows, (grad, hess), small_sums, features, small);
            hist::subtract_part(data, p, large, small, features);
            let (left, right) = if small_is_left { (&*small, &*large) } else { (&*large, &*small) };
            (
                hist::best_split(data, p, left, split.left, growth.rules, features),
                hist::best_split(data, p, right, split.right, growth.rules, features),
            )
        });
        let (left_found, right_found): (Vec<_>, Vec<_>) = found.into_iter().unzip();
        let ((left_split, left_features), (right_split, right_features)) = (merge(left_found), merge(right_found));
        let (left_hist, right_hist) = if small_is_left { (small, parent_hist) } else { (parent_hist, small) };
        let depth = leaves[index].depth + 1;
        leaves[index] = Leaf {
            begin,
            len: left_len,
            depth,
            hist: left_hist,
            split: left_split,
            features: left_features,
            output: split.left_output,
            parent: Some((node, true)),
        };
        leaves.push(Leaf {
            begin: begin + left_len,
            len: len - left_len,
            depth,
            hist: right_hist,
            split: right_split,
            features: right_features,
            output: split.right_output,
            parent: Some((node, false)),
        });
    }
    // As LightGBM shrinks: values within its zero threshold become 0.
    tree.leaf_value = leaves
        .iter()
        .map(|l| l.output * growth.learning_rate)
        .map(|v| if v.abs() <= f64::from(1e-35_f32) || !v.is_finite() { 0.0 } else { v })
        .collect();
    let ranges = leaves.iter().map(|l| (l.begin, l.len)).collect();
    for leaf in leaves {
        buffers.give(leaf.hist);
    }
    (tree, ranges)
}

/// Runs `work` on every part (with that part's share of the histograms), in parallel
/// when there are several, and returns the results in part order.
fn in_parts<T: Send, R: Send>(data: &Binned, shares: Vec<T>, work: impl Fn(usize, T) -> R + Sync) -> Vec<R> {
    use rayon::prelude::*;
    if data.parts.len() == 1 {
        return shares.into_iter().enumerate().map(|(p, share)| work(p, share)).collect();
    }
    shares.into_par_iter().enumerate().map(|(p, share)| work(p, share)).collect()
}

/// The best split over the parts (ties: the lower feature, as the parts are in feature
/// order) and the features that can still split, in order.
fn merge(found: Vec<(Option<Split>, Vec<u32>)>) -> (Option<Split>, Vec<u32>) {
    let mut best: Option<Split> = None;
    let mut features = Vec::new();
    for (split, part) in found {
        if let Some(split) = split
            && best.is_none_or(|b| split.gain > b.gain)
        {
            best = Some(split);
        }
        features.extend(part);
    }
    (best, features)
}

/// Stable partition of `rows` by `column[row] <= bin`; returns the number on the left.
fn partition(column: &[u8], rows: &mut [u32], bin: u8, scratch: &mut Vec<u32>) -> usize {
    scratch.clear();
    let mut left = 0;
    for i in 0..rows.len() {
        let r = rows[i];
        if column[r as usize] <= bin {
            rows[left] = r;
            left += 1;
        } else {
            scratch.push(r);
        }
    }
    rows[left..].copy_from_slice(scratch);
    left
}
