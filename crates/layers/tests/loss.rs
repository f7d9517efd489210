//! The loss wrappers against sums computed here in f64, and their reductions.

use ember_autograd::Var;
use ember_layers::loss::{
    binary_cross_entropy_with_logits, cross_entropy, cross_entropy_smoothed, mse_loss, nll_loss,
    Reduction,
};
use ember_tensor::Tensor;

const LOGITS: [f32; 6] = [1.0, -0.5, 2.0, 0.3, 0.3, -1.2];
const TARGETS: [usize; 2] = [2, 0];

fn logits() -> Var {
    Var::parameter(Tensor::from_vec(LOGITS.to_vec(), &[2, 3]))
}

/// log softmax of one row, in f64.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    let lse = max
        + row
            .iter()
            .map(|&x| (f64::from(x) - max).exp())
            .sum::<f64>()
            .ln();
    row.iter().map(|&x| f64::from(x) - lse).collect()
}

#[track_caller]
fn close(got: f32, want: f64) {
    assert!(
        (f64::from(got) - want).abs() < 1e-5,
        "got {got}, want {want}"
    );
}

#[test]
fn cross_entropy_mean_and_sum() {
    let per_sample: Vec<f64> = TARGETS
        .iter()
        .enumerate()
        .map(|(i, &t)| -log_softmax(&LOGITS[i * 3..i * 3 + 3])[t])
        .collect();
    let total: f64 = per_sample.iter().sum();
    close(
        cross_entropy(&logits(), &TARGETS, Reduction::Mean).item(),
        total / 2.0,
    );
    close(
        cross_entropy(&logits(), &TARGETS, Reduction::Sum).item(),
        total,
    );
}

#[test]
fn sum_reduction_scales_the_gradient_by_the_batch_size() {
    let (a, b) = (logits(), logits());
    cross_entropy(&a, &TARGETS, Reduction::Mean).backward();
    cross_entropy(&b, &TARGETS, Reduction::Sum).backward();
    for (ga, gb) in a
        .grad()
        .unwrap()
        .to_vec()
        .iter()
        .zip(b.grad().unwrap().to_vec())
    {
        assert!((ga * 2.0 - gb).abs() < 1e-6);
    }
}

#[test]
fn label_smoothing_mixes_in_the_uniform_distribution() {
    let eps = 0.1;
    let mut total = 0.0;
    for (i, &t) in TARGETS.iter().enumerate() {
        let lp = log_softmax(&LOGITS[i * 3..i * 3 + 3]);
        for (j, l) in lp.iter().enumerate() {
            let q = if j == t {
                1.0 - eps + eps / 3.0
            } else {
                eps / 3.0
            };
            total -= q * l;
        }
    }
    let got = cross_entropy_smoothed(&logits(), &TARGETS, eps as f32, Reduction::Mean);
    close(got.item(), total / 2.0);
    let summed = cross_entropy_smoothed(&logits(), &TARGETS, eps as f32, Reduction::Sum);
    close(summed.item(), total);
}

#[test]
fn nll_of_log_softmax_is_cross_entropy() {
    let x = logits();
    let nll = nll_loss(&x.log_softmax(1), &TARGETS, Reduction::Sum);
    let ce = cross_entropy(&x, &TARGETS, Reduction::Sum);
    close(nll.item(), f64::from(ce.item()));
}

#[test]
fn mse_reductions() {
    let p = Var::parameter(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]));
    let t = Var::constant(Tensor::from_vec(vec![0.0, 2.5, 3.0, 2.0], &[2, 2]));
    // squares 1, 0.25, 0, 4
    close(mse_loss(&p, &t, Reduction::Sum).item(), 5.25);
    close(mse_loss(&p, &t, Reduction::Mean).item(), 5.25 / 4.0);
}

#[test]
fn binary_cross_entropy_with_logits_matches_the_definition() {
    let xs = [-2.0f32, -0.1, 0.0, 0.8, 3.5, 1.2];
    let ts = [0.0f32, 1.0, 0.5, 1.0, 0.0, 0.7];
    let x = Var::parameter(Tensor::from_vec(xs.to_vec(), &[2, 3]));
    let t = Var::constant(Tensor::from_vec(ts.to_vec(), &[2, 3]));
    let mut total = 0.0;
    let mut grads = Vec::new();
    for (&x, &t) in xs.iter().zip(&ts) {
        let (x, t) = (f64::from(x), f64::from(t));
        let s = 1.0 / (1.0 + (-x).exp());
        total += -t * s.ln() - (1.0 - t) * (1.0 - s).ln();
        grads.push((s - t) / 6.0);
    }
    let loss = binary_cross_entropy_with_logits(&x, &t, Reduction::Mean);
    close(loss.item(), total / 6.0);
    loss.backward();
    for (g, want) in x.grad().unwrap().to_vec().iter().zip(grads) {
        close(*g, want);
    }
    close(
        binary_cross_entropy_with_logits(&x, &t, Reduction::Sum).item(),
        total,
    );
}
