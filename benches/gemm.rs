//! Criterion benchmarks of Ember's GEMM against `matrixmultiply` and the
//! `gemm` crate (0.19, `x86-v4`) on the training shapes (`cargo bench --bench
//! gemm`). Ember and `gemm` are measured at 1 and 2 threads; `matrixmultiply`
//! uses `MATMUL_NUM_THREADS` (read once per process), so its group says which
//! it ran with.
//! For the side-by-side table, `examples/gemm_report/` is the tool.

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use ember::tensor::gemm::{gemm, MatMut, MatRef, Parallelism};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// (name, m, k, n, A transposed, B transposed)
const SHAPES: [(&str, usize, usize, usize, bool, bool); 9] = [
    ("256cube", 256, 256, 256, false, false),
    ("512cube", 512, 512, 512, false, false),
    ("2048cube", 2048, 2048, 2048, false, false),
    ("linear784to512_fwd_bt", 128, 784, 512, false, true),
    ("hidden512_fwd_bt", 128, 512, 512, false, true),
    ("input_grad_128x512x784", 128, 512, 784, false, false),
    ("weight_grad_at_784x128x512", 784, 128, 512, true, false),
    ("logits_128x512x10", 128, 512, 10, false, false),
    ("64cube", 64, 64, 64, false, false),
];

fn strides(rows: usize, cols: usize, transposed: bool) -> (usize, usize) {
    if transposed {
        (1, rows)
    } else {
        (cols, 1)
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mm_threads = std::env::var("MATMUL_NUM_THREADS").unwrap_or_else(|_| "default".into());
    for (name, m, k, n, at, bt) in SHAPES {
        let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut out = vec![0.0f32; m * n];
        let (sa, sb) = (strides(m, k, at), strides(k, n, bt));
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        if m * n * k >= 1 << 30 {
            group.sample_size(10);
        }
        for threads in [1usize, 2] {
            let par = if threads == 1 {
                Parallelism::Sequential
            } else {
                Parallelism::Threads(threads)
            };
            group.bench_function(BenchmarkId::new("ember", threads), |bench| {
                bench.iter(|| {
                    gemm(
                        1.0,
                        MatRef::new(&a, m, k, sa.0, sa.1),
                        MatRef::new(&b, k, n, sb.0, sb.1),
                        0.0,
                        MatMut::new(&mut out, m, n, n, 1),
                        par,
                    )
                })
            });
        }
        group.bench_function(BenchmarkId::new("matrixmultiply", &mm_threads), |bench| {
            bench.iter(|| {
                // SAFETY: pointers and strides describe the m×k, k×n and m×n buffers.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        sa.0 as isize,
                        sa.1 as isize,
                        b.as_ptr(),
                        sb.0 as isize,
                        sb.1 as isize,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            })
        });
        for threads in [1usize, 2] {
            let par = if threads == 1 {
                gemm::Parallelism::None
            } else {
                gemm::Parallelism::Rayon(threads)
            };
            group.bench_function(BenchmarkId::new("gemm", threads), |bench| {
                bench.iter(|| {
                    // SAFETY: pointers and strides describe the m×k, k×n and
                    // m×n buffers; `gemm` takes (column, row) strides.
                    unsafe {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            out.as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            a.as_ptr(),
                            sa.1 as isize,
                            sa.0 as isize,
                            b.as_ptr(),
                            sb.1 as isize,
                            sb.0 as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            par,
                        )
                    }
                })
            });
        }
        group.finish();
    }
}

// The macro defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
