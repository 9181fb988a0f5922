//! Gradient histograms of a leaf's rows and the best split they allow.

use rayon::prelude::*;

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

/// Rows below which a histogram is built by one task.
const ROWS_PER_TASK: usize = 512;
/// At most this many tasks build one histogram. A fixed number, not the thread count, so
/// that the sums (and so the trees) are the same on any number of threads.
const MAX_TASKS: usize = 4;

/// Histogram buffers kept between leaves and trees, so that growing a tree allocates
/// (and the kernel zeroes) no fresh memory.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    free: Vec<Vec<Sums>>,
}

impl Buffers {
    /// A zeroed histogram of `slots` bins.
    pub fn take(&mut self, slots: usize) -> Vec<Sums> {
        let mut hist = self.free.pop().unwrap_or_default();
        hist.clear();
        hist.resize(slots, Sums::default());
        hist
    }

    pub fn give(&mut self, hist: Vec<Sums>) {
        if hist.capacity() > 0 {
            self.free.push(hist);
        }
    }
}

fn accumulate(data: &Binned, rows: &[u32], grad: &[f64], hess: &[f64], hist: &mut [Sums]) {
    for &r in rows {
        let r = r as usize;
        let (g, h) = (grad[r], hess[r]);
        for &slot in &data.row_slots[data.row_start[r]..data.row_start[r + 1]] {
            let bin = &mut hist[slot as usize];
            bin.grad += g;
            bin.hess += h;
            bin.count += 1;
        }
    }
}

/// The histogram (one `Sums` per bin of every feature) of `rows`, whose totals are `total`.
pub(crate) fn build(
    data: &Binned,
    rows: &[u32],
    grad: &[f64],
    hess: &[f64],
    total: Sums,
    features: &[u32],
    buffers: &mut Buffers,
) -> Vec<Sums> {
    let slots = data.slots();
    let mut hist = buffers.take(slots);
    let tasks = (rows.len() / ROWS_PER_TASK).clamp(1, MAX_TASKS);
    if tasks == 1 {
        accumulate(data, rows, grad, hess, &mut hist);
    } else {
        let chunk = rows.len().div_ceil(tasks);
        let mut parts: Vec<Vec<Sums>> = (1..tasks).map(|_| buffers.take(slots)).collect();
        let (first, rest) = rows.split_at(chunk);
        rayon::join(
            || accumulate(data, first, grad, hess, &mut hist),
            || {
                parts.par_iter_mut().zip(rest.par_chunks(chunk)).for_each(|(part, rows)| {
                    accumulate(data, rows, grad, hess, part);
                })
            },
        );
        for part in parts {
            for (x, y) in hist.iter_mut().zip(&part) {
                x.add(*y);
            }
            buffers.give(part);
        }
    }
    // The common bin of each feature holds whatever the other bins do not (only the
    // features that may still split are made right).
    for &f in features {
        let (f, mapper) = (f as usize, &data.mappers[f as usize]);
        let range = data.offsets[f]..data.offsets[f + 1];
        let mut others = Sums::default();
        for bin in &hist[range.clone()] {
            others.add(*bin);
        }
        hist[range.start + usize::from(mapper.common)] = total.minus(others);
    }
    hist
}

/// Turns `parent` into `parent - child`, bin by bin, for `features`: the sibling's
/// histogram without visiting its rows.
pub(crate) fn subtract(data: &Binned, parent: &mut [Sums], child: &[Sums], features: &[u32]) {
    for &f in features {
        let range = data.offsets[f as usize]..data.offsets[f as usize + 1];
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
}

fn score(sums: Sums, lambda_l2: f64) -> f64 {
    sums.grad * sums.grad / (sums.hess + lambda_l2)
}

/// The split with the largest gain over `features` (ties: the lower feature, then the
/// lower bin), if any gains more than `rules.min_gain`, and the features that have any
/// split within the limits. A feature without one cannot have one in a child leaf either
/// (a child's rows and hessians on each side are at most its parent's), so children
/// search only these.
pub(crate) fn best_split(
    data: &Binned,
    hist: &[Sums],
    total: Sums,
    rules: SplitRules,
    features: &[u32],
) -> (Option<Split>, Vec<u32>) {
    if total.count < 2 * rules.min_data_in_leaf {
        return (None, Vec::new()); // no split can leave enough rows on both sides
    }
    let parent = score(total, rules.lambda_l2);
    let mut best: Option<Split> = None;
    let mut feasible = Vec::with_capacity(features.len());
    for &f in features {
        let f = f as usize;
        let bins = &hist[data.offsets[f]..data.offsets[f + 1]];
        let common = usize::from(data.mappers[f].common);
        let (any, split) = best_in_feature(f, bins, common, total, parent, rules);
        if any {
            feasible.push(f as u32);
        }
        if let Some(split) = split
            && best.is_none_or(|b| split.gain > b.gain)
        {
            best = Some(split);
        }
    }
    (best, feasible)
}

/// Whether any split of one feature is within the limits, and the best one that gains.
fn best_in_feature(
    f: usize,
    bins: &[Sums],
    common: usize,
    total: Sums,
    parent: f64,
    rules: SplitRules,
) -> (bool, Option<Split>) {
    if bins[common].count == total.count {
        return (false, None); // every row of the leaf is in one bin
    }
    let mut any = false;
    let mut left = Sums::default();
    // A split's score gl²/hl' + gr²/hr' (h' = h + λ > 0) is kept as the fraction
    // (gl²·hr' + gr²·hl') / (hl'·hr') and compared by cross-multiplying: no division per
    // bin. To beat: the parent's score plus the minimum gain, then the best so far.
    let (mut best_num, mut best_den) = (parent + rules.min_gain, 1.0);
    let mut best_at: Option<(usize, Sums)> = None;
    for (b, bin) in bins.iter().enumerate().take(bins.len() - 1) {
        if bin.count == 0 {
            continue; // the same split as the bin before
        }
        left.add(*bin);
        if left.count < rules.min_data_in_leaf || left.hess < rules.min_sum_hessian {
            continue;
        }
        let right = total.minus(left);
        if right.count < rules.min_data_in_leaf {
            break;
        }
        if right.hess < rules.min_sum_hessian {
            continue;
        }
        any = true;
        let (hl, hr) = (left.hess + rules.lambda_l2, right.hess + rules.lambda_l2);
        if hl <= 0.0 || hr <= 0.0 {
            continue;
        }
        let (num, den) = (left.grad * left.grad * hr + right.grad * right.grad * hl, hl * hr);
        if num * best_den > best_num * den {
            (best_num, best_den) = (num, den);
            best_at = Some((b, left));
        }
    }
    let best = best_at.and_then(|(b, left)| {
        let right = total.minus(left);
        let gain = score(left, rules.lambda_l2) + score(right, rules.lambda_l2) - parent;
        (gain > rules.min_gain).then_some(Split { feature: f, bin: b as u8, gain, left, right })
    });
    (any, best)
}
