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
        let mut others = Sums::default();
        for bin in bins.iter() {
            others.add(*bin);
        }
        bins[common] = total.minus(others); // the common bin got nothing above
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
}

fn score(sums: Sums, lambda_l2: f64) -> f64 {
    sums.grad * sums.grad / (sums.hess + lambda_l2)
}

/// The split with the largest gain over `features` (ties: the lower feature, then the
/// lower bin), if any gains more than `rules.min_gain`, and the features that have any
/// split within the limits. A feature without one cannot have one in a child leaf either
/// (a child's rows and hessians on each side are at most its parent's), so children
/// search only these.
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
    let parent = score(total, rules.lambda_l2);
    let mut best: Option<Split> = None;
    let mut feasible = Vec::with_capacity(features.len());
    for &f in features {
        let f = f as usize;
        let bins = &hist[data.offsets[f] - base..data.offsets[f + 1] - base];
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
