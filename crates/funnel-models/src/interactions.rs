/// A sparse user × item matrix in CSR form: each user's items (sorted, distinct) with a
/// value (summed over repeated interactions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interactions {
    n_users: u32,
    n_items: u32,
    offsets: Vec<usize>,
    items: Vec<u32>,
    values: Vec<f32>,
}

impl Interactions {
    /// Builds the matrix from `(user, item, value)` triples with indices below the sizes.
    pub fn from_triples(n_users: u32, n_items: u32, triples: impl IntoIterator<Item = (u32, u32, f32)>) -> Self {
        let mut per_user: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_users as usize];
        for (user, item, value) in triples {
            assert!(user < n_users && item < n_items, "index out of range: ({user}, {item})");
            per_user[user as usize].push((item, value));
        }
        let mut matrix = Self { n_users, n_items, offsets: vec![0], ..Self::default() };
        for mut row in per_user {
            row.sort_unstable_by_key(|&(item, _)| item);
            row.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    kept.1 += later.1;
                }
                same
            });
            matrix.items.extend(row.iter().map(|&(item, _)| item));
            matrix.values.extend(row.iter().map(|&(_, value)| value));
            matrix.offsets.push(matrix.items.len());
        }
        matrix
    }

    pub fn n_users(&self) -> u32 {
        self.n_users
    }

    pub fn n_items(&self) -> u32 {
        self.n_items
    }

    /// Number of stored (user, item) pairs.
    pub fn nnz(&self) -> usize {
        self.items.len()
    }

    /// The user's items, sorted.
    pub fn items_of(&self, user: u32) -> &[u32] {
        &self.items[self.offsets[user as usize]..self.offsets[user as usize + 1]]
    }

    pub fn values_of(&self, user: u32) -> &[f32] {
        &self.values[self.offsets[user as usize]..self.offsets[user as usize + 1]]
    }

    /// The item × user matrix (same values).
    pub fn transpose(&self) -> Interactions {
        let triples = (0..self.n_users)
            .flat_map(|u| self.items_of(u).iter().zip(self.values_of(u)).map(move |(&i, &v)| (i, u, v)));
        Interactions::from_triples(self.n_items, self.n_users, triples)
    }

    /// Whether the user has interacted with the item.
    pub fn contains(&self, user: u32, item: u32) -> bool {
        self.items_of(user).binary_search(&item).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_sorted_distinct_and_summed() {
        let m = Interactions::from_triples(3, 5, [(0, 4, 1.0), (0, 1, 2.0), (0, 4, 0.5), (2, 3, 1.0)]);
        assert_eq!(m.items_of(0), [1, 4]);
        assert_eq!(m.values_of(0), [2.0, 1.5]);
        assert!(m.items_of(1).is_empty());
        assert!(m.contains(2, 3) && !m.contains(2, 4));
        assert_eq!(m.nnz(), 3);
    }
}
