//! Every supported kernel, forced in turn, against the f64 reference over
//! sizes, boundaries, layouts, α, β and epilogues (bias on rows or columns,
//! ReLU); plus the fused epilogue bit for bit against its unfused steps,
//! thread-count invariance and agreement with `matrixmultiply`.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::kernel::{relu, MicroKernel};
use super::{
    gemm_with_kernel, naive, run, scratch_ct_pays, Bias, Epilogue, GemmRun, Kernel, MatMut, MatRef,
    Parallelism, Plan, Route,
};

/// How a matrix sits in its buffer.
#[derive(Clone, Copy, Debug)]
enum Layout {
    RowMajor,
    ColMajor,
    /// Row-major with 3 spare floats after each row.
    Padded,
    /// Neither stride is 1: every other float, rows apart by an odd gap.
    Gapped,
}

const LAYOUTS: [Layout; 4] = [
    Layout::RowMajor,
    Layout::ColMajor,
    Layout::Padded,
    Layout::Gapped,
];

/// A matrix in a buffer, possibly with gaps the GEMM must not touch.
struct Mat {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl Mat {
    fn new(rows: usize, cols: usize, layout: Layout, fill: f32) -> Mat {
        let (rs, cs) = match layout {
            Layout::RowMajor => (cols, 1),
            Layout::ColMajor => (1, rows),
            Layout::Padded => (cols + 3, 1),
            Layout::Gapped => (2 * cols + 1, 2),
        };
        let len = if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        };
        Mat {
            data: vec![fill; len],
            rows,
            cols,
            rs,
            cs,
        }
    }

    fn random(rows: usize, cols: usize, layout: Layout, rng: &mut ChaCha8Rng) -> Mat {
        let mut m = Mat::new(rows, cols, layout, f32::NAN);
        for i in 0..rows {
            for j in 0..cols {
                m.data[i * m.rs + j * m.cs] = rng.random_range(-1.0..1.0);
            }
        }
        m
    }

    /// The same values in `layout`.
    fn laid_out(&self, layout: Layout) -> Mat {
        let mut m = Mat::new(self.rows, self.cols, layout, 0.0);
        for i in 0..self.rows {
            for j in 0..self.cols {
                m.data[i * m.rs + j * m.cs] = self.at(i, j);
            }
        }
        m
    }

    fn view(&self) -> MatRef<'_> {
        MatRef::new(&self.data, self.rows, self.cols, self.rs, self.cs)
    }

    fn view_mut(&mut self) -> MatMut<'_> {
        MatMut::new(&mut self.data, self.rows, self.cols, self.rs, self.cs)
    }

    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }

    fn in_view(&self, index: usize) -> bool {
        (0..self.rows).any(|i| (0..self.cols).any(|j| i * self.rs + j * self.cs == index))
    }
}

/// One GEMM case.
#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    layouts: [Layout; 3],
    alpha: f32,
    beta: f32,
    /// Where the epilogue's bias goes, if anywhere.
    bias: BiasOn,
    relu: bool,
    route: Option<Route>,
    threads: Option<usize>,
}

/// Which axis of C a test's bias runs along.
#[derive(Clone, Copy, Debug, PartialEq)]
enum BiasOn {
    Nowhere,
    Rows,
    Columns,
}

impl BiasOn {
    /// The `count`-th of a cycle through the three.
    fn cycle(count: usize) -> BiasOn {
        [BiasOn::Nowhere, BiasOn::Rows, BiasOn::Columns][count % 3]
    }

    /// The epilogue with `values` as its bias (one per row or column).
    fn epilogue(self, values: &[f32], relu: bool) -> Epilogue<'_> {
        let bias = match self {
            BiasOn::Nowhere => None,
            BiasOn::Rows => Some(Bias::Rows(values)),
            BiasOn::Columns => Some(Bias::Columns(values)),
        };
        Epilogue { bias, relu }
    }
}

const SENTINEL: f32 = 12345.0;

/// Runs `case` on `kernel` and checks C against the reference, that β = 0
/// ignores a NaN-filled C, that nothing outside C's view was written, and that
/// the forced kernel really ran.
fn check(kernel: Kernel, case: Case, rng: &mut ChaCha8Rng) {
    let Case { m, n, k, .. } = case;
    let a = Mat::random(m, k, case.layouts[0], rng);
    let b = Mat::random(k, n, case.layouts[1], rng);
    let mut c = Mat::new(m, n, case.layouts[2], SENTINEL);
    for i in 0..m {
        for j in 0..n {
            let v = if case.beta == 0.0 {
                f32::NAN
            } else {
                rng.random_range(-1.0..1.0)
            };
            c.data[i * c.rs + j * c.cs] = v;
        }
    }
    let mut want = Mat {
        data: c.data.clone(),
        ..Mat::new(m, n, case.layouts[2], 0.0)
    };
    naive::gemm(
        case.alpha,
        a.view(),
        b.view(),
        case.beta,
        &mut want.view_mut(),
    );
    let bias_len = match case.bias {
        BiasOn::Nowhere => 0,
        BiasOn::Rows => m,
        BiasOn::Columns => n,
    };
    let bias: Vec<f32> = (0..bias_len).map(|_| rng.random_range(-1.0..1.0)).collect();
    let bias_at = |i: usize, j: usize| match case.bias {
        BiasOn::Nowhere => 0.0,
        BiasOn::Rows => bias[i],
        BiasOn::Columns => bias[j],
    };
    for i in 0..m {
        for j in 0..n {
            let at = i * want.rs + j * want.cs;
            let z = want.data[at] + bias_at(i, j);
            want.data[at] = if case.relu { relu(z) } else { z };
        }
    }

    let kern = MicroKernel::new(kernel).expect("only supported kernels are tested");
    let plan = Plan {
        route: case.route,
        threads: case.threads,
    };
    let c_before = c.data.clone();
    let report = run(
        &kern,
        case.alpha,
        a.view(),
        b.view(),
        case.beta,
        c.view_mut(),
        case.bias.epilogue(&bias, case.relu),
        Parallelism::Sequential,
        plan,
    );

    assert_eq!(report.kernel, kernel, "{case:?}");
    if m * n * k > 0 && case.alpha != 0.0 {
        let min_tiles = if report.route == Route::Dot {
            // Full tiles of the dot kernel's rows, then the rest one by one.
            let (rows, width) = if report.transposed { (n, m) } else { (m, n) };
            let (r, _) = kern.dot_shape(width).expect("a dot kernel this wide");
            rows / r + rows % r
        } else if report.transposed {
            n.div_ceil(kern.mr) * m.div_ceil(kern.nr)
        } else {
            m.div_ceil(kern.mr) * n.div_ceil(kern.nr)
        };
        assert!(
            report.tiles >= min_tiles,
            "{kernel:?} did not run every tile: {report:?} for {case:?}"
        );
        if let Some(route) = case.route {
            assert_eq!(report.route, route, "{case:?}");
        }
    }
    for i in 0..m {
        for j in 0..n {
            let scale: f32 = (0..k).map(|p| (a.at(i, p) * b.at(p, j)).abs()).sum::<f32>()
                * case.alpha.abs()
                + if case.beta == 0.0 {
                    0.0
                } else {
                    (case.beta * c_before[i * c.rs + j * c.cs]).abs()
                }
                + bias_at(i, j).abs();
            let tol = 4.0 * f32::EPSILON * (k as f32 + 2.0) * scale + 1e-30;
            let (got, exp) = (c.at(i, j), want.at(i, j));
            assert!(
                (got - exp).abs() <= tol,
                "{kernel:?}: C[{i},{j}] = {got}, expected {exp} (tol {tol}) for {case:?}"
            );
        }
    }
    for (index, (&now, &before)) in c.data.iter().zip(&c_before).enumerate() {
        if before == SENTINEL && !c.in_view(index) {
            assert_eq!(now, SENTINEL, "wrote outside C at {index} for {case:?}");
        }
    }
}

fn routes() -> [Option<Route>; 2] {
    [Some(Route::Small), Some(Route::Packed)]
}

/// [`routes`], and the dot route where `kernel` can run it: a dot kernel
/// `n` wide and A's rows contiguous (`a`'s layout, or a single column).
fn routes_with_dot(kernel: Kernel, n: usize, k: usize, a: Layout) -> Vec<Option<Route>> {
    let kern = MicroKernel::new(kernel).expect("a supported kernel");
    let rows_contiguous = matches!(a, Layout::RowMajor | Layout::Padded) || k <= 1;
    let dot = kern.dot_shape(n).is_some() && rows_contiguous;
    let mut routes = routes().to_vec();
    if dot {
        routes.push(Some(Route::Dot));
    }
    routes
}

/// All kernels this CPU can run: the forced-kernel tests below cover each.
fn kernels() -> Vec<Kernel> {
    let ks = Kernel::supported();
    assert!(ks.contains(&Kernel::Scalar));
    ks
}

#[test]
fn small_sizes_every_kernel_every_route() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for kernel in kernels() {
        let mut count = 0usize;
        for m in 0..=33 {
            for n in 0..=33 {
                for k in 0..=33 {
                    // A deterministic sample of about one combination in 11.
                    if (m * 7 + n * 13 + k * 3) % 11 != 0 {
                        continue;
                    }
                    count += 1;
                    let layouts = [
                        LAYOUTS[count % 4],
                        LAYOUTS[(count / 4) % 4],
                        LAYOUTS[(count / 16) % 4],
                    ];
                    let alpha = [1.0, -0.5, 0.0][count % 3];
                    let beta = [0.0, 1.0, 2.5][(count / 3) % 3];
                    for route in routes_with_dot(kernel, n, k, layouts[0]) {
                        let case = Case {
                            m,
                            n,
                            k,
                            layouts,
                            alpha,
                            beta,
                            bias: BiasOn::cycle(count / 9),
                            relu: count.is_multiple_of(2),
                            route,
                            threads: Some(1 + count % 3),
                        };
                        check(kernel, case, &mut rng);
                    }
                }
            }
        }
        assert!(count > 3000);
    }
}

#[test]
fn block_boundaries_primes_layouts_alpha_beta() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for kernel in kernels() {
        let kern = MicroKernel::new(kernel).unwrap();
        let (mr, nr, kc, mc) = (kern.mr, kern.nr, kern.kc, kern.mc);
        let shapes = [
            (mr - 1, nr + 1, kc + 1),
            (mr + 1, nr - 1, kc - 1),
            (mc + 1, nr, 17),
            (mc - 1, 2 * nr + 1, 31),
            (mr, nr, 2 * kc + 1),
            (37, 41, 43),
            (97, 13, 101),
            (1, 67, 59),
            (61, 1, 53),
            (128, 10, 71),
            (37, 10, 16 * 8 + 5),
            (9, 15, 16 * 9 + 1),
        ];
        let mut count = 0;
        for (m, n, k) in shapes {
            for la in LAYOUTS {
                for lb in LAYOUTS {
                    count += 1;
                    let mut routes = routes_with_dot(kernel, n, k, la);
                    routes.push(None);
                    for route in routes {
                        let case = Case {
                            m,
                            n,
                            k,
                            layouts: [la, lb, LAYOUTS[count % 4]],
                            alpha: [1.0, -0.5, 0.0][count % 3],
                            beta: [0.0, 1.0, 2.5][(count / 3) % 3],
                            bias: BiasOn::cycle(count / 9),
                            relu: count % 4 < 2,
                            route,
                            threads: Some(1 + count % 2),
                        };
                        check(kernel, case, &mut rng);
                    }
                }
            }
        }
    }
}

#[test]
fn beta_zero_ignores_nan_and_alpha_zero_scales() {
    for kernel in kernels() {
        let a = [f32::NAN; 6];
        let b = [1.0; 6];
        let mut c = [3.0; 4];
        // α = 0: A (NaN) is not read, C ← βC.
        let run = gemm_with_kernel(
            kernel,
            0.0,
            MatRef::new(&a, 2, 3, 3, 1),
            MatRef::new(&b, 3, 2, 2, 1),
            2.0,
            MatMut::new(&mut c, 2, 2, 2, 1),
            Parallelism::Sequential,
        );
        assert_eq!(c, [6.0; 4]);
        assert_eq!(run.route, Route::ScaleOnly);
        let a = [1.0; 6];
        let mut c = [f32::NAN; 4];
        gemm_with_kernel(
            kernel,
            1.0,
            MatRef::new(&a, 2, 3, 3, 1),
            MatRef::new(&b, 3, 2, 2, 1),
            0.0,
            MatMut::new(&mut c, 2, 2, 2, 1),
            Parallelism::Sequential,
        );
        assert_eq!(c, [3.0; 4]);
    }
}

/// The fused bias and ReLU give exactly the bits of their unfused steps —
/// C filled with the bias, `gemm` with β = 1, then the ReLU — on every
/// kernel and route, over edge tiles, several K slices and a column-major C
/// (the element-by-element write-back); negative results become −0 as
/// `Var::relu` makes them.
#[test]
fn fused_epilogue_matches_bias_fill_then_relu_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for kernel in kernels() {
        let kern = MicroKernel::new(kernel).unwrap();
        let (mr, nr, kc) = (kern.mr, kern.nr, kern.kc);
        let shapes = [
            (2 * mr + 1, 2 * nr - 3, 2 * kc + 5),
            (mr, nr, 7),
            (13, 10, kc + 1),
        ];
        for (count, &(m, n, k)) in shapes.iter().enumerate() {
            let a = Mat::random(m, k, Layout::RowMajor, &mut rng);
            let b = Mat::random(k, n, LAYOUTS[count % 2], &mut rng);
            for c_layout in [Layout::RowMajor, Layout::ColMajor] {
                for (bias_on, relu_too) in [(BiasOn::Rows, true), (BiasOn::Columns, false)] {
                    let len = if bias_on == BiasOn::Rows { m } else { n };
                    let bias: Vec<f32> = (0..len).map(|_| rng.random_range(-4.0..4.0)).collect();
                    for route in routes_with_dot(kernel, n, k, Layout::RowMajor) {
                        let plan = Plan {
                            route,
                            threads: Some(1 + count % 2),
                        };
                        let par = Parallelism::Sequential;
                        let mut fused = Mat::new(m, n, c_layout, f32::NAN);
                        let epilogue = bias_on.epilogue(&bias, relu_too);
                        let (av, bv) = (a.view(), b.view());
                        run(
                            &kern,
                            1.0,
                            av,
                            bv,
                            0.0,
                            fused.view_mut(),
                            epilogue,
                            par,
                            plan,
                        );
                        let mut steps = Mat::new(m, n, c_layout, 0.0);
                        for i in 0..m {
                            for j in 0..n {
                                let v = bias[if bias_on == BiasOn::Rows { i } else { j }];
                                steps.data[i * steps.rs + j * steps.cs] = v;
                            }
                        }
                        let none = Epilogue::NONE;
                        run(&kern, 1.0, av, bv, 1.0, steps.view_mut(), none, par, plan);
                        let mut negatives = 0;
                        for i in 0..m {
                            for j in 0..n {
                                let z = steps.at(i, j);
                                negatives += usize::from(z < 0.0);
                                let want = if relu_too { relu(z) } else { z };
                                assert_eq!(
                                    fused.at(i, j).to_bits(),
                                    want.to_bits(),
                                    "{kernel:?} {route:?} {m}×{k}×{n} C {c_layout:?} \
                                     bias on {bias_on:?}: C[{i},{j}]"
                                );
                            }
                        }
                        assert!(negatives > 0, "the ReLU had nothing to clear");
                    }
                }
            }
        }
    }
}

#[test]
fn gemm_fused_rejects_a_bias_of_the_wrong_length() {
    let (a, b, mut c) = ([1.0; 6], [1.0; 6], [0.0; 4]);
    let bias = [1.0; 3];
    let result = std::panic::catch_unwind(move || {
        super::gemm_fused(
            1.0,
            MatRef::new(&a, 2, 3, 3, 1),
            MatRef::new(&b, 3, 2, 2, 1),
            0.0,
            MatMut::new(&mut c, 2, 2, 2, 1),
            Epilogue {
                bias: Some(Bias::Rows(&bias)),
                relu: false,
            },
            Parallelism::Sequential,
        );
    });
    let message = *result.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.contains("gemm_fused") && message.contains("3 values") && message.contains("2×2"),
        "{message}"
    );
}

#[test]
fn unsupported_kernels_refuse_to_build() {
    for kernel in Kernel::ALL {
        assert_eq!(MicroKernel::new(kernel).is_some(), kernel.is_supported());
    }
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(
            Kernel::Avx512.is_supported(),
            is_x86_feature_detected!("avx512f")
        );
        assert_eq!(
            Kernel::Avx512Zen.is_supported(),
            is_x86_feature_detected!("avx512f")
        );
        assert_eq!(
            Kernel::Avx2.is_supported(),
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
        );
    }
}

#[test]
fn kernel_choice_from_the_environment_value() {
    use super::kernel::choose;
    assert_eq!(choose(Some("scalar")), Kernel::Scalar);
    let best = super::kernel::preference()
        .into_iter()
        .find(|k| k.is_supported())
        .unwrap();
    assert_eq!(choose(None), best);
    // The vendor only orders the AVX-512 flavours: both or neither can run.
    assert_eq!(
        Kernel::Avx512.is_supported(),
        Kernel::Avx512Zen.is_supported()
    );
    let unknown = std::panic::catch_unwind(|| choose(Some("sse9")));
    assert!(unknown.is_err());
    for kernel in Kernel::ALL {
        let result = std::panic::catch_unwind(|| choose(Some(kernel.name())));
        assert_eq!(result.is_ok(), kernel.is_supported(), "{kernel:?}");
    }
}

/// `A·B` through the packed route on `threads` threads (β = 0 over a
/// NaN-filled row-major C): the bits of C, and how it ran.
fn packed_bits(kern: &MicroKernel, a: &Mat, b: &Mat, threads: usize) -> (Vec<u32>, GemmRun) {
    packed_bits_of_views(kern, a.view(), b.view(), threads)
}

/// As [`packed_bits`], for views.
fn packed_bits_of_views(
    kern: &MicroKernel,
    a: MatRef<'_>,
    b: MatRef<'_>,
    threads: usize,
) -> (Vec<u32>, GemmRun) {
    let (m, n) = (a.rows, b.cols);
    let mut c = Mat::new(m, n, Layout::RowMajor, f32::NAN);
    let report = run(
        kern,
        1.0,
        a,
        b,
        0.0,
        c.view_mut(),
        Epilogue::default(),
        Parallelism::Threads(threads),
        Plan {
            route: Some(Route::Packed),
            threads: Some(threads),
        },
    );
    (c.data.iter().map(|v| v.to_bits()).collect(), report)
}

/// A row-major A is read in place by the packed route (its full
/// micro-panels; a last partial one is packed), and so is a column-major
/// one with short columns (`loops::a_in_place`: every shape here has
/// fewer rows than `A_COLUMNS_IN_PLACE_MAX_STRIDE` on the machines seen so
/// far, whose MC is under 700): the bits must be those of
/// the same values packed from a layout with neither stride 1, on every
/// kernel, with partial panels, several K slices and MC blocks, on 1, 2
/// and 3 threads (the 4th shape, in two K slices, through the panel tasks
/// of `panels_through_k` where A is in place and `few_rows` where it is
/// packed).
#[test]
fn a_read_in_place_gives_the_bits_of_packed_a() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for kernel in kernels() {
        let kern = MicroKernel::new(kernel).unwrap();
        let shapes = [
            (kern.mr * 3, 2 * kern.nr + 5, 33),
            (kern.mr * 5 + 1, kern.nr, kern.kc + 9),
            (kern.mc + kern.mr + 3, 3 * kern.nr - 1, 2 * kern.kc + 1),
            // Rows in one A block, 9 B panels: on 2 threads a task per
            // panel, in place through both K slices or packed per slice;
            // on 3, the 8 full panels do not share out evenly, and 3
            // panels' rows are cut in three (`loops::PanelTasks`).
            (kern.mr * 4 + 1, 8 * kern.nr + 3, kern.kc + 45),
            // A batch of 128: on the 6×64 tile (and Zen's 24×16) its last
            // rows run as two equal tiles in place (`tail_split`); its 3
            // full B panels do not share out evenly on 2 threads, so each
            // runs one panel whole and half the rows of the other two
            // (`loops::PanelTasks`).
            (128, 250, 33),
        ];
        for (m, n, k) in shapes {
            let packed = Mat::random(m, k, Layout::Gapped, &mut rng);
            let b = Mat::random(k, n, Layout::RowMajor, &mut rng);
            for threads in [1, 2, 3] {
                let c_of = |a: &Mat| {
                    let (bits, report) = packed_bits(&kern, a, &b, threads);
                    assert!(!report.transposed, "{kernel:?} {m}×{k}×{n}");
                    bits
                };
                let reference = c_of(&packed);
                for layout in [Layout::RowMajor, Layout::ColMajor] {
                    assert_eq!(
                        c_of(&packed.laid_out(layout)),
                        reference,
                        "{kernel:?} {m}×{k}×{n}, A {layout:?}, {threads} threads"
                    );
                }
            }
        }
    }
}

/// A row-major B whose rows start on cache lines is read in place against
/// more rows of A (`loops::b_in_place_max_rows`), with the same bits as the
/// same values packed, on 1 and 2 threads, every kernel.
#[test]
fn b_on_cache_lines_read_in_place_gives_the_bits_of_packed_b() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    for kernel in kernels() {
        let kern = MicroKernel::new(kernel).unwrap();
        let (k, n) = (kern.kc + 7, 3 * kern.nr.max(16) + 16);
        let rows = Mat::random(k, n, Layout::RowMajor, &mut rng);
        // The same values in a buffer where they start on a line.
        let mut room = vec![0.0f32; k * n + 15];
        let start = crate::recycle::floats_to_line(room.as_ptr());
        room[start..start + k * n].copy_from_slice(&rows.data);
        let lined = MatRef::new(&room[start..start + k * n], k, n, n, 1);
        let longest = crate::gemm::loops::b_in_place_max_rows(&kern, &lined, 1);
        let anywhere = crate::gemm::loops::B_IN_PLACE_MAX_PANELS * kern.mr;
        assert!(longest >= anywhere);
        // More rows on one thread only.
        let on_two = crate::gemm::loops::b_in_place_max_rows(&kern, &lined, 2);
        assert_eq!(on_two, anywhere, "{kernel:?}");
        for m in [longest, longest + 1] {
            let a = Mat::random(m, k, Layout::RowMajor, &mut rng);
            let packed = rows.laid_out(Layout::Gapped);
            for threads in [1, 2] {
                let (want, _) = packed_bits(&kern, &a, &packed, threads);
                let (got, _) = packed_bits_of_views(&kern, a.view(), lined, threads);
                assert_eq!(got, want, "{kernel:?} {m}×{k}×{n}, {threads} threads");
            }
        }
    }
}

/// A row-major B read where it lies, against a short A (`loops::b_in_place`),
/// gives the bits of the same values packed from a column-major B: full
/// panels in place, a ragged last one packed, several K slices, A in place
/// and packed, 1 and 2 threads (column bands and the shared-A path), on
/// every kernel (those whose strided body is slower than the packed one
/// pack B either way).
#[test]
fn row_major_b_read_in_place_gives_the_bits_of_packed_b() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for kernel in kernels() {
        let kern = MicroKernel::new(kernel).unwrap();
        let (k, n) = (40, 9 * kern.nr);
        let probe = Mat::random(k, n, Layout::RowMajor, &mut rng);
        let shortest = crate::gemm::loops::b_in_place_max_rows(&kern, &probe.view(), 2);
        let shapes = [
            (2 * kern.mr + 1, 3 * kern.nr - 5, kern.kc + 9),
            (shortest, n, k),
            (kern.mr - 1, kern.nr, 2 * kern.kc + 3),
        ];
        for (m, n, k) in shapes {
            // A in place (row-major) and packed (neither stride 1: a
            // column-major A with short columns is read in place too).
            let a_layout = [Layout::RowMajor, Layout::Gapped][m % 2];
            let a = Mat::random(m, k, a_layout, &mut rng);
            let rows = Mat::random(k, n, Layout::RowMajor, &mut rng);
            let cols = rows.laid_out(Layout::ColMajor);
            for threads in [1, 2] {
                let c_of = |b: &Mat| {
                    let (bits, report) = packed_bits(&kern, &a, b, threads);
                    // The row-major B must really be read in place: not as Cᵀ.
                    let row_major = b.cs == 1;
                    assert!(
                        !(kern.a_in_place && row_major && report.transposed),
                        "{kernel:?} {m}×{k}×{n}"
                    );
                    bits
                };
                assert_eq!(
                    c_of(&rows),
                    c_of(&cols),
                    "{kernel:?} {m}×{k}×{n}, {threads} threads"
                );
            }
        }
    }
}

/// A row-major B whose full panels the first row tile packs as it reads
/// them (`loops::BSource::PackedByFirstTile`: A of one block or B within
/// L2, A too tall to read B in place) gives the bits of the same values packed from a B
/// with neither stride 1, on every kernel: a ragged last panel (packed first),
/// several K slices, an A tail, A in place and packed, 1 and 2 threads
/// (one task, column bands, and the panel tasks of `few_rows` and
/// `panels_through_k`, the latter with some panels' rows cut), a first
/// row tile shorter than MR (which packs its panel first), and A taller
/// than a block against a B that fits L2.
#[test]
fn row_major_b_packed_by_its_first_tile_gives_the_bits_of_packed_b() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    for kernel in kernels() {
        let kern = MicroKernel::new(kernel).unwrap();
        let past_in_place = crate::gemm::loops::B_IN_PLACE_MAX_PANELS * kern.mr + 1;
        let m = (past_in_place + kern.mr + 1).min(kern.mc);
        let shapes = [
            (m, 3 * kern.nr - 5, kern.kc + 9),
            (m, 9 * kern.nr + 3, kern.kc + 45),
            (kern.mr - 1, 2 * kern.nr, kern.kc + 3),
            // Two A blocks against a B that fits L2: the first block's
            // first row tile packs, the second block reads packed.
            (kern.mc + kern.mr + 3, 2 * kern.nr + kern.lanes, kern.kc + 9),
        ];
        for (m, n, k) in shapes {
            let rows = Mat::random(k, n, Layout::RowMajor, &mut rng);
            // Neither stride 1: packed by a pass of its own on every path
            // (a column-major B may run as Cᵀ through a scratch instead).
            let cols = rows.laid_out(Layout::Gapped);
            for a_layout in [Layout::RowMajor, Layout::Gapped] {
                let a = Mat::random(m, k, a_layout, &mut rng);
                for threads in [1, 2] {
                    let c_of = |b: &Mat| {
                        let (bits, report) = packed_bits(&kern, &a, b, threads);
                        // (The scalar kernel's 1-lane columns make Cᵀ
                        // cheaper for the short A.)
                        let short = m < kern.mr;
                        assert!(!report.transposed || short, "{kernel:?} {m}×{k}×{n}");
                        bits
                    };
                    assert_eq!(
                        c_of(&rows),
                        c_of(&cols),
                        "{kernel:?} {m}×{k}×{n}, A {a_layout:?}, {threads} threads"
                    );
                }
            }
        }
    }
}

/// On one thread, a column-major B against a row-major C runs as Cᵀ into
/// a scratch copied out transposed (`via_scratch_ct`) on the kernels that
/// read A in place: the bits of C, its gaps included, must be those of the
/// same values with B row-major (the packed route as it is), with β = 0
/// over a NaN C and β ≠ 0 over a padded one, a bias along C's columns and
/// the ReLU, several K slices and a ragged last panel; on 2 threads it is
/// not taken.
#[test]
fn a_product_through_the_transposed_scratch_gives_the_bits_of_the_packed_route() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    for kernel in kernels() {
        let kern = MicroKernel::new(kernel).unwrap();
        for (m, k, n) in [
            (32, 2 * kern.kc + 7, 4 * kern.nr),
            (30, kern.kc + 1, 4 * kern.nr + 5),
        ] {
            let a = Mat::random(m, k, Layout::RowMajor, &mut rng);
            let b_cols = Mat::random(k, n, Layout::ColMajor, &mut rng);
            let b_rows = b_cols.laid_out(Layout::RowMajor);
            let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            for (beta, c_layout) in [(0.0, Layout::RowMajor), (0.5, Layout::Padded)] {
                let mut c0 = Mat::new(m, n, c_layout, SENTINEL);
                for i in 0..m {
                    for j in 0..n {
                        c0.data[i * c0.rs + j * c0.cs] = if beta == 0.0 {
                            f32::NAN
                        } else {
                            rng.random_range(-1.0..1.0)
                        };
                    }
                }
                let run_with = |b: &Mat, threads: usize| {
                    let mut c = Mat {
                        data: c0.data.clone(),
                        ..Mat::new(m, n, c_layout, 0.0)
                    };
                    let epilogue = Epilogue {
                        bias: Some(Bias::Columns(&bias)),
                        relu: true,
                    };
                    let plan = Plan {
                        route: Some(Route::Packed),
                        threads: Some(threads),
                    };
                    let (av, bv) = (a.view(), b.view());
                    let through =
                        scratch_ct_pays(&kern, &av, &bv, beta, &c.view_mut(), threads, plan);
                    run(
                        &kern,
                        0.75,
                        av,
                        bv,
                        beta,
                        c.view_mut(),
                        epilogue,
                        Parallelism::Threads(threads),
                        plan,
                    );
                    let bits: Vec<u32> = c.data.iter().map(|v| v.to_bits()).collect();
                    (bits, through)
                };
                let case = format!("{kernel:?} {m}×{k}×{n}, β {beta}");
                let (direct, direct_through) = run_with(&b_rows, 1);
                let (via, via_through) = run_with(&b_cols, 1);
                assert!(!direct_through, "{case}");
                assert_eq!(via_through, kern.a_in_place, "{case}: through the scratch?");
                assert_eq!(via, direct, "{case}");
                let (two, two_through) = run_with(&b_cols, 2);
                assert!(!two_through, "{case}, 2 threads");
                assert_eq!(two, direct, "{case}, 2 threads");
            }
        }
    }
}

fn big_case(m: usize, k: usize, n: usize, ta: bool, tb: bool, seed: u64) -> (Mat, Mat) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let la = if ta {
        Layout::ColMajor
    } else {
        Layout::RowMajor
    };
    let lb = if tb {
        Layout::ColMajor
    } else {
        Layout::RowMajor
    };
    (
        Mat::random(m, k, la, &mut rng),
        Mat::random(k, n, lb, &mut rng),
    )
}

/// The dot route gives each row of C the same bits whatever the rows
/// around it (in a full tile or alone), B's layout or the thread count;
/// and the logits' shape takes it by itself wherever a kernel has it.
#[test]
fn dot_rows_do_not_depend_on_their_neighbours_b_layout_or_threads() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for kernel in kernels() {
        let kern = MicroKernel::new(kernel).unwrap();
        let mut widths = 0;
        for n in 1..=16 {
            let Some((rows, _)) = kern.dot_shape(n) else {
                continue;
            };
            widths += 1;
            let (m, k) = (2 * rows + 1, 8 * kern.lanes + 3);
            let a = Mat::random(m, k, Layout::RowMajor, &mut rng);
            let b = Mat::random(k, n, Layout::ColMajor, &mut rng);
            let bits = |a: MatRef<'_>, b: &Mat, threads: usize| {
                let mut c = Mat::new(a.rows, n, Layout::RowMajor, f32::NAN);
                let plan = Plan {
                    route: Some(Route::Dot),
                    threads: Some(threads),
                };
                let par = Parallelism::Sequential;
                let none = Epilogue::NONE;
                let report = run(&kern, 1.0, a, b.view(), 0.0, c.view_mut(), none, par, plan);
                assert_eq!(report.route, Route::Dot);
                c.data.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
            };
            let whole = bits(a.view(), &b, 1);
            assert_eq!(whole, bits(a.view(), &b.laid_out(Layout::RowMajor), 2));
            assert_eq!(whole, bits(a.view(), &b.laid_out(Layout::Gapped), 3));
            for i in 0..m {
                let alone = bits(a.view().block(i, 0, 1, k), &b, 1);
                assert_eq!(
                    alone,
                    whole[i * n..(i + 1) * n],
                    "{kernel:?} n {n}, row {i}"
                );
            }
        }
        let (a, b) = big_case(128, 512, 10, false, true, 4);
        let mut c = Mat::new(128, 10, Layout::RowMajor, 0.0);
        let par = Parallelism::Sequential;
        let report = gemm_with_kernel(kernel, 1.0, a.view(), b.view(), 0.0, c.view_mut(), par);
        if widths > 0 {
            assert_eq!(report.route, Route::Dot, "{kernel:?}");
            assert!(widths >= 12, "{kernel:?}: dot kernels for {widths} widths");
        } else {
            assert_ne!(report.route, Route::Dot, "{kernel:?}");
        }
    }
}

#[test]
fn threads_are_bit_identical() {
    for kernel in kernels() {
        // Row bands that each pack all of a small B block
        // (`loops::row_bands_own_b`), A and B read in place or packed; and
        // in place of the panel tasks, with K short and many B panels.
        let kern = MicroKernel::new(kernel).unwrap();
        let (m_own, k_own, n_own) = super::loops::tests::own_b_shape(&kern);
        let n_many = (40 * kern.nr).max(2048);
        for (m, k, n, ta, tb) in [
            (m_own, k_own, n_own, false, false),
            (m_own, k_own, n_own, true, true),
            (m_own, 40, n_many, false, false),
            (301, 263, 290, false, false),
            (128, 300, 10, false, true),
            // The dot route, row tiles shared out (B as a Linear's Wᵀ, and
            // row-major with a K tail).
            (4096, 600, 10, false, true),
            (3000, 517, 9, false, false),
            (60, 530, 500, true, false),
            // Rows in one A block, many panels: A shared, a task per panel.
            (100, 200, 1000, false, true),
            // One B panel, several K slices: row bands split once
            // (`loops::row_bands_once`), the convnet's weight gradient.
            (288, 576, 64, false, true),
        ] {
            let (a, b) = big_case(m, k, n, ta, tb, 3);
            let mut outs = Vec::new();
            for threads in [1, 2, 3] {
                let mut c = Mat::new(m, n, Layout::RowMajor, 0.5);
                let run = gemm_with_kernel(
                    kernel,
                    0.75,
                    a.view(),
                    b.view(),
                    1.5,
                    c.view_mut(),
                    Parallelism::Threads(threads),
                );
                if threads > 1
                    && rayon::current_num_threads() > 1
                    && 2 * m * n * k >= super::blocking::PARALLEL_MIN_FLOPS
                {
                    assert!(run.threads > 1, "{run:?}");
                }
                outs.push(c.data);
            }
            assert!(
                outs[0] == outs[1] && outs[0] == outs[2],
                "{kernel:?} {m}×{k}×{n}"
            );
        }
    }
}

#[test]
fn agrees_with_matrixmultiply() {
    for (i, (m, k, n, ta, tb)) in [
        (517, 300, 263, false, false),
        (64, 1000, 129, true, false),
        (257, 129, 700, false, true),
        (128, 512, 10, true, true),
        (288, 1000, 40, false, true),
    ]
    .into_iter()
    .enumerate()
    {
        let (a, b) = big_case(m, k, n, ta, tb, 10 + i as u64);
        let mut want = vec![0.0f32; m * n];
        // SAFETY: the pointers and strides describe the buffers exactly.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.data.as_ptr(),
                a.rs as isize,
                a.cs as isize,
                b.data.as_ptr(),
                b.rs as isize,
                b.cs as isize,
                0.0,
                want.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        let mut c = Mat::new(m, n, Layout::RowMajor, f32::NAN);
        super::gemm(
            1.0,
            a.view(),
            b.view(),
            0.0,
            c.view_mut(),
            Parallelism::Threads(2),
        );
        let worst = c
            .data
            .iter()
            .zip(&want)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        // Entries are sums of k products of numbers in (-1, 1).
        assert!(worst <= 1e-5 * k as f32, "{m}×{k}×{n}: max diff {worst}");
    }
}

/// `EMBER_REQUIRE_KERNELS=avx512,avx2` (comma-separated kernel names) lists
/// the kernels this test run must cover: the tests above only force the
/// kernels the CPU supports, so without this a missing one would pass by
/// being skipped. `.ci/run` sets it from the CPU's flags.
#[test]
fn required_kernels_can_run_here() {
    let Ok(list) = std::env::var("EMBER_REQUIRE_KERNELS") else {
        return;
    };
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let kernel = Kernel::from_name(name)
            .unwrap_or_else(|| panic!("EMBER_REQUIRE_KERNELS={list}: unknown kernel {name:?}"));
        assert!(
            kernel.is_supported(),
            "EMBER_REQUIRE_KERNELS={list}: the {name} kernel is required but this CPU cannot run it"
        );
        assert!(Kernel::supported().contains(&kernel));
    }
}
