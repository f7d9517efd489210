//! Block sizes for the loop nest, and how work is split between threads.
//!
//! The block maxima come from the caches of the machine at hand
//! ([`fit_to_caches`], from [`CacheSizes::detected`]); each kernel's own
//! constants are the fallback when the caches cannot be read. The functions
//! below even those maxima out over the actual problem, so a dimension just
//! above a block size is not left with a sliver.

use super::cache::CacheSizes;
use super::kernel::MicroKernel;

/// Cache-fitted block maxima for `kern`, from the loop order of `loops.rs`
/// (IR outside JR: one A micro-panel is reused from L1 against every B
/// micro-panel of the packed B block, which streams from L2):
///
/// - **KC**: the A micro-panel (`MR × KC` floats) takes half of L1d; the
///   other half is for the B lines streaming past and the C tile. Clamped
///   to 128..=384: below 128 the C write-back per K slice costs over 3 % of
///   the FMAs; on a Xeon with AVX-512 (6×64 tile) KC from 192 to 384
///   measured the same within noise and 512 lost about 3 %.
/// - **NC**: the packed B block (`KC × NC`) takes half of L2, so B micro-panels
///   come from L2 while A panels and C pass through the other half; unless
///   that leaves fewer than [`MIN_L2_NC`] columns. Every B block packs all of
///   A again (the IC loop is inside JC), so a narrow block repacks A many
///   times: with a 512 KiB L2 and KC 384 (NC 160) a 2048³ product packed A
///   13 times and ran at 51 GFLOP/s against 74–78 with NC 1024–4080 (Zen 3,
///   1 thread, AVX2). The B block then takes half of this core's L3 share
///   instead, at most [`MAX_NC`] columns: its micro-panels stream from L3 to
///   the A micro-panel in L1, `4·NR` bytes per k step of `MR·NR` FMAs
///   (11 bytes a cycle for the AVX2 6×16 tile), which L3 sustains.
/// - **MC**: the packed A block (`MC × KC`) takes a quarter of L2, so it is
///   still there when its panels are used, right after packing.
///
/// KC depends on the machine and the kernel only, never on the thread count,
/// so results stay bit-identical for any number of threads.
pub(crate) fn fit_to_caches(mut kern: MicroKernel, caches: Option<CacheSizes>) -> MicroKernel {
    let Some(c) = caches else {
        return kern;
    };
    let f32s = |bytes: usize| bytes / 4;
    let kc = (f32s(c.l1d / 2) / kern.mr).clamp(128, 384) / 8 * 8;
    let cols_in = |bytes: usize| f32s(bytes) / kc / kern.nr * kern.nr;
    let mut nc = cols_in(c.l2 / 2).max(4 * kern.nr);
    if nc < MIN_L2_NC {
        nc = nc.max(cols_in(c.l3 / 2).min(MAX_NC / kern.nr * kern.nr));
    }
    let mc = (f32s(c.l2 / 4) / kc / kern.mr).max(2) * kern.mr;
    (kern.kc, kern.mc, kern.nc) = (kc, mc, nc);
    kern
}

/// The narrowest B block kept in L2 (see [`fit_to_caches`]): at 512
/// columns a re-pack of A costs one element per 64 AVX2 FMAs.
const MIN_L2_NC: usize = 512;

/// The widest B block, BLIS's NC for AVX2 and AVX-512 (its pack buffer is
/// `KC × 4080` floats, 6 MiB at KC 384).
const MAX_NC: usize = 4080;

/// The step that splits `len` into the fewest parts of at most `max`, all
/// about equal, rounded up to a multiple of `unit`.
pub(crate) fn balanced(len: usize, max: usize, unit: usize) -> usize {
    let parts = len.div_ceil(max).max(1);
    len.div_ceil(parts).div_ceil(unit).max(1) * unit
}

/// The PC step. It depends only on `k` and the kernel, never on the thread
/// count: every element of C sees the same sequence of K slices, which is
/// what makes results bit-identical for any number of threads.
pub(crate) fn kc(kern: &MicroKernel, k: usize) -> usize {
    balanced(k, kern.kc, 8)
}

/// The JC step for `n` columns on `threads` threads. NC bounds the B block
/// one core streams from its L2; split into column bands, each of `threads`
/// cores holds only its share, so the block may be `threads` times wider.
/// (How columns are grouped into blocks does not change any element's
/// arithmetic, so results stay the same for every thread count.)
pub(crate) fn nc(kern: &MicroKernel, n: usize, threads: usize) -> usize {
    balanced(n, kern.nc * threads.max(1), kern.nr)
}

/// The IC step for a thread's `rows`.
pub(crate) fn mc(kern: &MicroKernel, rows: usize) -> usize {
    balanced(rows, kern.mc, kern.mr)
}

/// GEMMs below this many flops (2·m·n·k, ≈ 120 µs on one AVX-512 core) run
/// on the calling thread. Handing work to rayon costs a few microseconds
/// when the other workers are awake, but in a training step they have
/// usually gone to sleep since the last parallel op, and waking one (on a
/// virtual machine, a halted vCPU) costs tens of microseconds: with 4
/// Mflop, the small MLP (two 12.8 Mflop products a step) trained at
/// 178,000 samples/s on 2 threads against 300,000 on one; with 24, 265,000.
/// 16 keeps those products on one thread and gives a convolution's
/// per-image products (64×288×576 and its gradients, 21 Mflop) a second
/// one, which 24 and 12 (below) did not: called cold on 2 threads (Zen 3,
/// `gemm_report`, 4 alternations) they ran at 83–88 GFLOP/s, 0.78–0.79× the
/// peers that use both cores, and now at 135–142 (training steps run with
/// the workers awake and use the thresholds further down).
pub(crate) const PARALLEL_MIN_FLOPS: usize = 16 << 20;

/// Each extra thread must get at least this much work.
const FLOPS_PER_THREAD: usize = 8 << 20;

/// The same two while [`crate::with_workers_awake`] keeps the workers
/// polling, when a split costs only microseconds (small MLP, 2 threads:
/// 310,000–321,000 samples/s with the values above, 349,000–367,000 with
/// these).
const AWAKE_MIN_FLOPS: usize = 8 << 20;
const AWAKE_FLOPS_PER_THREAD: usize = 4 << 20;

/// How many threads a product of this size deserves, out of `budget`.
pub(crate) fn threads_for(m: usize, n: usize, k: usize, budget: usize) -> usize {
    let flops = m.saturating_mul(n).saturating_mul(k).saturating_mul(2);
    let (min, per_thread) = if crate::parallel::workers_awake() {
        (AWAKE_MIN_FLOPS, AWAKE_FLOPS_PER_THREAD)
    } else {
        (PARALLEL_MIN_FLOPS, FLOPS_PER_THREAD)
    };
    if flops < min {
        return 1;
    }
    budget.clamp(1, (flops / per_thread).max(1))
}

/// How `threads` tasks tile a block of `m` rows by `n` columns, `kc` deep:
/// `(tm, tn)` with `tm · tn = threads`, tm row bands (IC loop) times tn
/// column bands (JR loop). Chooses the split that wastes the fewest
/// micro-tiles, favouring column bands: with IR outside JR every A
/// micro-panel sweeps all the B panels of its task, so a task should own
/// its B panels (each column band packs its own, in its core's L2), while
/// row bands would all stream the same B block, half of it from the other
/// core's cache. (128×784×512 on 2 threads: 163 GFLOP/s with row bands, the
/// same as 1 thread.)
///
/// Except when A is taller than one A block and the B block is small (at
/// most half of what NC allows: a quarter of L2, or, where L2 is too small
/// and NC comes from L3, half of that L3-sized block; that case was only
/// measured together with the L3-sized NC, Zen 3 on 2 threads: the weight
/// gradient 92 → 122 GFLOP/s): each column band then
/// packs every A block itself, all of A once per band, while a B block that
/// small is cheap to share. Row bands pack each A row once. (The MLP's
/// weight gradient, 784×128×512 with both threads awake: 242–253 GFLOP/s
/// with column bands, 302–307 with row bands; 2048³, whose B block is
/// the full L2 half, lost 10 % with row bands.)
pub(crate) fn grid(
    kern: &MicroKernel,
    m: usize,
    n: usize,
    kc: usize,
    threads: usize,
) -> (usize, usize) {
    let (mp, np) = (m.div_ceil(kern.mr), n.div_ceil(kern.nr));
    let small_b = kc * n * 2 <= kern.kc * kern.nc;
    if threads > 1 && mc(kern, m) < m && small_b && mp >= threads {
        return (threads, 1);
    }
    let used =
        |parts: usize, panels: usize| panels as f64 / (parts * panels.div_ceil(parts)) as f64;
    let mut best = (threads, 1);
    let mut best_score = -1.0;
    for tn in 1..=threads {
        if !threads.is_multiple_of(tn) {
            continue;
        }
        let tm = threads / tn;
        // Row bands share one B block between cores: only when clearly better.
        let row_cost = if tm > 1 { 0.9 } else { 1.0 };
        let score = used(tm, mp) * used(tn, np) * row_cost;
        if score >= best_score {
            best = (tm, tn);
            best_score = score;
        }
    }
    best
}

/// Band `i` of `panels` micro-panels split into `parts` contiguous,
/// near-equal ranges.
pub(crate) fn band(panels: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    (panels * i / parts)..(panels * (i + 1) / parts)
}

/// Row band `i` of `rows` rows split into `parts` bands of whole MR-row
/// tiles (the last tile may be partial): the rows it covers.
pub(crate) fn row_band(rows: usize, mr: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    let tiles = band(rows.div_ceil(mr), parts, i);
    (tiles.start * mr)..(tiles.end * mr).min(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_b_block_too_narrow_for_l2_moves_to_l3_and_a_wide_one_stays() {
        let kern = *crate::gemm::kernel::selected();
        let (kib, mib) = (1 << 10, 1 << 20);
        let fit = |l1d, l2, l3| fit_to_caches(kern, Some(CacheSizes { l1d, l2, l3 }));
        // A B block that fills the L2 half with at least MIN_L2_NC columns
        // stays there, whatever L3 holds.
        let big_l2 = fit(32 * kib, 64 * mib, 256 * mib);
        assert_eq!(big_l2.nc, 32 * mib / 4 / big_l2.kc / kern.nr * kern.nr);
        // A small L2 would leave a narrow block: it takes half of L3 instead,
        // capped at MAX_NC.
        let small_l2 = fit(32 * kib, 64 * kib, 16 * mib);
        assert!(small_l2.nc >= MIN_L2_NC, "nc {}", small_l2.nc);
        assert!(small_l2.nc <= MAX_NC && small_l2.nc % kern.nr == 0);
        // Without an L3 it keeps what L2 gives (at least four micro-panels).
        let no_l3 = fit(32 * kib, 64 * kib, 0);
        assert!(no_l3.nc < MIN_L2_NC && no_l3.nc >= 4 * kern.nr);
        // KC comes from L1d alone.
        assert_eq!(small_l2.kc, no_l3.kc);
        assert_eq!(small_l2.kc, big_l2.kc);
    }

    #[test]
    fn tall_a_with_a_small_b_block_splits_rows_and_the_rest_splits_columns() {
        let kern = crate::gemm::kernel::selected();
        // (An A block holds at least two micro-panels, a B block four.)
        let (tall, short) = (3 * kern.mc, 2 * kern.mr);
        let n = 8 * kern.nr;
        let wide = kern.nc / kern.nr / 2 * 2 * kern.nr;
        // A taller than one A block, B block a quarter of L2 or less: each
        // column band would pack all of A itself.
        let shallow = kern.kc * kern.nc / (2 * n);
        assert_eq!(grid(kern, tall, n, shallow, 2), (2, 1));
        // A B block of more than a quarter of L2 is not shared between cores.
        assert_eq!(grid(kern, tall, wide, kern.kc, 2), (1, 2));
        // A in one block is packed once whatever the split.
        assert_eq!(grid(kern, short, n, shallow, 2), (1, 2));
        // One thread never splits.
        assert_eq!(grid(kern, tall, n, shallow, 1), (1, 1));
    }
}
