//! The dot-product kernel, for a B with fewer columns than the rank-1
//! tiles fill (a classifier's logits: N = 10 of a 16-lane vector).
//!
//! The rank-1 tiles lay C's columns along the vector lanes, so a product
//! N = 10 wide runs every FMA on 10 of 16 lanes (62.5 % of the peak at
//! best). Here the lanes run along K instead. B is packed (it is small:
//! every tile reads all of it, from L1) into vectors that each hold `G`
//! columns side by side, `LANES / G` consecutive k values of each; A's
//! rows are read where they lie, and each load of `LANES / G` of a row's
//! values is repeated `G` times across the vector to meet them. A tile of
//! `R` rows keeps `R · ⌈N / G⌉` accumulators, each lane a partial dot
//! product, and at the end folds the lanes of each column into one sum
//! ([`sum_lanes`]).
//!
//! Why `G = 2` (two columns a vector) for widths from 2: folding the
//! lanes costs shuffles on the FMAs' ports, and half-folded vectors skip
//! the first of the tree's levels and need half as many accumulators,
//! so a tile holds twice the rows. (With one column a vector, 2 rows by
//! 10 columns, the logits ran at 63 % of the peak, the fold 13 % of the
//! time.) Why packed: read in place at a run-time stride, the columns'
//! addresses took 12 integer operations a k step, which share ports 0 and
//! 5 with the FMAs; packed, the loop addresses B at constant offsets from
//! one pointer.
//!
//! K is never split, and each element of C gets the same operations
//! whatever the thread count or the rows around it, so results stay
//! bit-identical.

use super::{Output, Simd};

/// What the dot kernel needs beyond [`Simd`]: repeating a part of a vector
/// across it, and folding lanes.
///
/// # Safety
/// As [`Simd`]: only callable where the ISA is available.
pub(crate) unsafe trait FoldLanes: Simd {
    /// `log2(LANES)`: the folds that take `LANES` vectors to one.
    const LEVELS: usize;
    /// `LANES / 2` floats at `p`, in both halves of the vector.
    unsafe fn load_twice(p: *const f32) -> Self;
    /// The first `n < LANES / 2` floats at `p`, zero up to `LANES / 2`, in
    /// both halves; nothing past `p + n` is read.
    unsafe fn load_first_twice(p: *const f32, n: usize) -> Self;
    /// Fold `level` of [`sum_lanes`]'s tree: two vectors that each hold
    /// `2^level` partial sums of `LANES / 2^level` lanes become one that
    /// holds `2^(level+1)` sums of half as many lanes (the lanes of each
    /// sum added in pairs). Level 0 puts `a`'s sum in the low half and
    /// `b`'s in the high half.
    unsafe fn fold(level: usize, a: Self, b: Self) -> Self;
    /// The lanes of the tree's result in the order of its inputs: the last
    /// folds interleave, so input `j`'s sum comes out elsewhere.
    unsafe fn in_input_order(self) -> Self;
}

/// One call of the dot kernel: `m ≤ R` rows of C, all `n` columns,
/// written by the rank-1 tiles' [`Output::write_vector`].
///
/// The contract: A's `m` rows each have `k` readable floats, B is packed
/// ([`pack_b`] for this `k`, `n` and kernel), C's `m × n` corner is valid
/// for reads and writes, and the bias (when not null) has a value for each
/// of its rows or columns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DotTile {
    pub k: usize,
    /// Columns of B and C: picks the kernel.
    pub n: usize,
    /// Row `i` of A at `a + i·a_rs`, `k` contiguous floats.
    pub a: *const f32,
    pub a_rs: usize,
    /// B packed by [`pack_b`].
    pub b: *const f32,
    /// Live rows (≤ R; the kernel reads only these rows of A).
    pub m: usize,
    /// C at the tile's row 0, column 0, and the epilogue (a row bias offset
    /// to the tile's first row).
    pub out: Output,
}

/// A dot-kernel entry point.
pub(crate) type DotFn = unsafe fn(&DotTile);

/// The dot kernel of one ISA for one width of B.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dot {
    /// Rows of C per full tile (as many as the registers hold).
    pub(super) rows: usize,
    /// Columns of B per packed vector (`G`).
    pub(super) columns_per_vector: usize,
    /// The full tile; runs `m ≤ rows` rows.
    pub(super) run: DotFn,
    /// A one-row tile, for the rows after the last full tile.
    pub(super) run_one: DotFn,
}

/// `R` rows of C by `NV · G ≥ n` columns: the k loop, the lane sums and
/// the write-back with the epilogue.
///
/// # Safety
/// The ISA of `V` is available; `t` satisfies [`DotTile`]'s contract with
/// `t.n ≤ NV · G`, `1 ≤ t.m ≤ R`, and B packed for `G` and `V::LANES`.
#[inline(always)]
pub(crate) unsafe fn dot_body<V: FoldLanes, const R: usize, const NV: usize, const G: usize>(
    t: &DotTile,
) {
    debug_assert!(G == 1 || G == 2);
    // SAFETY: every load below is inside the live rows of A (rows past
    // `t.m` repeat the last live one) at an offset below k (the tail reads
    // `k - p` floats, masked) and inside packed B, `⌈k / step⌉` blocks of
    // NV vectors.
    unsafe {
        let step = V::LANES / G;
        let live = t.m.clamp(1, R);
        let rows: [*const f32; R] = std::array::from_fn(|i| t.a.add(i.min(live - 1) * t.a_rs));
        let mut acc = [[V::zero(); NV]; R];
        let whole = t.k - t.k % step;
        let (mut p, mut b) = (0, t.b);
        // Two steps a trip: the loop's own three operations would otherwise
        // make the AVX2 logits loop (22 uops for 10 FMAs) exceed Zen 2's
        // 4-wide dispatch (`llvm-mca-19 -mcpu=znver2`: 1.21× its FMA bound).
        while p + 2 * step <= whole {
            dot_step::<V, R, NV, G, false>(&mut acc, &rows, b, p, 0);
            dot_step::<V, R, NV, G, false>(&mut acc, &rows, b.add(NV * V::LANES), p + step, 0);
            p += 2 * step;
            b = b.add(2 * NV * V::LANES);
        }
        if p < whole {
            dot_step::<V, R, NV, G, false>(&mut acc, &rows, b, p, 0);
            p += step;
            b = b.add(NV * V::LANES);
        }
        if p < t.k {
            dot_step::<V, R, NV, G, true>(&mut acc, &rows, b, p, t.k - p);
        }
        // The rows are summed from a copy made by a loop of constant
        // bounds, the only place after the k loop that touches `acc`: the
        // row loop below has a run-time bound (`t.m`), and indexing `acc`
        // in it kept the array in memory (zeroed by a call to `memset` on
        // every tile).
        let mut spill = std::mem::MaybeUninit::<[[V; NV]; R]>::uninit();
        let rows_of_sums = spill.as_mut_ptr().cast::<[V; NV]>();
        for (i, row) in acc.iter().enumerate() {
            rows_of_sums.add(i).write(*row);
        }
        // A vector of sums holds LANES columns: one, or (AVX2, more than 8
        // columns) two, written out so that each `sum_lanes` has constant
        // bounds (as a loop over the two, LLVM copied `acc` with `memcpy`).
        let per_sum = V::LANES / G;
        debug_assert!(NV <= 2 * per_sum);
        let out = t.out;
        for i in 0..t.m.min(R) {
            let row = &*rows_of_sums.add(i);
            let sums = sum_lanes::<V, NV, G>(row, 0);
            out.write_vector::<V>(i, 0, t.n.min(V::LANES), sums);
            if NV > per_sum {
                // NV vectors of G columns hold more than LANES: t.n > LANES.
                let sums = sum_lanes::<V, NV, G>(row, per_sum);
                out.write_vector::<V>(i, V::LANES, t.n - V::LANES, sums);
            }
        }
    }
}

/// One step along K: `LANES / G` values of each A row (repeated `G` times)
/// against the NV packed B vectors at `b`, `R · NV` FMAs. With `TAIL`,
/// only A's first `tail` values are read, the rest zero (packed B is
/// zero-padded).
///
/// # Safety
/// As [`dot_body`]: `rows[i] + p` has `LANES / G` (or `tail`) readable
/// floats and `b` a packed block of `NV · LANES`.
#[inline(always)]
unsafe fn dot_step<
    V: FoldLanes,
    const R: usize,
    const NV: usize,
    const G: usize,
    const TAIL: bool,
>(
    acc: &mut [[V; NV]; R],
    rows: &[*const f32; R],
    b: *const f32,
    p: usize,
    tail: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let a: [V; R] = std::array::from_fn(|i| {
            let at = rows[i].add(p);
            match (G, TAIL) {
                (1, false) => V::load(at),
                (1, true) => V::load_first(at, tail),
                (_, false) => V::load_twice(at),
                (_, true) => V::load_first_twice(at, tail),
            }
        });
        for v in 0..NV {
            let b = V::load(b.add(v * V::LANES));
            for (row, a) in acc.iter_mut().zip(a) {
                row[v] = a.mul_add(b, row[v]);
            }
        }
    }
}

/// Lane `j` of the result: the sum of column `j`'s lanes of
/// `acc[first..]` (column `j` in lanes `(j % G)·LANES/G ..` of vector
/// `first + j / G`; the vectors from `first`, up to `LANES / G` of them).
/// A tree of [`FoldLanes::fold`]s from level `log2(G)`, each adding pairs
/// of lanes, an odd vector out folded with zeros. Its bounds are constants
/// once inlined, so it unrolls and `acc` stays in registers (an array of
/// `Option`s for the absent inputs was zeroed with `memset` on every row).
///
/// # Safety
/// The ISA of `V` is available.
#[inline(always)]
pub(crate) unsafe fn sum_lanes<V: FoldLanes, const NV: usize, const G: usize>(
    acc: &[V; NV],
    first: usize,
) -> V {
    // SAFETY: the caller guarantees the ISA.
    unsafe {
        let mut count = (NV - first).min(V::LANES / G);
        let mut x = [V::zero(); NV];
        x[..count].copy_from_slice(&acc[first..first + count]);
        for level in G.trailing_zeros() as usize..V::LEVELS {
            let next = count.div_ceil(2);
            for i in 0..next {
                let pair = if 2 * i + 1 < count {
                    x[2 * i + 1]
                } else {
                    V::zero()
                };
                x[i] = V::fold(level, x[2 * i], pair);
            }
            count = next;
        }
        x[0].in_input_order()
    }
}

/// The floats [`pack_b`] writes for a `k × n` B.
pub(crate) fn packed_b_len(k: usize, n: usize, lanes: usize, columns_per_vector: usize) -> usize {
    let step = lanes / columns_per_vector;
    k.div_ceil(step) * n.div_ceil(columns_per_vector) * lanes
}

/// Packs B (`k × n`, element `(p, j)` at `b[p·rs + j·cs]`) for the dot
/// kernel with `lanes`-lane vectors of `g` columns each: block `q` holds
/// `⌈n / g⌉` vectors, vector `v`'s lanes `h·step .. (h + 1)·step` holding
/// column `v·g + h` at rows `q·step ..` (`step = lanes / g`), zero past
/// B's edges. So slot `j` of a block (`step` floats) is column `j`.
///
/// # Panics
/// If `dst` is shorter than [`packed_b_len`] or B reaches past `b`.
pub(crate) fn pack_b(
    dst: &mut [f32],
    b: &[f32],
    (k, n): (usize, usize),
    (rs, cs): (usize, usize),
    lanes: usize,
    g: usize,
) {
    let step = lanes / g;
    let block = n.div_ceil(g) * lanes;
    let dst = &mut dst[..packed_b_len(k, n, lanes, g)];
    if rs != 1 {
        // Gathered element by element (the caller transposes a row-major B
        // first, so this is only for B with no contiguous side).
        for (q, block) in dst.chunks_exact_mut(block).enumerate() {
            for (j, run) in block.chunks_exact_mut(step).enumerate() {
                for (i, x) in run.iter_mut().enumerate() {
                    let p = q * step + i;
                    *x = if j < n && p < k {
                        b[p * rs + j * cs]
                    } else {
                        0.0
                    };
                }
            }
        }
        return;
    }
    // Columns contiguous: each column's k floats are cut into runs of `step`.
    match step {
        4 => copy_columns::<4>(dst, b, (k, n), cs, block),
        8 => copy_columns::<8>(dst, b, (k, n), cs, block),
        16 => copy_columns::<16>(dst, b, (k, n), cs, block),
        _ => unreachable!("vectors of 4, 8 or 16 lanes"),
    }
}

/// [`pack_b`] for contiguous columns, `S` floats a run: column by column,
/// reading each straight through, with fixed-size copies (a copy of a
/// run-time length was a call to `memmove` per run).
fn copy_columns<const S: usize>(
    dst: &mut [f32],
    b: &[f32],
    (k, n): (usize, usize),
    cs: usize,
    block: usize,
) {
    for j in 0..n {
        let column = &b[j * cs..j * cs + k];
        let runs = column.chunks_exact(S);
        let tail = runs.remainder();
        let mut blocks = dst.chunks_exact_mut(block);
        // `runs` first: once they are spent, `zip` takes no block.
        for (from, to) in runs.zip(blocks.by_ref()) {
            let to: &mut [f32; S] = (&mut to[j * S..j * S + S]).try_into().expect("S floats");
            *to = from.try_into().expect("S floats");
        }
        if let Some(last) = blocks.next() {
            let to = &mut last[j * S..j * S + S];
            to[..tail.len()].copy_from_slice(tail);
            to[tail.len()..].fill(0.0);
        }
    }
    // The slot past the last column (an odd n in pairs) is zero.
    if n * S < block {
        for to in dst.chunks_exact_mut(block) {
            to[n * S..].fill(0.0);
        }
    }
}

/// The dot kernels' tables: the entry for a B `n` columns wide.
pub(super) const fn entry(
    rows: usize,
    columns_per_vector: usize,
    run: DotFn,
    run_one: DotFn,
) -> Dot {
    Dot {
        rows,
        columns_per_vector,
        run,
        run_one,
    }
}
