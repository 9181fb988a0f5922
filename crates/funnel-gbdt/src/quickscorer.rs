//! QuickScorer (Lucchese et al., SIGIR 2015), vectorised over rows: a model's nodes
//! regrouped by feature and sorted by threshold, so that scoring is a scan of each
//! feature's thresholds below the row's value rather than a walk down each tree.
//!
//! A tree's leaves are numbered from the left; a row starts with every leaf of every
//! tree reachable (all bits set). Each node the row goes right at (value > threshold)
//! clears the leaves of its left subtree, and the row's leaf is then the lowest bit still
//! set. Rows are scored two SIMD registers at a time (16 rows with AVX2 or NEON, 32 with
//! AVX-512, chosen at run time; without 8-lane SIMD the trees are walked instead): one
//! comparison and one masked AND per node for all of them, and a feature's scan stops
//! at the first threshold none of them exceeds; features no node splits on are never
//! read. Trees
//! of at most 32 leaves fit a `u32` per row. Each row's leaf values are added in tree
//! order, so scores equal the trees' own exactly.

use pulp::{Simd, WithSimd};

use crate::{Model, Tree};

/// The most leaves a tree may have to be scored this way.
pub(crate) const MAX_LEAVES: usize = 32;

#[derive(Debug, Clone)]
pub(crate) struct Bitvectors {
    /// The features some node splits on, ascending; the `i`th one's nodes are
    /// `starts[i]..starts[i + 1]` of the three arrays below, by threshold, ascending.
    features: Vec<usize>,
    starts: Vec<usize>,
    thresholds: Vec<f32>,
    trees: Vec<u32>,
    /// The leaves still reachable when a row goes right at the node: every bit but its
    /// left subtree's.
    masks: Vec<u32>,
    /// Per tree, `MAX_LEAVES` slots: its leaf values from the left.
    leaf_values: Vec<f64>,
}

/// The leaves under `node` (a child index as `Tree` stores them), from the left.
fn leaves_under(tree: &Tree, node: i32, out: &mut Vec<usize>) {
    if node < 0 {
        out.push(!node as usize);
    } else if tree.feature.is_empty() {
        out.push(0);
    } else {
        leaves_under(tree, tree.left[node as usize], out);
        leaves_under(tree, tree.right[node as usize], out);
    }
}

impl Bitvectors {
    /// `None` when a tree has more than [`MAX_LEAVES`] leaves. `round` maps the model's
    /// f64 thresholds to f32 ones that route f32 values the same way.
    pub fn new(model: &Model, round: impl Fn(f64) -> f32) -> Option<Bitvectors> {
        if model.trees.iter().any(|t| t.leaves() > MAX_LEAVES) {
            return None;
        }
        // (feature, threshold, tree, mask) of every node.
        let mut nodes: Vec<(usize, f32, u32, u32)> = Vec::new();
        let mut leaf_values = vec![0.0; model.trees.len() * MAX_LEAVES];
        let mut leaves = Vec::new();
        for (t, tree) in model.trees.iter().enumerate() {
            leaves.clear();
            leaves_under(tree, 0, &mut leaves);
            let mut position = vec![0; tree.leaves()];
            for (p, &leaf) in leaves.iter().enumerate() {
                position[leaf] = p;
                leaf_values[t * MAX_LEAVES + p] = tree.leaf_value[leaf];
            }
            for n in 0..tree.feature.len() {
                leaves.clear();
                leaves_under(tree, tree.left[n], &mut leaves);
                let mask = leaves.iter().fold(u32::MAX, |mask, &leaf| mask & !(1u32 << position[leaf]));
                nodes.push((tree.feature[n] as usize, round(tree.threshold[n]), t as u32, mask));
            }
        }
        nodes.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let (thresholds, trees, masks) = (vec![], vec![], vec![]);
        let mut bits = Bitvectors { features: vec![], starts: vec![], thresholds, trees, masks, leaf_values };
        for (i, &(feature, threshold, tree, mask)) in nodes.iter().enumerate() {
            if bits.features.last() != Some(&feature) {
                bits.features.push(feature);
                bits.starts.push(i);
            }
            bits.thresholds.push(threshold);
            bits.trees.push(tree);
            bits.masks.push(mask);
        }
        bits.starts.push(nodes.len());
        Some(bits)
    }

    /// Adds every tree's leaf value, in tree order, to `scores` (one per row of
    /// `matrix`, `width` features each, no NaN; `width` covers every split feature).
    /// Returns false, having done nothing, on a CPU without 8-lane SIMD (AVX2 or NEON),
    /// where walking the trees is faster.
    pub fn add_scores(&self, matrix: &[f32], width: usize, scores: &mut [f64]) -> bool {
        pulp::Arch::new().dispatch(Score { bits: self, matrix, width, scores })
    }
}

struct Score<'a> {
    bits: &'a Bitvectors,
    matrix: &'a [f32],
    width: usize,
    scores: &'a mut [f64],
}

/// SIMD registers of rows scored together: each node's threshold, tree and mask are
/// loaded once for all of them.
const REGISTERS: usize = 2;

impl WithSimd for Score<'_> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> bool {
        let Score { bits, matrix, width, scores } = self;
        let lanes = S::F32_LANES;
        if lanes < 8 {
            return false;
        }
        let features = bits.features.len();
        let trees = bits.leaf_values.len() / MAX_LEAVES;
        let all = simd.splat_u32s(u32::MAX);
        let mut reached = vec![[all; REGISTERS]; trees];
        let block_rows = lanes * REGISTERS;
        // The block's rows by feature (`features × block_rows`), and per feature its
        // values in registers and the largest of them.
        let mut columns = vec![f32::NEG_INFINITY; features * block_rows];
        let mut values = vec![[simd.splat_f32s(0.0); REGISTERS]; features];
        let mut largest = vec![0f32; features];
        for (block, out) in scores.chunks_mut(block_rows).enumerate() {
            let first = block * block_rows;
            if out.len() < block_rows {
                columns.fill(f32::NEG_INFINITY); // lanes past the last row: never above a threshold
            }
            for lane in 0..out.len() {
                let row = &matrix[(first + lane) * width..(first + lane + 1) * width];
                for (f, &feature) in bits.features.iter().enumerate() {
                    columns[f * block_rows + lane] = row[feature];
                }
            }
            for f in 0..features {
                let column = &columns[f * block_rows..(f + 1) * block_rows];
                for (r, register) in values[f].iter_mut().enumerate() {
                    *register = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&column[r * lanes..(r + 1) * lanes]));
                }
                let top = values[f].iter().fold(simd.splat_f32s(f32::NEG_INFINITY), |a, &b| simd.max_f32s(a, b));
                largest[f] = simd.reduce_max_f32s(top);
            }
            reached.fill([all; REGISTERS]);
            for f in 0..features {
                let range = bits.starts[f]..bits.starts[f + 1];
                let (value, top) = (values[f], largest[f]);
                let nodes =
                    bits.thresholds[range.clone()].iter().zip(&bits.trees[range.clone()]).zip(&bits.masks[range]);
                for ((&threshold, &tree), &mask) in nodes {
                    if threshold >= top {
                        break; // no row of the block goes right here, nor at any later node
                    }
                    let (threshold, mask) = (simd.splat_f32s(threshold), simd.splat_u32s(mask));
                    let tree = &mut reached[tree as usize];
                    for r in 0..REGISTERS {
                        let right = simd.greater_than_f32s(value[r], threshold);
                        tree[r] = simd.and_u32s(tree[r], simd.select_u32s(right, mask, all));
                    }
                }
            }
            // Each row's leaf values added in tree order.
            let leaf_bits: &[u32] = bytemuck::cast_slice(&reached);
            let mut sums = [0f64; 64 * REGISTERS];
            sums[..out.len()].copy_from_slice(out);
            let per_tree = bits.leaf_values.chunks_exact(MAX_LEAVES).zip(leaf_bits.chunks_exact(block_rows));
            for (leaf_values, tree_bits) in per_tree {
                for (sum, row_bits) in sums[..block_rows].iter_mut().zip(tree_bits) {
                    // A row's own leaf is never cleared, so the lowest set bit is below
                    // MAX_LEAVES; the mask only spares the bounds check.
                    debug_assert_ne!(*row_bits, 0, "every leaf of a tree cleared");
                    *sum += leaf_values[row_bits.trailing_zeros() as usize & (MAX_LEAVES - 1)];
                }
            }
            out.copy_from_slice(&sums[..out.len()]);
        }
        true
    }
}
