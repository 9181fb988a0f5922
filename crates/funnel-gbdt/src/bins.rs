//! Feature binning: each feature's values map to at most `max_bin` ordered bins, and
//! the training rows are stored as bin numbers twice — by column, to route rows at a
//! split, and as sparse rows of the bins that differ from the feature's most common one,
//! to build histograms without touching the common bin.

/// Upper bounds of one feature's bins: value `v` falls in the first bin `i` with
/// `v <= upper[i]`; the last bin has no bound.
#[derive(Debug, Clone)]
pub(crate) struct BinMapper {
    pub upper: Vec<f64>,
    /// The bin holding the most training rows.
    pub common: u8,
}

impl BinMapper {
    /// Bins from a feature's values (NaN counts as 0). With at most `max_bin` distinct
    /// values every value gets its own bin, except that a bin closes only once it holds
    /// `min_data_in_bin` rows; otherwise bins hold about equal numbers of rows.
    pub fn fit(values: &mut [f32], max_bin: usize, min_data_in_bin: usize) -> BinMapper {
        // Zeros (and NaN, which counts as 0) are counted, not sorted: features are often sparse.
        let mut nonzero = 0;
        for i in 0..values.len() {
            let v = values[i];
            if v != 0.0 && !v.is_nan() {
                values[nonzero] = v;
                nonzero += 1;
            }
        }
        let zeros = values.len() - nonzero;
        let values = &mut values[..nonzero];
        values.sort_unstable_by(f32::total_cmp);
        let mut distinct: Vec<(f32, usize)> = Vec::new();
        let mut zero_pending = zeros > 0;
        for &v in values.iter() {
            if zero_pending && v > 0.0 {
                distinct.push((0.0, zeros));
                zero_pending = false;
            }
            match distinct.last_mut() {
                Some((last, count)) if *last == v => *count += 1,
                _ => distinct.push((v, 1)),
            }
        }
        if zero_pending {
            distinct.push((0.0, zeros));
        }
        let total = values.len() + zeros;
        let per_bin = if distinct.len() <= max_bin {
            min_data_in_bin.max(1)
        } else {
            total.div_ceil(max_bin).max(min_data_in_bin).max(1)
        };
        let mut upper = Vec::new();
        let mut in_bin = 0;
        for pair in distinct.windows(2) {
            in_bin += pair[0].1;
            if in_bin >= per_bin && upper.len() + 1 < max_bin {
                upper.push((f64::from(pair[0].0) + f64::from(pair[1].0)) / 2.0);
                in_bin = 0;
            }
        }
        let mut mapper = BinMapper { upper, common: 0 };
        let mut counts = vec![0usize; mapper.bins()];
        for &(v, count) in &distinct {
            counts[usize::from(mapper.bin(v))] += count;
        }
        mapper.common = (0..counts.len()).max_by_key(|&b| (counts[b], std::cmp::Reverse(b))).unwrap_or(0) as u8;
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
    fn few_distinct_values_get_a_bin_each_and_bounds_are_midpoints() {
        let mut values = vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0];
        let mapper = BinMapper::fit(&mut values, 255, 3);
        assert_eq!(mapper.upper, [0.5, 1.5]);
        assert_eq!((mapper.bin(0.0), mapper.bin(0.5), mapper.bin(0.6), mapper.bin(9.0)), (0, 0, 1, 2));
        assert_eq!(mapper.common, 2);
    }

    #[test]
    fn rare_values_share_a_bin_and_many_values_are_capped() {
        let mut values = vec![0.0, 1.0, 2.0, 3.0, 3.0, 3.0];
        assert_eq!(BinMapper::fit(&mut values, 255, 3).upper, [2.5]);
        let mut many: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let mapper = BinMapper::fit(&mut many, 16, 3);
        assert!(mapper.bins() <= 16 && mapper.bins() >= 15, "{} bins", mapper.bins());
    }

    #[test]
    fn sparse_rows_skip_the_common_bin() {
        // 4 rows × 2 features; feature 0 is mostly 0, feature 1 mostly 5.
        let values = [0.0, 5.0, 0.0, 5.0, 0.0, 5.0, 7.0, 1.0];
        let binned = Binned::new(&values, 2, 255, 1, 2);
        assert_eq!(binned.offsets, [0, 2, 4]);
        assert_eq!(binned.columns[0], [0, 0, 0, 1]);
        assert_eq!(binned.row_slots, [1, 2]);
        assert_eq!(binned.parts, [0..1, 1..2]);
        assert_eq!((binned.part_slots(3, 0), binned.part_slots(3, 1)), (&[1][..], &[2][..]));
    }
}
