//! What recording an op costs beside the work itself.
//!
//! On 4-element tensors the arithmetic is a few nanoseconds, so the gap
//! between an op on `Tensor`s and the same op on `Var`s that require a
//! gradient is the per-op bookkeeping: the graph node, its `Rc`, the boxed
//! backward closure and the captured tensor handles (O(1) clones, no copies).
//!
//! ```text
//! cargo bench --bench autograd_overhead -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;

use criterion::Criterion;
use ember::autograd::{no_grad, Var};
use ember::tensor::Tensor;

/// Ops in [`tensor_chain`] and [`var_chain`], to turn a chain time into a per-op time.
const CHAIN_OPS: usize = 8;

fn tensor_chain(x: &Tensor, w: &Tensor) -> f32 {
    let h = x.mul(w).add(w).tanh().mul(x).exp().sub(x).relu();
    h.sum_all()
}

fn var_chain(x: &Var, w: &Var) -> Var {
    let h = (&(&x.mul(w) + w).tanh() * x).exp().sub(x).relu();
    h.sum()
}

fn single_op(c: &mut Criterion) {
    let a = Tensor::from_vec(vec![0.1, -0.2, 0.3, -0.4], &[4]);
    let b = Tensor::from_vec(vec![0.5, 0.6, -0.7, 0.8], &[4]);
    let (va, vb) = (Var::parameter(a.clone()), Var::parameter(b.clone()));
    let mut group = c.benchmark_group("add_4_elements");
    group.bench_function("tensor", |bench| {
        bench.iter(|| black_box(&a).add(black_box(&b)))
    });
    group.bench_function("var_recorded", |bench| {
        bench.iter(|| black_box(&va).add(black_box(&vb)))
    });
    group.bench_function("var_no_grad", |bench| {
        bench.iter(|| no_grad(|| black_box(&va).add(black_box(&vb))))
    });
    group.finish();
}

fn chain(c: &mut Criterion) {
    let x = Tensor::from_vec(vec![0.1, -0.2, 0.3, -0.4], &[4]);
    let w = Tensor::from_vec(vec![0.5, 0.6, -0.7, 0.8], &[4]);
    let (vx, vw) = (Var::parameter(x.clone()), Var::parameter(w.clone()));
    let mut group = c.benchmark_group(format!("chain_of_{CHAIN_OPS}_ops_4_elements"));
    group.bench_function("tensor_forward", |bench| {
        bench.iter(|| tensor_chain(black_box(&x), black_box(&w)))
    });
    group.bench_function("var_forward", |bench| {
        bench.iter(|| var_chain(black_box(&vx), black_box(&vw)))
    });
    group.bench_function("var_forward_backward", |bench| {
        bench.iter(|| {
            var_chain(black_box(&vx), black_box(&vw)).backward();
            vx.zero_grad();
            vw.zero_grad();
        })
    });
    group.finish();
}

// What `criterion_group!`/`criterion_main!` expand to, minus the undocumented
// public function the lints would reject.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    single_op(&mut c);
    chain(&mut c);
    c.final_summary();
}
