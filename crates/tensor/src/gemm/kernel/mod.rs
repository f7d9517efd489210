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
mod scalar;

use std::sync::OnceLock;

use super::Kernel;

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
}

/// A micro-kernel entry point (packed or strided A/B).
pub(crate) type TileFn = unsafe fn(&Tile);

/// A micro-kernel for one ISA, with its register-tile shape and cache blocking.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MicroKernel {
    pub kind: Kernel,
    /// Rows of C per tile.
    pub mr: usize,
    /// Columns of C per tile.
    pub nr: usize,
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
    /// Shorter tiles `(rows, strided entry)`, ascending, for a last row panel
    /// with fewer than MR live rows: no FMAs are spent on padding rows.
    short: &'static [(usize, TileFn)],
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

    /// Runs a tile with fewer than MR live rows (`t.m < MR`), reading A
    /// through the strides in `t`, on the shortest tile that covers them. The
    /// arithmetic per element is the same as the full tile's, so the result is too.
    ///
    /// # Safety
    /// As [`MicroKernel::strided`]: A has MR readable (zero-padded) rows.
    #[inline]
    pub unsafe fn edge(&self, t: &Tile) {
        let tile = self.short.iter().find(|(rows, _)| *rows >= t.m);
        // SAFETY: `self` exists, so the ISA was detected; a short tile reads
        // only its first `rows ≤ MR` rows of A; contract forwarded.
        unsafe { (tile.map_or(self.strided, |(_, f)| *f))(t) }
    }

    /// `iters` rounds of independent FMA chains (the peak probe); returns a
    /// value that depends on all of them.
    pub fn fma_loop(&self, iters: usize) -> f32 {
        // SAFETY: `self` exists, so the ISA was detected.
        unsafe { (self.fma_loop)(iters) }
    }

    /// The micro-kernel for `kind`, or `None` when this CPU cannot run it.
    pub fn new(kind: Kernel) -> Option<MicroKernel> {
        match kind {
            Kernel::Scalar => Some(scalar::kernel()),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => avx2::kernel(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => avx512::kernel(),
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
            let kind = Kernel::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .unwrap_or_else(|| {
                    panic!("{KERNEL_ENV}={name}: unknown kernel (expected scalar, avx2 or avx512)")
                });
            assert!(
                kind.is_supported(),
                "{KERNEL_ENV}={name}: this CPU cannot run the {name} kernel"
            );
            kind
        }
        None => Kernel::ALL
            .into_iter()
            .rev()
            .find(|k| k.is_supported())
            .unwrap_or(Kernel::Scalar),
    }
}

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
    // SAFETY: the caller guarantees the ISA and that every A/B address read
    // below is inside its operand (contract: k steps, MR rows, NV·LANES lanes).
    unsafe {
        let mut acc = [[V::zero(); NV]; MR];
        let (mut a, mut b) = (t.a, t.b);
        for _ in 0..t.k {
            let mut bv = [V::zero(); NV];
            for (v, slot) in bv.iter_mut().enumerate() {
                *slot = V::load(b.add(v * V::LANES));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = V::splat(*a.add(i * a_rs));
                for (v, cell) in row.iter_mut().enumerate() {
                    *cell = ai.mul_add(bv[v], *cell);
                }
            }
            a = a.add(a_cs);
            b = b.add(b_rs);
        }
        write_back::<V, MR, NV>(t, &acc);
    }
}

/// `C ← α·acc + β·C` on the live corner; β = 0 never reads C. Full tiles of a
/// row-major C use vector stores, the rest goes element by element with the
/// same arithmetic (so the result does not depend on C's layout).
///
/// # Safety
/// As [`tile_body`]: `t.c` addresses a valid `t.m × t.n` view.
#[inline(always)]
unsafe fn write_back<V: Simd, const MR: usize, const NV: usize>(t: &Tile, acc: &[[V; NV]; MR]) {
    let nr = NV * V::LANES;
    // SAFETY: the caller guarantees the ISA and that the live m × n corner of
    // C (strides c_rs, c_cs) is valid for reads and writes.
    unsafe {
        if t.m == MR && t.n == nr && t.c_cs == 1 {
            let alpha = V::splat(t.alpha);
            let beta = V::splat(t.beta);
            for (i, row) in acc.iter().enumerate() {
                for (v, cell) in row.iter().enumerate() {
                    let p = t.c.add(i * t.c_rs + v * V::LANES);
                    let mut r = cell.mul(alpha);
                    if t.beta != 0.0 {
                        r = r.add(V::load(p).mul(beta));
                    }
                    r.store(p);
                }
            }
        } else {
            // Spill the accumulators: `acc` is MR rows of NR contiguous floats.
            let flat = acc.as_ptr().cast::<f32>();
            for i in 0..t.m {
                for j in 0..t.n {
                    let p = t.c.add(i * t.c_rs + j * t.c_cs);
                    let mut r = *flat.add(i * nr + j) * t.alpha;
                    if t.beta != 0.0 {
                        r += *p * t.beta;
                    }
                    *p = r;
                }
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
