//! A model laid out for fast scoring of many rows. Models whose trees have at most 32
//! leaves (LightGBM's default is 31) are scored by [`crate::quickscorer`]; others walk
//! every tree's nodes, packed into one array (feature, f32 threshold, children), several
//! rows at a time, so that their independent walks overlap instead of waiting on each
//! other.

use crate::Model;
use crate::quickscorer::Bitvectors;

/// Rows walked through a tree together.
const LANES: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Node {
    feature: u32,
    /// The largest f32 not above the model's f64 threshold: for an f32 value,
    /// `v <= threshold` gives the same answer as the comparison in f64.
    threshold: f32,
    /// Node indices into `Forest::nodes` (a leaf's children are itself).
    left: i32,
    right: i32,
}

/// The compiled form of a [`Model`]; scores equal `Model::predict`'s exactly.
#[derive(Debug, Clone)]
pub struct Forest {
    init_score: f64,
    width: usize,
    nodes: Vec<Node>,
    /// Per node: the leaf value (0 for internal nodes).
    values: Vec<f64>,
    /// Per tree: its root node and the length of its longest path.
    roots: Vec<i32>,
    depths: Vec<usize>,
    /// The QuickScorer layout, when every tree has at most 32 leaves.
    bits: Option<Bitvectors>,
}

/// Steps from the root to the deepest leaf (trees from `Model::load` or `train` are
/// checked trees: every node has one parent).
fn depth(tree: &crate::Tree) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(0i32, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if node < 0 || tree.feature.is_empty() {
            deepest = deepest.max(depth);
            continue;
        }
        let n = node as usize;
        stack.push((tree.left[n], depth + 1));
        stack.push((tree.right[n], depth + 1));
    }
    deepest
}

fn round_down(threshold: f64) -> f32 {
    let t = threshold as f32;
    if f64::from(t) > threshold { t.next_down() } else { t }
}

impl Forest {
    pub fn new(model: &Model) -> Forest {
        let mut forest = Forest {
            init_score: model.init_score,
            width: model.width,
            nodes: vec![],
            values: vec![],
            roots: vec![],
            depths: vec![],
            bits: Bitvectors::new(model, round_down),
        };
        for tree in &model.trees {
            // Internal nodes first, then the leaves, each leaf a node that leads to itself.
            let base = forest.nodes.len() as i32;
            let inner = tree.feature.len() as i32;
            let map = |child: i32| if child >= 0 { base + child } else { base + inner + !child };
            for n in 0..tree.feature.len() {
                forest.nodes.push(Node {
                    feature: tree.feature[n],
                    threshold: round_down(tree.threshold[n]),
                    left: map(tree.left[n]),
                    right: map(tree.right[n]),
                });
                forest.values.push(0.0);
            }
            for (leaf, &value) in tree.leaf_value.iter().enumerate() {
                let me = base + inner + leaf as i32;
                forest.nodes.push(Node { feature: 0, threshold: f32::INFINITY, left: me, right: me });
                forest.values.push(value);
            }
            forest.roots.push(base);
            forest.depths.push(depth(tree));
        }
        forest
    }

    /// The mean over trees of the longest root-to-leaf path: the steps each row takes
    /// per tree.
    pub fn mean_depth(&self) -> f64 {
        self.depths.iter().sum::<usize>() as f64 / self.depths.len().max(1) as f64
    }

    /// Scores of a row-major matrix with `width` features per row (features the model
    /// does not know are ignored, missing ones are 0, NaN counts as 0).
    pub fn predict_rows(&self, features: &[f32], width: usize) -> Vec<f64> {
        if width == 0 {
            return Vec::new();
        }
        let rows = features.len() / width;
        // Rows padded or cut to the model's width, NaN as 0, so the walk needs no checks.
        let own: Vec<f32>;
        let matrix = if width == self.width && !features.iter().any(|v| v.is_nan()) {
            features
        } else {
            own = (0..rows)
                .flat_map(|r| {
                    let row = &features[r * width..(r + 1) * width];
                    (0..self.width).map(move |f| row.get(f).copied().filter(|v| !v.is_nan()).unwrap_or(0.0))
                })
                .collect();
            &own
        };
        let mut scores = vec![self.init_score; rows];
        if let Some(bits) = &self.bits
            && bits.add_scores(matrix, self.width, &mut scores)
        {
            return scores;
        }
        for (&root, &depth) in self.roots.iter().zip(&self.depths) {
            let mut start = 0;
            while start < rows {
                let lanes = LANES.min(rows - start);
                let mut at = [root as u32; LANES];
                // Leaves point to themselves, so every lane takes `depth` steps unchecked.
                for _ in 0..depth {
                    for (lane, node) in at.iter_mut().enumerate().take(lanes) {
                        let n = self.nodes[*node as usize];
                        let value = matrix[(start + lane) * self.width + n.feature as usize];
                        *node = if value <= n.threshold { n.left as u32 } else { n.right as u32 };
                    }
                }
                for lane in 0..lanes {
                    scores[start + lane] += self.values[at[lane] as usize];
                }
                start += lanes;
            }
        }
        scores
    }
}
