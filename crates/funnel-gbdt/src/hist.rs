//! Gradient histograms of a leaf's rows and the best split they allow.

use crate::bins::Binned;

/// Sums of gradients, hessians and rows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Sums {
    pub grad: f64,
    pub hess: f64,
    pub count: u32,
}

impl Sums {
    fn add(&mut self, other: Sums) {
        self.grad += other.grad;
        self.hess += other.hess;
        self.count += other.count;
    }

    pub fn minus(self, other: Sums) -> Sums {
        Sums { grad: self.grad - other.grad, hess: self.hess - other.hess, count: self.count - other.count }
    }

    pub fn of(rows: &[u32], grad: &[f64], hess: &[f64]) -> Sums {
        let mut sums = Sums::default();
        for &r in rows {
            sums.add(Sums { grad: grad[r as usize], hess: hess[r as usize], count: 1 });
        }
        sums
    }
}

/// Histogram buffers kept between leaves and trees, so that growing a tree allocates
/// (and the kernel zeroes) no fresh memory.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    free: Vec<Vec<Sums>>,
}

impl Buffers {
    /// A histogram of `slots` bins, not zeroed: [`build_part`] zeroes the features it
    /// builds, and only those are read.
    pub fn take(&mut self, slots: usize) -> Vec<Sums> {
        let mut hist = self.free.pop().unwrap_or_default();
        hist.resize(slots, Sums::default());
        hist
    }

    pub fn give(&mut self, hist: Vec<Sums>) {
        if hist.capacity() > 0 {
            self.free.push(hist);
        }
    }
}

/// A histogram cut into the data's parts: `part[i]` holds the slots of `data.parts[i]`.
pub(crate) fn split_parts<'a>(data: &Binned, mut hist: &'a mut [Sums]) -> Vec<&'a mut [Sums]> {
    let mut parts = Vec::with_capacity(data.parts.len());
    for range in &data.parts {
        let (part, rest) = hist.split_at_mut(data.offsets[range.end] - data.offsets[range.start]);
        parts.push(part);
        hist = rest;
    }
    parts
}

/// The features of `features` (sorted) that fall in part `p`.
pub(crate) fn features_in<'a>(data: &Binned, p: usize, features: &'a [u32]) -> &'a [u32] {
    let range = &data.parts[p];
    let lo = features.partition_point(|&f| (f as usize) < range.start);
    let hi = features.partition_point(|&f| (f as usize) < range.end);
    &features[lo..hi]
}

/// Part `p` of the histogram of `rows`, whose totals are `total`, for `features` (of
/// that part): sums of the rows' sparse bins, and each feature's common bin as the rest.
/// The bins of other features are left undefined (nothing reads them).
pub(crate) fn build_part(
    data: &Binned,
    p: usize,
    rows: &[u32],
    (grad, hess): (&[f64], &[f64]),
    total: Sums,
    features: &[u32],
    hist: &mut [Sums],
) {
    let base = data.offsets[data.parts[p].start];
    for &f in features {
        hist[data.offsets[f as usize] - base..data.offsets[f as usize + 1] - base].fill(Sums::default());
    }
    for &r in rows {
        let r = r as usize;
        let (g, h) = (grad[r], hess[r]);
        for &slot in data.part_slots(r, p) {
            let bin = &mut hist[slot as usize - base];
            bin.grad += g;
            bin.hess += h;
            bin.count += 1;
        }
    }
    for &f in features {
        let (f, common) = (f as usize, usize::from(data.mappers[f as usize].common));
        let bins = &mut hist[data.offsets[f] - base..data.offsets[f + 1] - base];
        // The common bin got nothing above: it is the rest, subtracted bin by bin as
        // LightGBM does (the same sums to the last bit).
        let mut rest = total;
        for (b, bin) in bins.iter().enumerate() {
            if b != common {
                rest = rest.minus(*bin);
            }
        }
        bins[common] = rest;
    }
}

/// Turns part `p` of `parent` into `parent - child` for `features`: the sibling's
/// histogram without visiting its rows.
pub(crate) fn subtract_part(data: &Binned, p: usize, parent: &mut [Sums], child: &[Sums], features: &[u32]) {
    let base = data.offsets[data.parts[p].start];
    for &f in features {
        let range = data.offsets[f as usize] - base..data.offsets[f as usize + 1] - base;
        for (p, c) in parent[range.clone()].iter_mut().zip(&child[range]) {
            *p = p.minus(*c);
        }
    }
}

/// Limits a split must respect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SplitRules {
    pub min_data_in_leaf: u32,
    pub min_sum_hessian: f64,
    pub lambda_l2: f64,
    pub min_gain: f64,
}

/// A candidate split: rows whose bin of `feature` is `<= bin` go left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Split {
    pub feature: usize,
    pub bin: u8,
    pub gain: f64,
    pub left: Sums,
    pub right: Sums,
    /// Each child's value, −G / (H + λ), before the learning rate.
    pub left_output: f64,
    pub right_output: f64,
}

/// The split with the largest gain over `features` (ties: the lower feature, then the
/// higher bin), if any gains more than `rules.min_gain`, and the features that have a
/// gaining split. Children search only these (LightGBM's pruning: a feature that gains
/// nothing in a leaf is not tried in its children).
/// `hist` is part `p`'s slots; `features` are in that part.
pub(crate) fn best_split(
    data: &Binned,
    p: usize,
    hist: &[Sums],
    total: Sums,
    rules: SplitRules,
    features: &[u32],
) -> (Option<Split>, Vec<u32>) {
    let base = data.offsets[data.parts[p].start];
    if total.count < 2 * rules.min_data_in_leaf {
        return (None, Vec::new()); // no split can leave enough rows on both sides
    }
    let mut best: Option<Split> = None;
    let mut gaining = Vec::with_capacity(features.len());
    let mut scratch = Scratch::default();
    for &f in features {
        let f = f as usize;
        let bins = &hist[data.offsets[f] - base..data.offsets[f + 1] - base];
        let common = usize::from(data.mappers[f].common);
        let Some(split) = best_in_feature(f, bins, common, total, rules, &mut scratch) else { continue };
        gaining.push(f as u32);
        if best.is_none_or(|b| split.gain > b.gain) {
            best = Some(split);
        }
    }
    (best, gaining)
}

/// LightGBM's `kEpsilon`, added to hessian sums.
const EPSILON: f64 = 1e-15_f32 as f64;

/// Per-threshold sums and gains of one feature, reused across features (every slot a
/// feature reads is written first).
struct Scratch {
    right_grads: [f64; 257],
    right_hesses: [f64; 257],
    gains: [f64; 257],
    valid: [bool; 257],
}

impl Default for Scratch {
    fn default() -> Self {
        Self { right_grads: [0.0; 257], right_hesses: [0.0; 257], gains: [0.0; 257], valid: [false; 257] }
    }
}

/// The best split of one feature that gains more than `rules.min_gain`, found as
/// LightGBM finds it, so that the same data and settings grow the same trees: bins are
/// scanned from the highest down (of splits that part the rows alike, the highest
/// threshold wins), `min_data_in_leaf` counts each bin's rows as
/// round(hessian × rows / leaf hessian), the estimate LightGBM keeps instead of counts,
/// and gains, sums and outputs are computed in LightGBM's order with its epsilons.
fn best_in_feature(
    f: usize,
    bins: &[Sums],
    common: usize,
    total: Sums,
    rules: SplitRules,
    scratch: &mut Scratch,
) -> Option<Split> {
    if bins[common].count == total.count {
        return None; // every row of the leaf is in one bin
    }
    let leaf_gain = |g: f64, h: f64| g * g / (h + rules.lambda_l2);
    let sum_hessian = total.hess + 2.0 * EPSILON;
    let rows_per_hessian = f64::from(total.count) / sum_hessian;
    let min_gain_shift = leaf_gain(total.grad, sum_hessian) + rules.min_gain;
    let min_rows = i64::from(rules.min_data_in_leaf);
    // First the right side's sums at each threshold, top down, and the thresholds within
    // the limits (LightGBM's `continue` and `break`); then every gain at once (divisions
    // vectorise); then the best, top down.
    let n = bins.len();
    let Scratch { right_grads, right_hesses, gains, valid } = scratch;
    let (mut right_grad, mut right_hess, mut right_rows) = (0.0, EPSILON, 0i64);
    let mut lowest = n;
    for b in (1..n).rev() {
        right_grad += bins[b].grad;
        right_hess += bins[b].hess;
        right_rows += (bins[b].hess * rows_per_hessian + 0.5) as i64;
        (right_grads[b], right_hesses[b], valid[b]) = (right_grad, right_hess, false);
        if right_rows < min_rows || right_hess < rules.min_sum_hessian {
            continue;
        }
        if i64::from(total.count) - right_rows < min_rows || sum_hessian - right_hess < rules.min_sum_hessian {
            break;
        }
        valid[b] = true;
        lowest = b;
    }
    if lowest == n {
        return None;
    }
    for b in lowest..n {
        let (rg, rh) = (right_grads[b], right_hesses[b]);
        gains[b] = leaf_gain(total.grad - rg, sum_hessian - rh) + leaf_gain(rg, rh);
    }
    let mut best_gain = f64::NEG_INFINITY;
    let mut best_at = None;
    for b in (lowest..n).rev() {
        if valid[b] && gains[b] > min_gain_shift && gains[b] > best_gain {
            (best_gain, best_at) = (gains[b], Some(b));
        }
    }
    let b = best_at?;
    let right_count: u32 = bins[b..].iter().map(|bin| bin.count).sum();
    let (left_grad, left_hess, left_count) =
        (total.grad - right_grads[b], sum_hessian - right_hesses[b], total.count - right_count);
    let output = |g: f64, h: f64| -g / (h + rules.lambda_l2);
    let (right_grad, right_hess) = (total.grad - left_grad, sum_hessian - left_hess);
    Some(Split {
        feature: f,
        bin: (b - 1) as u8,
        gain: best_gain - min_gain_shift + rules.min_gain,
        left: Sums { grad: left_grad, hess: left_hess - EPSILON, count: left_count },
        right: Sums { grad: right_grad, hess: right_hess - EPSILON, count: total.count - left_count },
        left_output: output(left_grad, left_hess),
        right_output: output(right_grad, right_hess),
    })
}
