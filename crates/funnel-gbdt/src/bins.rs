//! Feature binning: each feature's values map to at most `max_bin` ordered bins, and
//! the training rows are stored as bin numbers twice — by column, to route rows at a
//! split, and as sparse rows of the bins that differ from the feature's common one (see
//! [`BinMapper::common`]), to build histograms without touching the common bin.

/// Upper bounds of one feature's bins: value `v` falls in the first bin `i` with
/// `v <= upper[i]`; the last bin has no bound.
#[derive(Debug, Clone)]
pub(crate) struct BinMapper {
    pub upper: Vec<f64>,
    /// The bin left implicit in sparse rows (its sums are the leaf's total less the
    /// others): the fullest bin when it holds 70% of the rows or more, else zero's.
    pub common: u8,
}

/// Values within this of 0 are zeros (LightGBM's `kZeroThreshold`, a float).
const ZERO: f64 = 1e-35_f32 as f64;

impl BinMapper {
    /// Bins from a feature's values (NaN counts as 0), as LightGBM bins them so that the
    /// same data grow the same trees (LightGBM gives NaN a bin of its own and bins from
    /// a sample of 200,000 rows; Funnel counts NaN as 0 and bins every row): zero gets a
    /// bin of its own; the negative and the positive values are binned apart (the negative side gets its share of the
    /// `max_bin − 1` other bins). On a side with at most that many distinct values each
    /// value gets its own bin, except that a bin closes only once it holds
    /// `min_data_in_bin` rows; otherwise bins hold about equal numbers of rows, a value
    /// that alone fills a bin keeping one.
    pub fn fit(values: &mut [f32], max_bin: usize, min_data_in_bin: usize) -> BinMapper {
        // Zeros (and NaN, which counts as 0) are counted, not sorted: features are often sparse.
        let mut nonzero = 0;
        let total = values.len();
        for i in 0..values.len() {
            let v = values[i];
            if f64::from(v).abs() > ZERO && !v.is_nan() {
                values[nonzero] = v;
                nonzero += 1;
            }
        }
        let values = &mut values[..nonzero];
        values.sort_unstable_by(f32::total_cmp);
        let mut distinct: Vec<(f64, usize)> = Vec::new();
        for &v in values.iter() {
            match distinct.last_mut() {
                Some((last, count)) if *last == f64::from(v) => *count += 1,
                _ => distinct.push((f64::from(v), 1)),
            }
        }
        let negatives = distinct.partition_point(|&(v, _)| v < 0.0);
        let (left, right) = distinct.split_at(negatives);
        let rows = |side: &[(f64, usize)]| side.iter().map(|&(_, n)| n).sum::<usize>();
        let mut upper = Vec::new();
        if !left.is_empty() && max_bin > 1 {
            let share = rows(left) as f64 / nonzero as f64 * (max_bin - 1) as f64;
            upper = greedy_bounds(left, (share as usize).max(1), rows(left), min_data_in_bin);
            upper.push(-ZERO); // the last negative bin ends where zero's begins
        }
        let room = max_bin.saturating_sub(1 + upper.len());
        if !right.is_empty() && room > 0 {
            upper.push(ZERO);
            upper.extend(greedy_bounds(right, room, rows(right), min_data_in_bin));
        }
        let mut mapper = BinMapper { upper, common: 0 };
        let zero_bin = usize::from(mapper.bin(0.0));
        let mut counts = vec![0usize; mapper.bins()];
        counts[zero_bin] += total - nonzero;
        for &(v, count) in &distinct {
            counts[usize::from(mapper.bin(v as f32))] += count;
        }
        // LightGBM's rule: the fullest bin, unless it holds under 70% of the rows and is not
        // zero's (then zero's).
        let fullest = (0..counts.len()).max_by_key(|&b| (counts[b], std::cmp::Reverse(b))).unwrap_or(0);
        let dense = (counts[fullest] as f64) < 0.7 * total as f64;
        mapper.common = if fullest != zero_bin && dense { zero_bin } else { fullest } as u8;
        mapper
    }

    pub fn bins(&self) -> usize {
        self.upper.len() + 1
    }

    pub fn bin(&self, value: f32) -> u8 {
        let value = if value.is_nan() { 0.0 } else { f64::from(value) };
        self.upper.partition_point(|&u| u < value) as u8
    }
}

/// LightGBM's greedy binning of one side's sorted distinct values (with their row
/// counts) into at most `max_bin` bins: the upper bounds of all but the last bin, each
/// the midpoint between the last value of a bin and the first of the next.
fn greedy_bounds(distinct: &[(f64, usize)], max_bin: usize, total: usize, min_data_in_bin: usize) -> Vec<f64> {
    let mut bounds: Vec<f64> = Vec::new();
    let mut push = |bound: f64| {
        let bound = bound.next_up();
        if bounds.last().is_none_or(|&last| bound > last.next_up()) {
            bounds.push(bound);
            true
        } else {
            false
        }
    };
    if distinct.len() <= max_bin {
        let mut in_bin = 0;
        for pair in distinct.windows(2) {
            in_bin += pair[0].1;
            if in_bin >= min_data_in_bin && push((pair[0].0 + pair[1].0) / 2.0) {
                in_bin = 0;
            }
        }
        return bounds;
    }
    let max_bin = match min_data_in_bin {
        0 => max_bin,
        m => max_bin.min(total / m).max(1),
    };
    let mut mean = total as f64 / max_bin as f64;
    let big: Vec<bool> = distinct.iter().map(|&(_, n)| n as f64 >= mean).collect();
    // Signed, and divided by even at 0 (infinite or NaN means), as LightGBM's ints are.
    let mut rest_bins = max_bin as i64 - big.iter().filter(|&&b| b).count() as i64;
    let mut rest_rows = total - distinct.iter().zip(&big).filter(|(_, b)| **b).map(|(d, _)| d.1).sum::<usize>();
    mean = rest_rows as f64 / rest_bins as f64;
    // (last value, next bin's first value) of each closed bin.
    let mut cuts: Vec<(f64, f64)> = Vec::new();
    let mut in_bin = 0;
    for i in 0..distinct.len() - 1 {
        if !big[i] {
            rest_rows -= distinct[i].1;
        }
        in_bin += distinct[i].1;
        let half = (mean * 0.5).max(1.0);
        if big[i] || in_bin as f64 >= mean || (big[i + 1] && in_bin as f64 >= half) {
            cuts.push((distinct[i].0, distinct[i + 1].0));
            if cuts.len() + 1 >= max_bin {
                break;
            }
            in_bin = 0;
            if !big[i] {
                rest_bins -= 1;
                mean = rest_rows as f64 / rest_bins as f64;
            }
        }
    }
    for (last, next) in cuts {
        push((last + next) / 2.0);
    }
    bounds
}

/// The training matrix as bins.
#[derive(Debug)]
pub(crate) struct Binned {
    pub mappers: Vec<BinMapper>,
    /// Where each feature's bins start in a histogram; `offsets[f + 1] - offsets[f]` bins.
    pub offsets: Vec<usize>,
    /// `columns[f][row]`: the row's bin of feature `f`.
    pub columns: Vec<Vec<u8>>,
    /// Sparse rows: histogram slots of the bins that are not their feature's common bin,
    /// row after row (each row's part by part, see `part_starts`).
    pub row_slots: Vec<u32>,
    /// Features cut into consecutive ranges of about equal work, one per thread: a leaf's
    /// histogram and split search are done part by part in parallel.
    pub parts: Vec<std::ops::Range<usize>>,
    /// Row `r`'s slots of part `p` are `row_slots[part_starts[r * (P + 1) + p]..][..next]`.
    pub part_starts: Vec<usize>,
}

impl Binned {
    /// Bins a row-major matrix (`rows × width`).
    pub fn new(values: &[f32], width: usize, max_bin: usize, min_data_in_bin: usize, parts: usize) -> Binned {
        use rayon::prelude::*;
        let rows = values.len().checked_div(width).unwrap_or(0);
        let (mappers, columns): (Vec<BinMapper>, Vec<Vec<u8>>) = (0..width)
            .into_par_iter()
            .map(|f| {
                let column: Vec<f32> = (0..rows).map(|r| values[r * width + f]).collect();
                let mapper = BinMapper::fit(&mut column.clone(), max_bin, min_data_in_bin);
                let bins = column.iter().map(|&v| mapper.bin(v)).collect();
                (mapper, bins)
            })
            .unzip();
        let mut offsets = Vec::with_capacity(width + 1);
        offsets.push(0);
        for mapper in &mappers {
            offsets.push(offsets.last().copied().unwrap_or(0) + mapper.bins());
        }
        // Feature by feature (contiguous columns): count each row's slots, then fill them.
        let mut row_start = vec![0usize; rows + 1];
        for (column, mapper) in columns.iter().zip(&mappers) {
            for (r, &bin) in column.iter().enumerate() {
                row_start[r + 1] += usize::from(bin != mapper.common);
            }
        }
        for r in 0..rows {
            row_start[r + 1] += row_start[r];
        }
        let mut next = row_start[..rows].to_vec();
        let mut row_slots = vec![0u32; row_start[rows]];
        for (f, (column, mapper)) in columns.iter().zip(&mappers).enumerate() {
            for (r, &bin) in column.iter().enumerate() {
                if bin != mapper.common {
                    row_slots[next[r]] = (offsets[f] + usize::from(bin)) as u32;
                    next[r] += 1;
                }
            }
        }
        let parts = cut_features(&row_slots, &offsets, parts.max(1));
        let mut part_starts = Vec::with_capacity(rows * (parts.len() + 1));
        for r in 0..rows {
            let slots = &row_slots[row_start[r]..row_start[r + 1]];
            for part in &parts {
                let first_slot = offsets[part.start] as u32;
                part_starts.push(row_start[r] + slots.partition_point(|&s| s < first_slot));
            }
            part_starts.push(row_start[r + 1]);
        }
        Binned { mappers, offsets, columns, row_slots, parts, part_starts }
    }

    /// Row `r`'s slots in part `p`.
    pub fn part_slots(&self, r: usize, p: usize) -> &[u32] {
        let at = r * (self.parts.len() + 1) + p;
        &self.row_slots[self.part_starts[at]..self.part_starts[at + 1]]
    }

    pub fn width(&self) -> usize {
        self.mappers.len()
    }

    pub fn slots(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }
}

/// Cuts the features into `parts` consecutive ranges of about equal work: the sparse
/// entries a histogram adds up plus the bins a split search scans.
fn cut_features(row_slots: &[u32], offsets: &[usize], parts: usize) -> Vec<std::ops::Range<usize>> {
    let width = offsets.len() - 1;
    let mut work: Vec<usize> = (0..width).map(|f| 4 * (offsets[f + 1] - offsets[f])).collect();
    for &slot in row_slots {
        work[offsets.partition_point(|&o| o <= slot as usize) - 1] += 1;
    }
    let total: usize = work.iter().sum();
    let mut cuts = vec![0];
    let mut done = 0;
    for (f, w) in work.iter().enumerate() {
        done += w;
        if cuts.len() < parts && done * parts >= total * cuts.len() && f + 1 < width {
            cuts.push(f + 1);
        }
    }
    cuts.push(width);
    cuts.windows(2).map(|w| w[0]..w[1]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_has_its_own_bin_and_other_bounds_are_midpoints() {
        let mut values = vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0];
        let mapper = BinMapper::fit(&mut values, 255, 3);
        assert_eq!(mapper.upper, [ZERO, 1.5f64.next_up()]);
        let bins = [0.0, 1e-36, 0.5, 1.5, 1.6, 9.0].map(|v| mapper.bin(v));
        assert_eq!(bins, [0, 0, 1, 1, 2, 2]);
        assert_eq!(mapper.common, 0, "the fullest bin (2) holds under 70% of the rows: zero's is common");
        let mut mostly_two = vec![2.0; 8];
        mostly_two.extend([0.0, 1.0]);
        assert_eq!(BinMapper::fit(&mut mostly_two, 255, 1).common, 2);
        // Negative values are binned apart, below zero's bin.
        let mut values = vec![-2.0, -2.0, -2.0, -1.0, -1.0, -1.0, 0.0, 0.0, 3.0, 3.0, 3.0];
        let mapper = BinMapper::fit(&mut values, 255, 3);
        assert_eq!(mapper.upper, [(-1.5f64).next_up(), -ZERO, ZERO]);
        assert_eq!([-2.0, -1.0, 0.0, 3.0].map(|v| mapper.bin(v)), [0, 1, 2, 3]);
    }

    #[test]
    fn rare_values_share_a_bin_and_many_values_are_capped() {
        let mut values = vec![0.0, 1.0, 2.0, 3.0, 3.0, 3.0];
        assert_eq!(BinMapper::fit(&mut values, 255, 3).upper, [ZERO], "1 and 2 close no bin of their own");
        let mut many: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let mapper = BinMapper::fit(&mut many, 16, 3);
        assert!(mapper.bins() <= 16 && mapper.bins() >= 15, "{} bins", mapper.bins());
        let mut heavy: Vec<f32> = (0..1000).map(|i| if i < 500 { 7.0 } else { i as f32 }).collect();
        let mapper = BinMapper::fit(&mut heavy, 16, 3);
        assert!(mapper.bin(7.0) != mapper.bin(500.0), "a value that alone fills a bin keeps one");
    }

    #[test]
    fn sparse_rows_skip_the_common_bin() {
        // 4 rows × 2 features; feature 0 is mostly 0, feature 1 mostly 5.
        // Feature 1 has no zeros: its zero bin stays empty.
        let values = [0.0, 5.0, 0.0, 5.0, 4.0, 5.0, 7.0, 1.0];
        let binned = Binned::new(&values, 2, 255, 1, 2);
        assert_eq!(binned.offsets, [0, 3, 6]);
        assert_eq!(binned.columns[0], [0, 0, 1, 2]);
        assert_eq!(binned.columns[1], [2, 2, 2, 1]);
        assert_eq!(binned.row_slots, [1, 2, 4]);
        assert_eq!(binned.parts, [0..1, 1..2]);
        assert_eq!((binned.part_slots(3, 0), binned.part_slots(3, 1)), (&[2][..], &[4][..]));
    }
}
