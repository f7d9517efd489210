//! The f32 GEMM every matmul in Ember goes through: `C ← αAB + βC`.
//!
//! Operands are strided views ([`MatRef`], [`MatMut`]), so a transposed
//! operand is just swapped strides and costs no copy.
//!
//! ```
//! use ember_tensor::gemm::{gemm, MatMut, MatRef, Parallelism};
//!
//! let a = [1.0, 2.0, 3.0, 4.0]; // 2×2, row-major
//! let b = [5.0, 6.0, 7.0, 8.0];
//! let mut c = [0.0; 4];
//! gemm(
//!     1.0,
//!     MatRef::new(&a, 2, 2, 2, 1),
//!     MatRef::new(&b, 2, 2, 1, 2), // B read transposed
//!     0.0,
//!     MatMut::new(&mut c, 2, 2, 2, 1),
//!     Parallelism::Sequential,
//! );
//! assert_eq!(c, [17.0, 23.0, 39.0, 53.0]);
//! ```
//!
//! ## How it works (see `docs/gemm.md`)
//! - `loops.rs`: the BLIS loop nest JC → PC → IC → JR → IR, threaded over IC/JR;
//!   `tasks.rs`: how a split's tasks are shared out between threads.
//! - `blocking.rs`: block sizes and the thread split; `pack.rs`: packing into
//!   aligned, reused panels; `small.rs`: the path for products too small to pack.
//! - `kernel/`: the micro-kernel contract, its body written once over a vector
//!   trait, and the scalar, AVX2+FMA and AVX-512 instances; `kernel/dot.rs`
//!   and `dot.rs`: the dot-product kernel and path for a B narrower than a
//!   vector (a classifier's logits).
//!
//! The kernel is picked once per process: the best one the CPU supports, or the
//! one named by the environment variable `EMBER_GEMM_KERNEL`
//! (`scalar`, `avx2`, `avx512` or `avx512-zen`), which panics if the CPU
//! cannot run it.
//! [`gemm_with_kernel`] forces one per call (for tests and benchmarks).

mod blocking;
mod cache;
mod dot;
mod epilogue;
mod kernel;
mod loops;
#[cfg(test)]
mod naive;
mod pack;
mod peak;
mod small;
mod tasks;
#[cfg(test)]
mod tests;

pub use cache::CacheSizes;
pub use epilogue::{Bias, Epilogue};
use kernel::MicroKernel;
use loops::{COut, Product};
pub use pack::with_scratch;
pub use peak::{fma_peak_gflops, FmaProbe};

/// How many threads a GEMM may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// Run on the calling thread only.
    Sequential,
    /// Use up to this many threads of the current rayon pool.
    Threads(usize),
}

/// A read-only strided matrix view.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// A mutable strided matrix view.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// The index one past the last element a `rows × cols` view can touch.
fn reach(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(row_stride)?
        .checked_add((cols - 1).checked_mul(col_stride)?)?
        .checked_add(1)
}

#[track_caller]
fn check_reach(what: &str, len: usize, rows: usize, cols: usize, rs: usize, cs: usize) {
    let needed = reach(rows, cols, rs, cs);
    assert!(
        needed.is_some_and(|n| n <= len),
        "{what}: a {rows}×{cols} view with strides ({rs}, {cs}) reaches element {} but the slice has {len}",
        needed.map_or("beyond usize".to_string(), |n| (n - 1).to_string()),
    );
}

impl<'a> MatRef<'a> {
    /// A `rows × cols` view where element `(i, j)` is `data[i * row_stride + j * col_stride]`.
    ///
    /// # Panics
    /// If the view reaches past the end of `data`.
    #[track_caller]
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        check_reach(
            "MatRef::new",
            data.len(),
            rows,
            cols,
            row_stride,
            col_stride,
        );
        MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The transposed view (no copy).
    pub fn t(self) -> MatRef<'a> {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    #[cfg(test)]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// The `rows × cols` sub-view starting at `(i0, j0)`; it must fit inside.
    fn block(self, i0: usize, j0: usize, rows: usize, cols: usize) -> MatRef<'a> {
        debug_assert!(i0 + rows <= self.rows && j0 + cols <= self.cols);
        let start = if rows == 0 || cols == 0 {
            0
        } else {
            i0 * self.row_stride + j0 * self.col_stride
        };
        MatRef {
            data: &self.data[start..],
            rows,
            cols,
            ..self
        }
    }
}

impl<'a> MatMut<'a> {
    /// A mutable `rows × cols` view where element `(i, j)` is `data[i * row_stride + j * col_stride]`.
    ///
    /// # Panics
    /// If the view reaches past the end of `data`.
    #[track_caller]
    pub fn new(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        check_reach(
            "MatMut::new",
            data.len(),
            rows,
            cols,
            row_stride,
            col_stride,
        );
        MatMut {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The transposed view (no copy).
    pub fn t(self) -> MatMut<'a> {
        MatMut {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Whether two distinct `(i, j)` may address the same element (a zero
    /// stride, or rows overlapping columns): such a C is written sequentially.
    fn aliases_itself(&self) -> bool {
        let mut dims = [(self.row_stride, self.rows), (self.col_stride, self.cols)];
        dims.sort_unstable();
        let [(s1, e1), (s2, e2)] = dims;
        (e1 > 1 && s1 == 0) || (e2 > 1 && s2 < s1 * e1)
    }
}

/// A micro-kernel (instruction set) the GEMM can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Portable code, no SIMD intrinsics: runs everywhere.
    Scalar,
    /// x86-64 AVX2 with FMA: a 6×16 tile of 256-bit vectors.
    Avx2,
    /// x86-64 AVX-512F, tuned for Intel cores: a 6×64 tile of 512-bit vectors.
    Avx512,
    /// x86-64 AVX-512F, tuned for AMD Zen 4/5: a 24×16 tile whose A
    /// broadcasts fold into the FMAs (see `docs/gemm.md`).
    Avx512Zen,
}

impl Kernel {
    /// Every kernel.
    pub const ALL: [Kernel; 4] = [
        Kernel::Scalar,
        Kernel::Avx2,
        Kernel::Avx512,
        Kernel::Avx512Zen,
    ];

    /// The name `EMBER_GEMM_KERNEL` and [`kernel_name`] use.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
            Kernel::Avx512Zen => "avx512-zen",
        }
    }

    /// The kernel called `name` (as [`Kernel::name`] spells it), if any.
    pub fn from_name(name: &str) -> Option<Kernel> {
        Kernel::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The tile shape and cache blocks this kernel uses on this machine, or
    /// `None` when the CPU cannot run it.
    ///
    /// ```
    /// use ember_tensor::gemm::Kernel;
    /// let blocks = Kernel::Scalar.blocks().unwrap();
    /// assert!(blocks.kc > 0 && blocks.mc % blocks.mr == 0 && blocks.nc % blocks.nr == 0);
    /// ```
    pub fn blocks(self) -> Option<Blocks> {
        let kern = MicroKernel::new(self)?;
        Some(Blocks {
            mr: kern.mr,
            nr: kern.nr,
            kc: kern.kc,
            mc: kern.mc,
            nc: kern.nc,
            caches: CacheSizes::detected(),
        })
    }

    /// Whether this CPU can run the kernel (detected at run time).
    pub fn is_supported(self) -> bool {
        MicroKernel::new(self).is_some()
    }

    /// The kernels this CPU can run, in the order of [`Kernel::ALL`].
    pub fn supported() -> Vec<Kernel> {
        Kernel::ALL
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }

    /// The kernel [`gemm`] uses in this process: `EMBER_GEMM_KERNEL` if set,
    /// else the best supported one (AVX-512 in the flavour for the CPU's
    /// vendor, then AVX2, then scalar).
    ///
    /// # Panics
    /// If `EMBER_GEMM_KERNEL` names an unknown kernel or one the CPU lacks.
    pub fn selected() -> Kernel {
        kernel::selected().kind
    }
}

/// A kernel's register tile and cache blocks (see `docs/gemm.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocks {
    /// Rows of C per micro-tile.
    pub mr: usize,
    /// Columns of C per micro-tile.
    pub nr: usize,
    /// Most K steps per packed slice.
    pub kc: usize,
    /// Most rows of A per packed block.
    pub mc: usize,
    /// Most columns of B per packed block.
    pub nc: usize,
    /// The caches the blocks were fitted to; `None` when they could not be
    /// read and the kernel's own constants are in use.
    pub caches: Option<CacheSizes>,
}

/// The name of the micro-kernel [`gemm`] uses in this process
/// (`"scalar"`, `"avx2"`, `"avx512"` or `"avx512-zen"`).
///
/// # Panics
/// If `EMBER_GEMM_KERNEL` names an unknown kernel or one the CPU lacks.
pub fn kernel_name() -> &'static str {
    Kernel::selected().name()
}

/// Which way a GEMM call went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Nothing to multiply (an empty C, `k = 0` or `α = 0`): C was only scaled by β.
    ScaleOnly,
    /// The small-problem path: operands read in place, no blocking.
    Small,
    /// The packed, blocked loop nest.
    Packed,
    /// The dot-product kernel, vector lanes along K: a B with fewer columns
    /// than a vector has lanes.
    Dot,
}

/// What a [`gemm_with_kernel`] call actually did: lets tests prove that the
/// kernel they forced really ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmRun {
    /// The kernel the micro-tiles ran on.
    pub kernel: Kernel,
    /// The path taken.
    pub route: Route,
    /// How many micro-kernel calls were made.
    pub tiles: usize,
    /// How many threads the work was split over (1 below the size threshold).
    pub threads: usize,
    /// Whether C was computed as `Cᵀ = BᵀAᵀ` (to suit C's layout or the tile shape).
    pub transposed: bool,
}

/// Computes `C ← αAB + βC`. With `β = 0`, C is only written, never read, so
/// NaN there does not leak; with `α = 0`, A and B are not read.
///
/// Results are bit-identical for every [`Parallelism`]: threads split rows and
/// columns of C, never the K dimension.
///
/// # Panics
/// If the shapes do not agree: A is m×k, B must be k×n and C m×n.
#[track_caller]
pub fn gemm(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>, par: Parallelism) {
    check_shapes("gemm", &a, &b, &c);
    let kern = kernel::selected();
    run(
        kern,
        alpha,
        a,
        b,
        beta,
        c,
        Epilogue::NONE,
        par,
        Plan::default(),
    );
}

/// Computes `C ← relu(αAB + βC + bias)`, the bias and ReLU as `epilogue`
/// says ([`Epilogue`]), applied as each register tile of C is written, not
/// in passes of their own. Otherwise as [`gemm`] (β = 0 never reads C;
/// bit-identical for every [`Parallelism`]).
///
/// # Panics
/// If the shapes do not agree (as [`gemm`]), or the bias does not have one
/// value per row (or column) of C.
#[track_caller]
pub fn gemm_fused(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    epilogue: Epilogue<'_>,
    par: Parallelism,
) {
    check_shapes("gemm_fused", &a, &b, &c);
    epilogue.check("gemm_fused", c.rows, c.cols);
    let kern = kernel::selected();
    run(kern, alpha, a, b, beta, c, epilogue, par, Plan::default());
}

/// [`gemm`] on a chosen micro-kernel, reporting what ran.
///
/// ```
/// use ember_tensor::gemm::{gemm_with_kernel, Kernel, MatMut, MatRef, Parallelism};
///
/// let (a, b, mut c) = ([2.0; 6], [3.0; 6], [0.0; 4]);
/// let run = gemm_with_kernel(
///     Kernel::Scalar,
///     1.0,
///     MatRef::new(&a, 2, 3, 3, 1),
///     MatRef::new(&b, 3, 2, 2, 1),
///     0.0,
///     MatMut::new(&mut c, 2, 2, 2, 1),
///     Parallelism::Sequential,
/// );
/// assert_eq!(c, [18.0; 4]);
/// assert_eq!(run.kernel, Kernel::Scalar);
/// assert!(run.tiles > 0);
/// ```
///
/// # Panics
/// If the shapes do not agree (as [`gemm`]), or the CPU cannot run `kernel`.
#[track_caller]
pub fn gemm_with_kernel(
    kernel: Kernel,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    par: Parallelism,
) -> GemmRun {
    check_shapes("gemm_with_kernel", &a, &b, &c);
    let kern = MicroKernel::new(kernel).unwrap_or_else(|| {
        panic!(
            "gemm_with_kernel: this CPU cannot run the {} kernel",
            kernel.name()
        )
    });
    let none = Epilogue::NONE;
    run(&kern, alpha, a, b, beta, c, none, par, Plan::default())
}

#[track_caller]
fn check_shapes(op: &str, a: &MatRef<'_>, b: &MatRef<'_>, c: &MatMut<'_>) {
    assert!(
        a.cols == b.rows && c.rows == a.rows && c.cols == b.cols,
        "{op}: A is {}×{}, B is {}×{}, C is {}×{}: need A m×k, B k×n, C m×n",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        c.rows,
        c.cols
    );
}

/// Overrides of the automatic choices, so tests can reach every path with
/// small matrices.
#[derive(Clone, Copy, Debug, Default)]
struct Plan {
    route: Option<Route>,
    threads: Option<usize>,
}

/// Picks the orientation, path and thread count, then runs.
#[allow(clippy::too_many_arguments)] // the gemm_fused signature plus the plan
fn run(
    kern: &MicroKernel,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    epilogue: Epilogue<'_>,
    par: Parallelism,
    plan: Plan,
) -> GemmRun {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut report = GemmRun {
        kernel: kern.kind,
        route: Route::ScaleOnly,
        tiles: 0,
        threads: 1,
        transposed: false,
    };
    if m == 0 || n == 0 || k == 0 || alpha == 0.0 {
        epilogue.scale(c, beta);
        return report;
    }
    let budget = match par {
        Parallelism::Sequential => 1,
        Parallelism::Threads(t) => t.min(rayon::current_num_threads()),
    };
    // Both are symmetric in m and n, so they hold for either orientation.
    report.threads = if c.aliases_itself() {
        1
    } else {
        plan.threads
            .unwrap_or_else(|| blocking::threads_for(m, n, k, budget))
    };
    // A B narrower than a vector (or an A with so few rows, as Cᵀ) runs
    // on the dot kernel, whose lanes run along K instead of C's columns.
    let dot_as = match plan.route {
        Some(route) => (route == Route::Dot).then(|| {
            assert!(
                dot::can_run(kern, &a, &b),
                "the dot route cannot run this product"
            );
            false
        }),
        None if dot::fits(kern, &a, &b) => Some(false),
        None if dot::fits(kern, &b.t(), &a.t()) => Some(true),
        None => None,
    };
    if dot_as.is_none() && scratch_ct_pays(kern, &a, &b, beta, &c, report.threads, plan) {
        report.transposed = true;
        report.route = Route::Packed;
        report.tiles = via_scratch_ct(kern, alpha, a, b, beta, c, epilogue);
        return report;
    }
    // Cᵀ = BᵀAᵀ when the dot kernel runs that way, or when that suits C's
    // layout or costs less work.
    report.transposed = dot_as.unwrap_or_else(|| transpose_pays(kern, &a, &b, &c, report.threads));
    let (a, b, c, epilogue) = if report.transposed {
        (b.t(), a.t(), c.t(), epilogue.t())
    } else {
        (a, b, c, epilogue)
    };
    let product = Product {
        alpha,
        a,
        b,
        beta,
        epilogue,
        c: COut {
            ptr: c.data.as_mut_ptr(),
            rs: c.row_stride,
            cs: c.col_stride,
        },
    };
    if dot_as.is_some() {
        report.route = Route::Dot;
        report.tiles = dot::run(kern, &product, report.threads);
        return report;
    }
    let small = report.threads == 1 && small::fits(a.rows, b.cols, a.cols);
    if plan.route.map_or(small, |r| r == Route::Small) {
        report.route = Route::Small;
        report.threads = 1;
        report.tiles = small::run(kern, &product);
    } else {
        report.route = Route::Packed;
        report.tiles = loops::packed(kern, &product, report.threads);
    }
    report
}

/// Whether to compute `Cᵀ = BᵀAᵀ` into a row-major scratch and copy it
/// into C transposed ([`via_scratch_ct`]): on one thread, a row-major C,
/// B column-major (a Linear layer's `X·Wᵀ`) and a kernel that reads A in
/// place, when that way's tiles plus the floats it moves (Aᵀ packed, Cᵀ
/// copied out, and in too where β reads C), at LANES multiply-adds a
/// float, cost at least 5 % less than the packed route's tiles plus B's
/// transposing pack.
///
/// Packing a transposed B waits on memory (its lines are a row of B apart:
/// 14–16 % of the Linear forwards' time, `perf`, this Xeon), and as Cᵀ B's
/// transpose is read in place, as the broadcast operand. Medians of
/// alternated pairs, one thread: 128×784×512 Bᵀ +5–8 %, 128×512×512 Bᵀ
/// +4–7 %. Not on more threads: two column bands of Cᵀ (its 128 columns
/// are two panels) and the copy out lost 2–7 % against the panel tasks,
/// and own-B row bands with the copy out on the calling thread ±1 % and
/// −3 to −4 %.
fn scratch_ct_pays(
    kern: &MicroKernel,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    beta: f32,
    c: &MatMut<'_>,
    threads: usize,
    plan: Plan,
) -> bool {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let packed_route = plan
        .route
        .map_or(!small::fits(m, n, k), |r| r == Route::Packed);
    let shapes_fit = threads == 1
        && kern.a_in_place
        && packed_route
        && c.col_stride == 1
        && c.row_stride >= c.cols
        && b.row_stride == 1
        && b.col_stride != 1;
    if !shapes_fit {
        return false;
    }
    // The tiles each way (`work`) plus the floats each way moves, at about
    // LANES multiply-adds a float: B's transposing pack kept; as Cᵀ, Aᵀ
    // packed and C copied out (and in, where β reads it).
    let lanes = kern.lanes as f64;
    let c_copies = if beta == 0.0 { 1 } else { 2 };
    let keep = work(kern, m, n, k, true, 1) + lanes * (k * n) as f64;
    let moved = (m * k + c_copies * m * n) as f64;
    let swap = work(kern, n, m, k, true, 1) + lanes * moved;
    swap * 1.05 < keep
}

/// `C ← αAB + βC` (and the epilogue) on one thread as `Cᵀ = BᵀAᵀ` into this
/// thread's row-major scratch, which is then copied into C transposed (with
/// β ≠ 0, C is first copied in the same way): each element of C gets the
/// operations, in the same order, of the packed route, so the bits are the
/// same. Returns the micro-kernel calls.
fn via_scratch_ct(
    kern: &MicroKernel,
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    epilogue: Epilogue<'_>,
) -> usize {
    let (m, n) = (c.rows, c.cols);
    pack::with_buf(&pack::CT_BUF, n * m, |ct| {
        if beta != 0.0 {
            let c_now = MatRef {
                data: &*c.data,
                rows: m,
                cols: n,
                row_stride: c.row_stride,
                col_stride: c.col_stride,
            };
            // SAFETY: `ct` holds n rows of m floats, apart from C.
            unsafe { pack::transpose_into(ct.as_mut_ptr(), m, c_now) };
        }
        let product = Product {
            alpha,
            a: b.t(),
            b: a.t(),
            beta,
            epilogue: epilogue.t(),
            c: COut {
                ptr: ct.as_mut_ptr(),
                rs: m,
                cs: 1,
            },
        };
        let tiles = loops::packed(kern, &product, 1);
        let ct = MatRef::new(ct, n, m, m, 1);
        // SAFETY: C has m rows of n ≤ row_stride floats (row-major), apart
        // from the scratch.
        unsafe { pack::transpose_into(c.data.as_mut_ptr(), c.row_stride, ct) };
        tiles
    })
}

/// Whether to compute `Cᵀ = BᵀAᵀ` instead: the kernel writes rows of C best,
/// so a column-major C is transposed unless that costs clearly more work;
/// otherwise transpose only when it costs clearly less (see [`work`]).
fn transpose_pays(
    kern: &MicroKernel,
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    c: &MatMut<'_>,
    threads: usize,
) -> bool {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    // As Cᵀ, B's role is taken by Aᵀ, whose rows are contiguous when A's columns are.
    let keep = work(kern, m, n, k, b.col_stride == 1, threads);
    let swap = work(kern, n, m, k, a.row_stride == 1, threads);
    match (c.col_stride == 1, c.row_stride == 1) {
        (true, false) => swap * 1.15 < keep,
        (false, true) => swap < keep * 1.15,
        _ => swap < keep,
    }
}

/// The cost of an `m × k · k × n` product in one orientation, counted in
/// vector-lane multiply-adds: the tiles it runs (rows rounded up to the
/// kernel's smallest edge tile, columns to whole vectors), plus, on the
/// small path, packing a B whose rows are not contiguous there (read in
/// place otherwise). A transposing pack moves about 3 floats a cycle while
/// the FMA units do 2 vectors of lanes, so one packed float is charged
/// `2 · LANES` multiply-adds. (The logits product 128×512×10 ran 1.5× faster
/// kept than as Cᵀ, although Cᵀ pads fewer lanes, because Cᵀ packs Aᵀ.)
fn work(
    kern: &MicroKernel,
    m: usize,
    n: usize,
    k: usize,
    b_rows_contiguous: bool,
    threads: usize,
) -> f64 {
    let rows = m.next_multiple_of(kern.row_unit());
    let cols = n.next_multiple_of(kern.lanes);
    let tiles = (rows * cols * k) as f64;
    let small = threads == 1 && small::fits(m, n, k);
    let packing = if small && !b_rows_contiguous {
        (k * cols * 2 * kern.lanes) as f64
    } else {
        0.0
    };
    tiles + packing
}
