//! Hierarchical navigable small-world graph (Malkov & Yashunin, 2018) over
//! inner-product similarity.
//!
//! Layout: vectors in one contiguous `Vec<f32>`; level-0 links in one flat array with a
//! fixed stride (`[count, id, id, …]` per node), upper-level links per node. Distances
//! are computed with runtime-dispatched SIMD (AVX2 + FMA where the CPU has it) through
//! `pulp`, which keeps this crate free of `unsafe`.
//!
//! Construction is parallel **and deterministic**: nodes are inserted in batches; within
//! a batch every node searches the graph as it was before the batch (in parallel), also
//! considers the earlier nodes of its own batch, and then the back-links are merged per
//! target node (in parallel, each target independently). The result depends on the seed,
//! the data and the CPU's SIMD width (which changes float summation order), never on the
//! number of threads.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Mutex;

use pulp::{Arch, Simd, WithSimd};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{AnnError, Metric, Neighbor, normalise};

/// Construction parameters; the defaults are hnswlib's usual ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node on the upper levels; level 0 keeps `2 * m`.
    pub m: usize,
    /// Breadth of the search that finds a new node's neighbours.
    pub ef_construction: usize,
    /// Seeds the level assignment (the only randomness).
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self { m: 16, ef_construction: 200, seed: 42 }
    }
}

/// A candidate during search: distance (negated similarity, lower is closer) and id.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored(f32, u32);

impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Marks of visited nodes, reset in O(1) by bumping a generation.
#[derive(Debug)]
struct Visited {
    marks: Vec<u32>,
    generation: u32,
}

impl Visited {
    fn new(n: usize) -> Self {
        Self { marks: vec![0; n], generation: 0 }
    }

    fn reset(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.fill(0);
            self.generation = 1;
        }
    }

    /// True the first time `id` is seen since the last reset.
    fn insert(&mut self, id: u32) -> bool {
        let mark = &mut self.marks[id as usize];
        let new = *mark != self.generation;
        *mark = self.generation;
        new
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Hnsw {
    dim: usize,
    metric: Metric,
    params: HnswParams,
    data: Vec<f32>,
    levels: Vec<u8>,
    /// `n × (2m + 1)`: per node its level-0 link count then the links.
    level0: Vec<u32>,
    /// Per node, its levels 1..=level, each `m + 1` slots laid out like `level0`.
    upper: Vec<Vec<u32>>,
    entry: u32,
    top: usize,
    #[serde(skip)]
    scratch: Mutex<Vec<Visited>>,
}

/// Inner product, 4 × SIMD-width accumulators.
#[inline(always)]
fn dot<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let (a_head, a_tail) = S::as_simd_f32s(a);
    let (b_head, b_tail) = S::as_simd_f32s(b);
    let mut acc = [simd.splat_f32s(0.0); 4];
    let mut a_chunks = a_head.chunks_exact(4);
    let mut b_chunks = b_head.chunks_exact(4);
    for (x, y) in (&mut a_chunks).zip(&mut b_chunks) {
        for lane in 0..4 {
            acc[lane] = simd.mul_add_e_f32s(x[lane], y[lane], acc[lane]);
        }
    }
    for (x, y) in a_chunks.remainder().iter().zip(b_chunks.remainder()) {
        acc[0] = simd.mul_add_e_f32s(*x, *y, acc[0]);
    }
    let sum = simd.add_f32s(simd.add_f32s(acc[0], acc[1]), simd.add_f32s(acc[2], acc[3]));
    let mut total = simd.reduce_sum_f32s(sum);
    for (x, y) in a_tail.iter().zip(b_tail) {
        total += x * y;
    }
    total
}

impl Hnsw {
    /// Builds the graph over `data` (`n × dim`, row-major), using the global rayon pool.
    pub fn build(mut data: Vec<f32>, dim: usize, metric: Metric, params: HnswParams) -> Result<Self, AnnError> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(AnnError::Dimension { expected: dim, got: data.len() % dim.max(1) });
        }
        if params.m < 2 || params.ef_construction == 0 {
            return Err(AnnError::Params("m must be at least 2 and ef_construction at least 1".into()));
        }
        let n = data.len() / dim;
        if n > u32::MAX as usize {
            return Err(AnnError::Params(format!("{n} vectors is more than an index holds (2^32 - 1)")));
        }
        if metric == Metric::Cosine {
            data.chunks_exact_mut(dim).for_each(normalise);
        }
        let mut rng = StdRng::seed_from_u64(params.seed);
        let scale = 1.0 / (params.m as f64).ln();
        let levels: Vec<u8> = (0..n)
            .map(|_| {
                let u: f64 = rng.random::<f64>();
                ((-(1.0 - u).ln()) * scale).floor().min(16.0) as u8
            })
            .collect();
        let upper = levels.iter().map(|&l| vec![0; l as usize * (params.m + 1)]).collect();
        let mut index = Self {
            dim,
            metric,
            params,
            data,
            level0: vec![0; n * (2 * params.m + 1)],
            upper,
            entry: 0,
            top: levels.first().map_or(0, |&l| l as usize),
            levels,
            scratch: Mutex::new(Vec::new()),
        };
        let arch = Arch::new();
        let mut start = 1;
        while start < n {
            let end = (start + (start / 32).clamp(1, 1024)).min(n);
            index.insert_batch(arch, start as u32..end as u32);
            start = end;
        }
        Ok(index)
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// The stored (for cosine: normalised) vector of `id`.
    pub fn vector(&self, id: u32) -> &[f32] {
        &self.data[id as usize * self.dim..(id as usize + 1) * self.dim]
    }

    /// The `k` most similar vectors to `query`, most similar first; `ef` (raised to `k`)
    /// trades speed for recall.
    pub fn search(&self, query: &[f32], k: usize, ef: usize) -> Result<Vec<Neighbor>, AnnError> {
        if query.len() != self.dim {
            return Err(AnnError::Dimension { expected: self.dim, got: query.len() });
        }
        if self.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let mut query = query.to_vec();
        if self.metric == Metric::Cosine {
            normalise(&mut query);
        }
        let mut visited = self.take_scratch();
        let found = Arch::new().dispatch(SearchOp { index: self, query: &query, ef: ef.max(k), visited: &mut visited });
        self.give_scratch(visited);
        Ok(found.into_iter().take(k).map(|Scored(d, id)| Neighbor { id, score: -d }).collect())
    }

    /// Visited marks from the pool (allocating them costs O(n), so they are reused).
    fn take_scratch(&self) -> Visited {
        self.scratch.lock().ok().and_then(|mut pool| pool.pop()).unwrap_or_else(|| Visited::new(self.len()))
    }

    fn give_scratch(&self, visited: Visited) {
        if let Ok(mut pool) = self.scratch.lock() {
            pool.push(visited);
        }
    }

    fn links(&self, node: u32, level: usize) -> &[u32] {
        let (list, start) = self.slot(node, level);
        let count = list[start] as usize;
        &list[start + 1..start + 1 + count]
    }

    fn slot(&self, node: u32, level: usize) -> (&[u32], usize) {
        if level == 0 {
            (&self.level0, node as usize * (2 * self.params.m + 1))
        } else {
            (&self.upper[node as usize], (level - 1) * (self.params.m + 1))
        }
    }

    fn set_links(&mut self, node: u32, level: usize, ids: &[u32]) {
        let (list, start) = if level == 0 {
            (&mut self.level0, node as usize * (2 * self.params.m + 1))
        } else {
            (&mut self.upper[node as usize], (level - 1) * (self.params.m + 1))
        };
        list[start] = ids.len() as u32;
        list[start + 1..start + 1 + ids.len()].copy_from_slice(ids);
    }

    fn capacity(&self, level: usize) -> usize {
        if level == 0 { 2 * self.params.m } else { self.params.m }
    }

    #[inline(always)]
    fn distance<S: Simd>(&self, simd: S, query: &[f32], id: u32) -> f32 {
        -dot(simd, query, self.vector(id))
    }

    /// Greedy descent on one upper level: the closest node reachable from `from`.
    #[inline(always)]
    fn greedy<S: Simd>(&self, simd: S, query: &[f32], mut from: Scored, level: usize) -> Scored {
        loop {
            let mut moved = false;
            for &id in self.links(from.1, level) {
                let d = self.distance(simd, query, id);
                if d < from.0 {
                    from = Scored(d, id);
                    moved = true;
                }
            }
            if !moved {
                return from;
            }
        }
    }

    /// Best-first search of one level; the `ef` closest nodes found, closest first.
    #[inline(always)]
    fn search_level<S: Simd>(
        &self,
        simd: S,
        query: &[f32],
        entries: &[Scored],
        ef: usize,
        level: usize,
        visited: &mut Visited,
    ) -> Vec<Scored> {
        visited.reset();
        let cap = ef.min(self.len()) + 1;
        let mut frontier: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(cap);
        let mut best: BinaryHeap<Scored> = BinaryHeap::with_capacity(cap);
        for &entry in entries {
            if visited.insert(entry.1) {
                frontier.push(Reverse(entry));
                best.push(entry);
            }
        }
        while let Some(Reverse(current)) = frontier.pop() {
            if best.len() >= ef && best.peek().is_some_and(|worst| current.0 > worst.0) {
                break;
            }
            // Unvisited neighbours first, then their distances, touching the next vector
            // ahead of each dot product so that its memory is on the way (a software
            // prefetch without `unsafe`).
            let mut fresh = [0u32; 512];
            let mut n_fresh = 0;
            for &id in self.links(current.1, level) {
                if visited.insert(id) && n_fresh < fresh.len() {
                    fresh[n_fresh] = id;
                    n_fresh += 1;
                }
            }
            for (i, &id) in fresh[..n_fresh].iter().enumerate() {
                if let Some(&next) = fresh[..n_fresh].get(i + 1) {
                    std::hint::black_box(self.data[next as usize * self.dim]);
                }
                let d = self.distance(simd, query, id);
                if best.len() < ef || best.peek().is_some_and(|worst| d < worst.0) {
                    frontier.push(Reverse(Scored(d, id)));
                    best.push(Scored(d, id));
                    if best.len() > ef {
                        best.pop();
                    }
                }
            }
        }
        best.into_sorted_vec()
    }

    /// The neighbour-selection heuristic: walk the candidates closest first and keep one
    /// only if it is closer to the base than to every neighbour kept so far, which keeps
    /// links spread across directions instead of bunched in one cluster.
    #[inline(always)]
    fn select<S: Simd>(&self, simd: S, candidates: &[Scored], keep: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(keep);
        for &Scored(d, id) in candidates {
            if kept.len() == keep {
                break;
            }
            let vector = self.vector(id);
            if kept.iter().all(|&other| self.distance(simd, vector, other) >= d) {
                kept.push(id);
            }
        }
        kept
    }

    /// Descends from the entry point to `level + 1`, then the closest nodes per level
    /// from `level` down to 0.
    #[inline(always)]
    fn plan<S: Simd>(&self, simd: S, node: u32, batch_start: u32, visited: &mut Visited) -> Vec<Vec<u32>> {
        let query = self.vector(node);
        let node_level = self.levels[node as usize] as usize;
        let mut from = Scored(self.distance(simd, query, self.entry), self.entry);
        for level in (node_level + 1..=self.top).rev() {
            from = self.greedy(simd, query, from, level);
        }
        let mut entries = vec![from];
        let mut plan = vec![Vec::new(); node_level.min(self.top) + 1];
        for level in (0..plan.len()).rev() {
            let mut found = self.search_level(simd, query, &entries, self.params.ef_construction, level, visited);
            for earlier in batch_start..node {
                if self.levels[earlier as usize] as usize >= level {
                    found.push(Scored(self.distance(simd, query, earlier), earlier));
                }
            }
            found.sort_unstable();
            // An earlier batch node may also have come back from the search.
            found.dedup_by_key(|s| s.1);
            found.truncate(self.params.ef_construction);
            plan[level] = self.select(simd, &found, self.capacity(level));
            entries = found;
        }
        plan
    }

    /// `target`'s links on `level` after adding `new` ones, pruned by the heuristic when
    /// they overflow.
    #[inline(always)]
    fn merged_links<S: Simd>(&self, simd: S, target: u32, level: usize, new: &[u32]) -> Vec<u32> {
        let mut ids: Vec<u32> = self.links(target, level).to_vec();
        for &id in new {
            if id != target && !ids.contains(&id) {
                ids.push(id);
            }
        }
        if ids.len() <= self.capacity(level) {
            return ids;
        }
        let base = self.vector(target);
        let mut scored: Vec<Scored> = ids.iter().map(|&id| Scored(self.distance(simd, base, id), id)).collect();
        scored.sort_unstable();
        self.select(simd, &scored, self.capacity(level))
    }

    fn insert_batch(&mut self, arch: Arch, batch: std::ops::Range<u32>) {
        let plans: Vec<Vec<Vec<u32>>> = {
            let this = &*self;
            let nodes: Vec<u32> = batch.clone().collect();
            let chunk = nodes.len().div_ceil(rayon::current_num_threads() * 4).max(1);
            let per_chunk: Vec<Vec<Vec<Vec<u32>>>> = nodes
                .par_chunks(chunk)
                .map(|chunk| {
                    let mut visited = this.take_scratch();
                    let plans = chunk
                        .iter()
                        .map(|&node| {
                            arch.dispatch(PlanOp { index: this, node, batch_start: batch.start, visited: &mut visited })
                        })
                        .collect();
                    this.give_scratch(visited);
                    plans
                })
                .collect();
            per_chunk.into_iter().flatten().collect()
        };
        let mut back_links: Vec<(u32, usize, u32)> = Vec::new();
        for (node, plan) in batch.clone().zip(&plans) {
            for (level, ids) in plan.iter().enumerate() {
                self.set_links(node, level, ids);
                back_links.extend(ids.iter().map(|&id| (id, level, node)));
            }
        }
        back_links.sort_unstable();
        let groups: Vec<&[(u32, usize, u32)]> = back_links.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)).collect();
        let merged: Vec<Vec<u32>> = {
            let this = &*self;
            groups
                .par_iter()
                .map(|group| {
                    let new: Vec<u32> = group.iter().map(|&(_, _, node)| node).collect();
                    arch.dispatch(MergeOp { index: this, target: group[0].0, level: group[0].1, new: &new })
                })
                .collect()
        };
        for (group, ids) in groups.iter().zip(&merged) {
            self.set_links(group[0].0, group[0].1, ids);
        }
        for node in batch {
            let level = self.levels[node as usize] as usize;
            if level > self.top {
                self.top = level;
                self.entry = node;
            }
        }
    }
}

struct SearchOp<'a> {
    index: &'a Hnsw,
    query: &'a [f32],
    ef: usize,
    visited: &'a mut Visited,
}

impl WithSimd for SearchOp<'_> {
    type Output = Vec<Scored>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<Scored> {
        let index = self.index;
        let mut from = Scored(index.distance(simd, self.query, index.entry), index.entry);
        for level in (1..=index.top).rev() {
            from = index.greedy(simd, self.query, from, level);
        }
        index.search_level(simd, self.query, &[from], self.ef, 0, self.visited)
    }
}

struct PlanOp<'a> {
    index: &'a Hnsw,
    node: u32,
    batch_start: u32,
    visited: &'a mut Visited,
}

impl WithSimd for PlanOp<'_> {
    type Output = Vec<Vec<u32>>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<Vec<u32>> {
        self.index.plan(simd, self.node, self.batch_start, self.visited)
    }
}

struct MergeOp<'a> {
    index: &'a Hnsw,
    target: u32,
    level: usize,
    new: &'a [u32],
}

impl WithSimd for MergeOp<'_> {
    type Output = Vec<u32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<u32> {
        self.index.merged_links(simd, self.target, self.level, self.new)
    }
}

/// Exact inner products of `query` against every row of `data`, SIMD-dispatched.
pub(crate) fn scan(data: &[f32], dim: usize, query: &[f32], k: usize) -> Vec<Neighbor> {
    struct ScanOp<'a> {
        data: &'a [f32],
        dim: usize,
        query: &'a [f32],
        k: usize,
    }
    impl WithSimd for ScanOp<'_> {
        type Output = Vec<Neighbor>;

        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> Vec<Neighbor> {
            // A min-heap of the best k; on equal scores the lower id ranks higher.
            let mut best: BinaryHeap<Reverse<(Similarity, Reverse<u32>)>> = BinaryHeap::with_capacity(self.k + 1);
            for (id, row) in self.data.chunks_exact(self.dim).enumerate() {
                let key = (Similarity(dot(simd, self.query, row)), Reverse(id as u32));
                if best.len() < self.k {
                    best.push(Reverse(key));
                } else if best.peek().is_some_and(|Reverse(worst)| key > *worst) {
                    best.pop();
                    best.push(Reverse(key));
                }
            }
            let mut out: Vec<Neighbor> =
                best.into_iter().map(|Reverse((score, Reverse(id)))| Neighbor { id, score: score.0 }).collect();
            out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
            out
        }
    }
    if k == 0 {
        return Vec::new();
    }
    Arch::new().dispatch(ScanOp { data, dim, query, k })
}

/// Totally ordered similarity (higher first in results; ties to the lower id).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Similarity(f32);

impl Eq for Similarity {}
impl PartialOrd for Similarity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Similarity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
