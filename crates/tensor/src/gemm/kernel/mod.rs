//! Micro-kernels: the innermost `MR × NR` tile of `C ← αAB + βC`.
//!
//! # The micro-kernel contract
//! A call receives a [`Tile`]: `k` steps of rank-1 updates, reading
//! - A as `MR` rows: element `(i, p)` at `a + i·a_rs + p·a_cs` (packed: `a_rs = 1`,
//!   `a_cs = MR`), for every `i < MR` — padding rows must be readable (packing
//!   zero-fills them);
//! - B as `NR` contiguous lanes per step: row `p` at `b + p·b_rs` (packed: `b_rs = NR`),
//!   all `NR` lanes readable;
//!
//! and then writes only the live `m × n` corner of C (at `c`, strides `c_rs`,
//! `c_cs`): `C ← α·acc + β·C`, where **β = 0 means C is never read**, so NaN or
//! garbage there cannot leak.
//!
//! The body is written once ([`tile_body`]), generic over a tiny vector trait
//! ([`Simd`]); each ISA supplies the trait impl and a `#[target_feature]` shell
//! that only instantiates the body. A [`MicroKernel`] can only be obtained
//! through a constructor that returns `None` when the CPU lacks the ISA, so
//! holding one is proof the instructions exist.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod dot;
mod scalar;

use dot::{Dot, DotTile};

use std::mem::MaybeUninit;
use std::sync::OnceLock;

use super::cache::CacheSizes;
use super::{blocking, Kernel};

/// The few vector operations a micro-kernel needs.
///
/// # Safety
/// Implementors' methods may only be called where the ISA is available
/// (inside the matching `#[target_feature]` shell), and `load`/`store` need
/// `LANES` valid `f32`s at the pointer.
pub(crate) unsafe trait Simd: Copy {
    /// The number of `f32` lanes.
    const LANES: usize;
    /// All lanes zero.
    unsafe fn zero() -> Self;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// Reads `LANES` floats (no alignment needed).
    unsafe fn load(p: *const f32) -> Self;
    /// Writes `LANES` floats (no alignment needed).
    unsafe fn store(self, p: *mut f32);
    /// `self · b + c`, fused where the ISA has FMA.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// `self · b`.
    unsafe fn mul(self, b: Self) -> Self;
    /// `self + b`.
    unsafe fn add(self, b: Self) -> Self;
    /// Reads the first `n < LANES` floats, the other lanes zero; nothing past
    /// `p + n` is touched (masked where the ISA can).
    unsafe fn load_first(p: *const f32, n: usize) -> Self;
    /// Writes the first `n < LANES` lanes; nothing past `p + n` is touched.
    unsafe fn store_first(self, p: *mut f32, n: usize);
    /// [`relu`] of every lane.
    unsafe fn relu(self) -> Self;
}

/// The ReLU of `Var::relu`, lane by lane: `z` where `z > 0`, else `0·z`
/// (so −0 for a negative `z`, NaN kept), which the fused epilogue must
/// match bit for bit.
#[inline(always)]
pub(crate) fn relu(z: f32) -> f32 {
    if z > 0.0 {
        z
    } else {
        0.0 * z
    }
}

/// One micro-kernel call: see the module docs for the contract.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tile {
    pub k: usize,
    pub a: *const f32,
    pub a_rs: usize,
    pub a_cs: usize,
    pub b: *const f32,
    pub b_rs: usize,
    pub c: *mut f32,
    pub c_rs: usize,
    pub c_cs: usize,
    /// Live rows (≤ MR) and columns (≤ NR) of the tile.
    pub m: usize,
    pub n: usize,
    pub alpha: f32,
    pub beta: f32,
    /// The bias to add after `α·acc + β·C` (null: none; set on the first K
    /// slice only), already offset to the tile's first row (`bias_rows`:
    /// `bias[i]` goes to row i) or first column (`bias[j]` to column j).
    pub bias: *const f32,
    pub bias_rows: bool,
    /// Whether to rectify the result ([`relu`]; set on the last K slice only).
    pub relu: bool,
}

impl Tile {
    /// Where this tile writes and what it applies on the way.
    #[inline(always)]
    fn output(&self) -> Output {
        Output {
            c: self.c,
            c_rs: self.c_rs,
            c_cs: self.c_cs,
            alpha: self.alpha,
            beta: self.beta,
            bias: self.bias,
            bias_rows: self.bias_rows,
            relu: self.relu,
        }
    }
}

/// What a write-back needs of a tile: C's place and strides, and the
/// epilogue, as [`Tile`]'s fields of the same names say (a [`DotTile`]
/// holds one).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    pub c: *mut f32,
    pub c_rs: usize,
    pub c_cs: usize,
    pub alpha: f32,
    pub beta: f32,
    pub bias: *const f32,
    pub bias_rows: bool,
    pub relu: bool,
}

impl Output {
    /// The bias for row `i`, or the vector of it for columns `j .. j + LANES`
    /// (the first `live` of them; the others zero).
    ///
    /// # Safety
    /// `self.bias` is not null and row `i` / columns `j .. j + live` are
    /// live; the ISA of `V` is available.
    #[inline(always)]
    unsafe fn bias_vector<V: Simd>(&self, i: usize, j: usize, live: usize) -> V {
        // SAFETY: the bias has one value per live row (or column) of the tile.
        unsafe {
            if self.bias_rows {
                V::splat(*self.bias.add(i))
            } else if live == V::LANES {
                V::load(self.bias.add(j))
            } else {
                V::load_first(self.bias.add(j), live)
            }
        }
    }

    /// `C ← α·x + β·C` on row `i`, the `1 ≤ live ≤ LANES` columns from
    /// `first`, then the epilogue (`+ bias`, ReLU); β = 0 never reads C.
    /// Vector loads and stores for a row-major C (masked for a ragged
    /// vector); element by element, with the same arithmetic, for any
    /// other C, so the result does not depend on C's layout.
    ///
    /// # Safety
    /// The ISA of `V` is available; row `i`, columns `first .. first +
    /// live` of C (and the bias for them) are valid.
    #[inline(always)]
    unsafe fn write_vector<V: Simd>(&self, i: usize, first: usize, live: usize, x: V) {
        debug_assert!(live >= 1 && live <= V::LANES);
        // SAFETY: the caller's contract; every access is to row i, columns
        // first + j for j < live, of C or the bias.
        unsafe {
            let p = self.c.add(i * self.c_rs + first * self.c_cs);
            if self.c_cs == 1 {
                let mut r = x.mul(V::splat(self.alpha));
                if self.beta != 0.0 {
                    let c = if live == V::LANES {
                        V::load(p)
                    } else {
                        V::load_first(p, live)
                    };
                    r = r.add(c.mul(V::splat(self.beta)));
                }
                if !self.bias.is_null() {
                    r = r.add(self.bias_vector::<V>(i, first, live));
                }
                if self.relu {
                    r = r.relu();
                }
                if live == V::LANES {
                    r.store(p);
                } else {
                    r.store_first(p, live);
                }
                return;
            }
            let mut lanes = [0.0f32; 16];
            x.store(lanes.as_mut_ptr());
            // `take`, not a slice: no bounds check, so no panic path in a kernel.
            for (j, &x) in lanes.iter().take(live).enumerate() {
                let q = p.add(j * self.c_cs);
                let mut e = x * self.alpha;
                if self.beta != 0.0 {
                    e += *q * self.beta;
                }
                if !self.bias.is_null() {
                    e += *self.bias.add(if self.bias_rows { i } else { first + j });
                }
                *q = if self.relu { relu(e) } else { e };
            }
        }
    }
}

/// A micro-kernel entry point (packed or strided A/B).
pub(crate) type TileFn = unsafe fn(&Tile);

/// The full tile at the strides in the [`Tile`] that also packs the B
/// panel it reads into the buffer given ([`tile_body_packing_b`]).
pub(crate) type PackingTileFn = unsafe fn(&Tile, *mut f32);

/// A smaller instance of a kernel's body for edge tiles: `rows ≤ MR` rows by
/// `cols ≤ NR` columns (whole vectors), reading A and B through the strides
/// in the [`Tile`] (B rows still `b_rs` apart, so packed NR-wide panels work).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edge {
    pub rows: usize,
    pub cols: usize,
    pub run: TileFn,
}

/// A micro-kernel for one ISA, with its register-tile shape and cache blocking.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MicroKernel {
    pub kind: Kernel,
    /// Rows of C per tile.
    pub mr: usize,
    /// Columns of C per tile.
    pub nr: usize,
    /// `f32` lanes per vector: edge tiles are whole vectors wide.
    pub lanes: usize,
    /// K slice per packed panel (the PC loop step).
    pub kc: usize,
    /// Rows per packed A block (the IC loop step).
    pub mc: usize,
    /// Columns per packed B block (the JC loop step).
    pub nc: usize,
    // The entry points are private to `kernel/`: nothing else can assemble a
    // `MicroKernel`, so holding one proves its ISA was detected.
    /// Reads A/B packed (`a_rs = 1, a_cs = MR, b_rs = NR`): constants fold.
    packed: TileFn,
    /// Reads A/B with the strides in the [`Tile`] (the small-problem path).
    strided: TileFn,
    /// As `strided`, writing B's rows on, packed ([`tile_body_packing_b`]).
    packing_b: PackingTileFn,
    /// Whether the packed route reads a row-major A where it lies, through
    /// [`MicroKernel::strided`], instead of packing it: only where that
    /// body is as fast as the packed one. `llvm-mca-19`, cycles per four k
    /// steps against the FMAs' bound: the AVX-512 6×64 body 48.08 on
    /// skylake-avx512 (bound 48), the 24×16 one 96.06 on znver4 (96); the
    /// AVX2 6×16 body 27.07 on haswell (24), so AVX2 keeps packing.
    pub a_in_place: bool,
    /// Smaller tiles for the ragged last row or column panel: the smallest
    /// that covers the live corner runs, so few FMAs go to padding.
    edges: &'static [Edge],
    /// The dot kernels ([`dot`]) for B 1, 2, … columns wide, where they
    /// beat the rank-1 tiles' padded lanes; empty for the scalar kernel.
    dots: &'static [Dot],
    /// `iters` rounds of independent FMAs, to measure the machine's peak.
    fma_loop: unsafe fn(usize) -> f32,
    /// Flops per round of `fma_loop`.
    pub fma_flops: usize,
}

impl MicroKernel {
    /// Runs one tile whose A and B are packed panels.
    ///
    /// # Safety
    /// `t` satisfies the contract in the module docs with `a_rs = 1`,
    /// `a_cs = MR` and `b_rs = NR` (its own stride fields are ignored).
    #[inline]
    pub unsafe fn packed(&self, t: &Tile) {
        // SAFETY: `self` exists, so the ISA was detected; contract forwarded.
        unsafe { (self.packed)(t) }
    }

    /// Runs one tile reading A and B through the strides in `t`.
    ///
    /// # Safety
    /// `t` satisfies the contract in the module docs.
    #[inline]
    pub unsafe fn strided(&self, t: &Tile) {
        // SAFETY: `self` exists, so the ISA was detected; contract forwarded.
        unsafe { (self.strided)(t) }
    }

    /// Runs the full tile reading A and B through the strides in `t`, and
    /// writes the `t.k` rows of NR floats it reads from B to `b_copy`, one
    /// after another: the B panel packed, by the first tile that reads it.
    ///
    /// # Safety
    /// `t` satisfies the contract in the module docs, and `b_copy` has
    /// `t.k · NR` writable floats that overlap neither A, B nor C.
    #[inline]
    pub unsafe fn packing_b(&self, t: &Tile, b_copy: *mut f32) {
        // SAFETY: `self` exists, so the ISA was detected; contract forwarded.
        unsafe { (self.packing_b)(t, b_copy) }
    }

    /// Runs a tile with fewer than MR live rows or NR live columns, reading
    /// A and B through the strides in `t`, on the smallest tile that covers
    /// them. The arithmetic per element is the same as the full tile's, so
    /// the result is too.
    ///
    /// # Safety
    /// As [`MicroKernel::strided`]: A has MR readable (zero-padded) rows and
    /// B [`MicroKernel::panel_width`]`(t.n)` readable lanes per row.
    #[inline]
    pub unsafe fn edge(&self, t: &Tile) {
        let tile = self.edge_for(t.m, t.n);
        // SAFETY: `self` exists, so the ISA was detected; a smaller tile reads
        // only its first `rows ≤ MR` rows of A and `cols ≤ panel_width(t.n)`
        // lanes of B; contract forwarded.
        unsafe { (tile.map_or(self.strided, |e| e.run))(t) }
    }

    /// The smallest edge tile that covers `rows × cols` live elements, if
    /// any (else the full tile runs, through [`MicroKernel::strided`]).
    fn edge_for(&self, rows: usize, cols: usize) -> Option<&Edge> {
        self.edges
            .iter()
            .filter(|e| e.rows >= rows && e.cols >= cols)
            .min_by_key(|e| e.rows * e.cols)
    }

    /// How many lanes of a B panel with `cols` live columns the tiles read,
    /// whatever the rows: NR for a full panel; for a ragged last one, the
    /// widest of the edge tiles chosen for it. Such a panel is packed (and
    /// zero-padded) only that wide, with this row stride.
    pub fn panel_width(&self, cols: usize) -> usize {
        if cols >= self.nr {
            return self.nr;
        }
        (1..=self.mr)
            .map(|rows| self.edge_for(rows, cols).map_or(self.nr, |e| e.cols))
            .max()
            .unwrap_or(self.nr)
    }

    /// For an A read in place whose last `MR + r` rows (`0 < r < MR`) would
    /// otherwise run as a full tile and an `r`-row one: `Some(h)` to run
    /// them as two tiles of `h = (MR + r) / 2` rows instead, when both hold
    /// more accumulators than the `r`-row tile and every tile [`edge`]
    /// picks for `h` rows reads exactly `h` rows of A (in place there are
    /// no padding rows to read). A 128-row batch on the 6×64 tile ends in
    /// 4 + 4 rows, not 6 + 2: the 2-row tile streams the same B panel from
    /// L2 for a third of the FMAs, so per k step of the block's B panel the
    /// last 8 rows take about 16 cycles instead of 19 of ~259 (about 1 %).
    /// Measured on the Xeon, alternated: the best of 40 batches +0.5–1 % on
    /// the three MLP products (128×784×512 Bᵀ, 128×512×784, 128×512×512
    /// Bᵀ); their medians moved within this host's noise.
    ///
    /// [`edge`]: MicroKernel::edge
    pub fn tail_split(&self, r: usize) -> Option<usize> {
        if r == 0 || !(self.mr + r).is_multiple_of(2) {
            return None;
        }
        let h = (self.mr + r) / 2;
        // Edge tiles are whole vectors wide, so the widths that pick
        // different tiles are the multiples of LANES.
        let exact = (self.lanes..=self.nr)
            .step_by(self.lanes)
            .all(|cols| self.edge_for(h, cols).is_some_and(|e| e.rows == h));
        (h > r && exact).then_some(h)
    }

    /// The rows of C per tile of the dot kernel for a B `n` columns wide,
    /// and the columns of B per packed vector ([`dot::pack_b`]'s `g`), if
    /// this kernel has one ([`dot`]).
    pub fn dot_shape(&self, n: usize) -> Option<(usize, usize)> {
        self.dot_for(n).map(|d| (d.rows, d.columns_per_vector))
    }

    fn dot_for(&self, n: usize) -> Option<&Dot> {
        n.checked_sub(1).and_then(|i| self.dots.get(i))
    }

    /// Runs the dot kernel on `t.m` rows of C by all `t.n` columns: the
    /// full tile when `t.m` is [`MicroKernel::dot_rows`], the one-row tile
    /// for one row.
    ///
    /// # Safety
    /// `t` satisfies [`DotTile`]'s contract (B packed for
    /// [`MicroKernel::dot_shape`]), with `1 ≤ t.m ≤` its rows.
    ///
    /// # Panics
    /// If this kernel has no dot kernel `t.n` wide.
    #[inline]
    pub unsafe fn dot(&self, t: &DotTile) {
        let dot = self
            .dot_for(t.n)
            .unwrap_or_else(|| panic!("no dot kernel {} columns wide", t.n));
        debug_assert!(t.m >= 1 && t.m <= dot.rows);
        let run = if t.m == 1 { dot.run_one } else { dot.run };
        // SAFETY: `self` exists, so the ISA was detected; contract forwarded.
        unsafe { run(t) }
    }

    /// The fewest rows any of its tiles has: a last row panel is rounded up
    /// to a multiple of this at worst.
    pub fn row_unit(&self) -> usize {
        self.edges.iter().map(|e| e.rows).min().unwrap_or(self.mr)
    }

    /// Whether the tile needs [`MicroKernel::edge`] rather than the full one.
    #[inline]
    pub fn is_edge(&self, t: &Tile) -> bool {
        t.m < self.mr || t.n < self.nr
    }

    /// `iters` rounds of independent FMA chains (the peak probe); returns a
    /// value that depends on all of them.
    pub fn fma_loop(&self, iters: usize) -> f32 {
        // SAFETY: `self` exists, so the ISA was detected.
        unsafe { (self.fma_loop)(iters) }
    }

    /// The micro-kernel for `kind`, or `None` when this CPU cannot run it,
    /// with its blocks fitted to this machine's caches.
    pub fn new(kind: Kernel) -> Option<MicroKernel> {
        let kern = Self::with_own_blocks(kind)?;
        Some(blocking::fit_to_caches(kern, CacheSizes::detected()))
    }

    /// The micro-kernel for `kind` with the block constants of its file.
    fn with_own_blocks(kind: Kernel) -> Option<MicroKernel> {
        match kind {
            Kernel::Scalar => Some(scalar::kernel()),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => avx2::kernel(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => avx512::intel::kernel(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Zen => avx512::zen::kernel(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => None,
        }
    }
}

/// The environment variable that forces a kernel.
pub(crate) const KERNEL_ENV: &str = "EMBER_GEMM_KERNEL";

/// The kernel this process uses: `EMBER_GEMM_KERNEL` if set, else the best the
/// CPU supports. Decided once.
///
/// # Panics
/// If the variable names an unknown kernel or one this CPU cannot run.
pub(crate) fn selected() -> &'static MicroKernel {
    static SELECTED: OnceLock<MicroKernel> = OnceLock::new();
    SELECTED.get_or_init(|| {
        let forced = std::env::var(KERNEL_ENV).ok();
        let kind = choose(forced.as_deref());
        MicroKernel::new(kind).expect("choose returns a supported kernel")
    })
}

/// The kernel named by `forced`, or the best supported one when `None`.
///
/// # Panics
/// If `forced` names an unknown kernel or one this CPU cannot run.
pub(crate) fn choose(forced: Option<&str>) -> Kernel {
    match forced.map(str::trim).filter(|s| !s.is_empty()) {
        Some(name) => {
            let kind = Kernel::from_name(name).unwrap_or_else(|| {
                    panic!("{KERNEL_ENV}={name}: unknown kernel (expected scalar, avx2, avx512 or avx512-zen)")
                });
            assert!(
                kind.is_supported(),
                "{KERNEL_ENV}={name}: this CPU cannot run the {name} kernel"
            );
            kind
        }
        None => preference()
            .into_iter()
            .find(|k| k.is_supported())
            .unwrap_or(Kernel::Scalar),
    }
}

/// The kernels in the order this CPU should try them: on AMD Zen the
/// folded-broadcast AVX-512 flavour first, elsewhere the Intel one.
pub(crate) fn preference() -> [Kernel; 4] {
    if is_amd() {
        [
            Kernel::Avx512Zen,
            Kernel::Avx512,
            Kernel::Avx2,
            Kernel::Scalar,
        ]
    } else {
        [
            Kernel::Avx512,
            Kernel::Avx512Zen,
            Kernel::Avx2,
            Kernel::Scalar,
        ]
    }
}

/// Whether the CPU is AMD's (or Hygon's, which is Zen): CPUID leaf 0's vendor.
fn is_amd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let vendor = std::arch::x86_64::__cpuid(0);
        let ebx = vendor.ebx.to_le_bytes();
        &ebx == b"Auth" || &ebx == b"Hygo"
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// K steps per trip of the micro-kernel's loop.
const UNROLL: usize = 4;

/// The micro-kernel body, written once for every ISA: `MR` rows of C by `NV`
/// vectors of `V::LANES` columns, accumulators held in registers.
///
/// # Safety
/// The ISA of `V` must be available, and `t` must satisfy the contract in the
/// module docs with the given A/B strides.
#[inline(always)]
pub(crate) unsafe fn tile_body<V: Simd, const MR: usize, const NV: usize>(
    t: &Tile,
    a_rs: usize,
    a_cs: usize,
    b_rs: usize,
) {
    // SAFETY: forwarded; with `COPY_B = false` the copy pointer is never used.
    unsafe { body::<V, MR, NV, false>(t, a_rs, a_cs, b_rs, std::ptr::null_mut()) }
}

/// [`tile_body`] that also writes each row of B it reads (`NV · LANES`
/// floats, from `t.b` at `t.b_rs`) to `b_copy`, one after another: the B
/// panel comes out packed, as [`crate::gemm::pack`] would write it, from
/// the first tile that reads it. The copy then rides on a k loop whose
/// load and store ports have room, instead of a pass of its own that waits
/// on L2 while the FMA units idle.
///
/// # Safety
/// As [`tile_body`], and `b_copy` has `t.k · NV · LANES` writable floats
/// that overlap nothing the tile reads.
#[inline(always)]
pub(crate) unsafe fn tile_body_packing_b<V: Simd, const MR: usize, const NV: usize>(
    t: &Tile,
    a_rs: usize,
    a_cs: usize,
    b_copy: *mut f32,
) {
    // SAFETY: forwarded.
    unsafe { body::<V, MR, NV, true>(t, a_rs, a_cs, t.b_rs, b_copy) }
}

/// The k loop of [`tile_body`] and [`tile_body_packing_b`].
///
/// # Safety
/// As [`tile_body_packing_b`] when `COPY_B`, else as [`tile_body`].
#[inline(always)]
unsafe fn body<V: Simd, const MR: usize, const NV: usize, const COPY_B: bool>(
    t: &Tile,
    a_rs: usize,
    a_cs: usize,
    b_rs: usize,
    b_copy: *mut f32,
) {
    // SAFETY: the caller guarantees the ISA and that every A/B address read
    // below is inside its operand (contract: k steps, MR rows, NV·LANES lanes),
    // and, when copying, that `b_copy` has k rows of NV·LANES floats.
    unsafe {
        let mut acc = [[V::zero(); NV]; MR];
        // Each row of A from its own base with one shared offset along k, so
        // a strided A costs one add per k step, not one per row.
        let rows: [*const f32; MR] = std::array::from_fn(|i| t.a.add(i * a_rs));
        let (mut at, mut b, mut copy) = (0, t.b, b_copy);
        let step = NV * V::LANES;
        for _ in 0..t.k / UNROLL {
            for u in 0..UNROLL {
                let to = if COPY_B { copy.add(u * step) } else { copy };
                rank1_update::<V, MR, NV, COPY_B>(
                    &mut acc,
                    &rows,
                    at + u * a_cs,
                    b.add(u * b_rs),
                    to,
                );
            }
            at += UNROLL * a_cs;
            b = b.add(UNROLL * b_rs);
            if COPY_B {
                copy = copy.add(UNROLL * step);
            }
        }
        for _ in 0..t.k % UNROLL {
            rank1_update::<V, MR, NV, COPY_B>(&mut acc, &rows, at, b, copy);
            at += a_cs;
            b = b.add(b_rs);
            if COPY_B {
                copy = copy.add(step);
            }
        }
        write_back::<V, MR, NV>(t, &acc);
    }
}

/// One k step of [`tile_body`], a rank-1 update of the accumulators: NV
/// loads of B, MR broadcasts of A (`rows[i]` at offset `at`), and when
/// `COPY_B` the B vectors written on to `copy` after the step's FMAs
/// (written right after each load, the AVX2 tile spilled an accumulator
/// in its k loop; `kernel_check` fails on that). A function
/// that is always inlined, not a closure: LLVM once left a closure as a call
/// in the remainder loop, taking the accumulators through memory.
///
/// # Safety
/// As [`tile_body`]: the ISA of `V` is available, `rows[i] + at` is a valid
/// A value and `b` has `NV · LANES` valid floats (and `copy` as many
/// writable ones when `COPY_B`).
#[inline(always)]
unsafe fn rank1_update<V: Simd, const MR: usize, const NV: usize, const COPY_B: bool>(
    acc: &mut [[V; NV]; MR],
    rows: &[*const f32; MR],
    at: usize,
    b: *const f32,
    copy: *mut f32,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let mut bv = [V::zero(); NV];
        for (v, slot) in bv.iter_mut().enumerate() {
            *slot = V::load(b.add(v * V::LANES));
        }
        for (row, a) in acc.iter_mut().zip(rows) {
            let ai = V::splat(*a.add(at));
            for (cell, bv) in row.iter_mut().zip(bv) {
                *cell = ai.mul_add(bv, *cell);
            }
        }
        if COPY_B {
            for (v, bv) in bv.iter().enumerate() {
                bv.store(copy.add(v * V::LANES));
            }
        }
    }
}

/// `C ← α·acc + β·C` on the live corner, then the tile's epilogue (`+ bias`,
/// ReLU); β = 0 never reads C.
///
/// The accumulators are first stored to a stack buffer by a loop with
/// constant bounds, the only place that touches `acc`: if anything indexed
/// `acc` with a run-time value (the live rows and columns) or through a
/// pointer, LLVM would keep the whole array in memory and store all of it on
/// every k step (`examples/kernel_check.rs` fails the build on that). The
/// write-back then works from the buffer: vector loads and stores for a
/// row-major C, masked for a ragged last vector; element by element, with
/// the same arithmetic, for any other C, so the result does not depend on
/// C's layout.
///
/// # Safety
/// As [`tile_body`]: `t.c` addresses a valid `t.m × t.n` view, and `t.bias`
/// (when not null) one value per live row or column.
#[inline(always)]
unsafe fn write_back<V: Simd, const MR: usize, const NV: usize>(t: &Tile, acc: &[[V; NV]; MR]) {
    debug_assert!(V::LANES <= 16);
    if t.m == MR && t.n == NV * V::LANES && t.c_cs == 1 {
        // SAFETY: as below, for the whole MR × NR tile of a row-major C.
        unsafe { write_full_tile::<V, MR, NV>(t, acc) };
        return;
    }
    // Not zero-initialised: a memset of the buffer on every edge tile was
    // 1.3 % of a convnet step, and each cell's vector is stored before it
    // is read (only its first LANES floats, the only ones read).
    let mut spill = MaybeUninit::<[[[f32; 16]; NV]; MR]>::uninit();
    let cells = spill.as_mut_ptr().cast::<[f32; 16]>();
    // SAFETY: `cells` points to MR·NV slots of 16 floats inside `spill`;
    // each vector (LANES ≤ 16 floats) goes into its own slot; the ISA is
    // available (caller).
    unsafe {
        for (i, row) in acc.iter().enumerate() {
            for (v, cell) in row.iter().enumerate() {
                cell.store(cells.add(i * NV + v).cast::<f32>());
            }
        }
    }
    // SAFETY: the caller guarantees the ISA and that the live m × n corner of
    // C (strides c_rs, c_cs) is valid for reads and writes, as is the bias
    // for it; every vector written is inside it (row i < m, columns
    // first .. first + live ≤ n), and reads only slots written above.
    unsafe {
        let out = t.output();
        for i in 0..t.m.min(MR) {
            for v in 0..NV {
                let first = v * V::LANES;
                if first >= t.n {
                    break;
                }
                let live = (t.n - first).min(V::LANES);
                let x = V::load(cells.add(i * NV + v).cast::<f32>());
                out.write_vector::<V>(i, first, live, x);
            }
        }
    }
}

/// [`write_back`] for a whole tile of a row-major C, straight from the
/// registers: loops of constant length over `acc` only, which unroll, so
/// `acc` is never indexed at run time. α = 1 and β = 1 skip their
/// multiplications (exact, so the bits are the same).
///
/// Each step of `α·acc + β·C + bias`, then ReLU, is a pass of its own over
/// the tile, with a one-operation body: with the whole epilogue in one body,
/// LLVM stopped unrolling the loops for some edge tiles (4×64, 6×16 on
/// AVX2), indexed `acc` at run time and so kept it in memory, storing every
/// accumulator on every k step. Per element the operations and their order
/// are the same either way.
///
/// # Safety
/// As [`write_back`], with `t.m = MR`, `t.n = NR` and `t.c_cs = 1`.
#[inline(always)]
unsafe fn write_full_tile<V: Simd, const MR: usize, const NV: usize>(
    t: &Tile,
    acc: &[[V; NV]; MR],
) {
    // SAFETY: the caller guarantees the ISA and that the MR × NR tile at
    // `t.c` (rows `c_rs` apart, columns contiguous) is valid, as is the
    // bias for it.
    unsafe {
        let out = t.output();
        let mut r = *acc;
        let at = |i: usize, v: usize| t.c.add(i * t.c_rs + v * V::LANES);
        if t.alpha != 1.0 {
            let alpha = V::splat(t.alpha);
            for row in r.iter_mut() {
                for cell in row.iter_mut() {
                    *cell = cell.mul(alpha);
                }
            }
        }
        if t.beta == 1.0 {
            for (i, row) in r.iter_mut().enumerate() {
                for (v, cell) in row.iter_mut().enumerate() {
                    *cell = cell.add(V::load(at(i, v)));
                }
            }
        } else if t.beta != 0.0 {
            let beta = V::splat(t.beta);
            for (i, row) in r.iter_mut().enumerate() {
                for (v, cell) in row.iter_mut().enumerate() {
                    *cell = cell.add(V::load(at(i, v)).mul(beta));
                }
            }
        }
        if !t.bias.is_null() {
            for (i, row) in r.iter_mut().enumerate() {
                for (v, cell) in row.iter_mut().enumerate() {
                    *cell = cell.add(out.bias_vector::<V>(i, v * V::LANES, V::LANES));
                }
            }
        }
        if t.relu {
            for row in r.iter_mut() {
                for cell in row.iter_mut() {
                    *cell = cell.relu();
                }
            }
        }
        for (i, row) in r.iter().enumerate() {
            for (v, cell) in row.iter().enumerate() {
                cell.store(at(i, v));
            }
        }
    }
}

/// `iters` rounds of `N` independent vector FMA chains (enough to cover the
/// FMA latency on every port), the body of the peak-throughput probe.
///
/// # Safety
/// The ISA of `V` must be available.
#[inline(always)]
pub(crate) unsafe fn fma_chains<V: Simd, const N: usize>(iters: usize) -> f32 {
    // SAFETY: the caller guarantees the ISA; `lanes` has room for one vector.
    unsafe {
        let mut acc = [V::splat(1.0); N];
        let (x, y) = (V::splat(0.999_999), V::splat(1e-7));
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = a.mul_add(x, y);
            }
        }
        let mut sum = V::zero();
        for a in acc {
            sum = sum.add(a);
        }
        let mut lanes = [0.0f32; 16];
        sum.store(lanes.as_mut_ptr());
        lanes[..V::LANES].iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ragged B panel is packed [`MicroKernel::panel_width`] wide, so no
    /// tile that may run on it can read further: for every kernel, every
    /// live width and every row count, the tile `edge` picks reads at most
    /// that many lanes, a whole number of vectors covering the live columns.
    #[test]
    fn every_tile_on_a_ragged_panel_reads_within_its_width() {
        for kind in Kernel::supported() {
            let kern = MicroKernel::new(kind).expect("a supported kernel");
            for cols in 1..=kern.nr {
                let width = kern.panel_width(cols);
                assert!(
                    width >= cols && width <= kern.nr && width.is_multiple_of(kern.lanes),
                    "{kind:?}: {cols} columns, width {width}"
                );
                for rows in 1..=kern.mr {
                    let reads = kern.edge_for(rows, cols).map_or(kern.nr, |e| e.cols);
                    assert!(
                        reads <= width,
                        "{kind:?}: a {rows}×{cols} corner runs a tile reading {reads} lanes of a {width}-wide panel"
                    );
                }
            }
            assert_eq!(kern.panel_width(kern.nr), kern.nr);
        }
    }

    /// The tile that packs B as it reads it computes the bits of the
    /// strided body on the same operands, and leaves behind exactly the
    /// rows of B it read, NR floats each, one after another: on every
    /// kernel (each SIMD body against the scalar one's contract), with a
    /// k that is not a multiple of the unrolling, β = 0 over a NaN C and
    /// β = 1, a bias and a ReLU.
    #[test]
    fn the_b_packing_tile_computes_the_strided_tile_and_packs_b() {
        let value = |i: usize| ((i * 7919 + 13) % 1009) as f32 / 1009.0 - 0.5;
        for kind in Kernel::supported() {
            let kern = MicroKernel::new(kind).expect("a supported kernel");
            let (mr, nr) = (kern.mr, kern.nr);
            for k in [1, UNROLL * 5 + 3, 64] {
                // A row-major (in place), B rows wider than the tile.
                let (a_rs, b_rs) = (k + 3, nr + 5);
                let a: Vec<f32> = (0..mr * a_rs).map(value).collect();
                let b: Vec<f32> = (0..k * b_rs).map(|i| value(i + 101)).collect();
                let bias: Vec<f32> = (0..nr).map(|j| value(j + 7)).collect();
                for (beta, relu) in [(0.0, false), (1.0, true)] {
                    let c0: Vec<f32> = (0..mr * nr)
                        .map(|i| if beta == 0.0 { f32::NAN } else { value(i + 3) })
                        .collect();
                    let (mut plain, mut packing) = (c0.clone(), c0);
                    let mut copy = vec![f32::NAN; k * nr];
                    let tile = |c: &mut [f32]| Tile {
                        k,
                        a: a.as_ptr(),
                        a_rs,
                        a_cs: 1,
                        b: b.as_ptr(),
                        b_rs,
                        c: c.as_mut_ptr(),
                        c_rs: nr,
                        c_cs: 1,
                        m: mr,
                        n: nr,
                        alpha: 0.75,
                        beta,
                        bias: bias.as_ptr(),
                        bias_rows: false,
                        relu,
                    };
                    // SAFETY: A has MR rows of k values at `a_rs`, B k rows
                    // of NR values at `b_rs`, C and the bias MR × NR and NR,
                    // the copy k × NR floats of its own.
                    unsafe {
                        kern.strided(&tile(&mut plain));
                        kern.packing_b(&tile(&mut packing), copy.as_mut_ptr());
                    }
                    let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&packing), bits(&plain), "{kind:?}, k {k}, β {beta}");
                    for p in 0..k {
                        assert_eq!(
                            copy[p * nr..(p + 1) * nr],
                            b[p * b_rs..p * b_rs + nr],
                            "{kind:?}, k {k}: row {p} of the packed panel"
                        );
                    }
                }
            }
        }
    }

    /// A split tail's tiles read only their own rows of an A in place:
    /// for every kernel and remainder, whatever `tail_split` allows is a
    /// row count that `edge` serves exactly at every width, and covers the
    /// same `MR + r` rows.
    #[test]
    fn a_split_tail_reads_only_its_rows() {
        for kind in Kernel::supported() {
            let kern = MicroKernel::new(kind).expect("a supported kernel");
            for r in 0..kern.mr {
                let Some(h) = kern.tail_split(r) else {
                    continue;
                };
                assert_eq!(2 * h, kern.mr + r, "{kind:?}, r {r}");
                assert!(h > r && h < kern.mr, "{kind:?}, r {r}: h {h}");
                for cols in 1..=kern.nr {
                    let e = kern.edge_for(h, cols).expect("an edge tile for h rows");
                    assert_eq!(e.rows, h, "{kind:?}: {h}×{cols} runs a {}-row tile", e.rows);
                }
            }
        }
        // The 6×64 tile splits a 128-row batch's last 8 rows as 4 + 4.
        if let Some(kern) = MicroKernel::new(Kernel::Avx512) {
            assert_eq!(kern.tail_split(2), Some(4));
            assert_eq!(kern.tail_split(4), None);
        }
    }
}
