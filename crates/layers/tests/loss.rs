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

/// `Reduction::Sum` is a sum, not the mean times N (which rounds twice):
/// on rows whose mean × N is off by an ulp in f32, the summed loss is
/// exactly the f64 sum of the rows' losses, each taken alone, rounded once.
#[test]
fn sum_reduction_is_a_sum_not_the_mean_times_n() {
    type Loss = fn(&Var, &[usize], Reduction) -> Var;
    let losses: [(&str, Loss); 2] = [
        ("cross_entropy", |x, t, r| cross_entropy(x, t, r)),
        ("nll_loss", |x, t, r| nll_loss(&x.log_softmax(1), t, r)),
    ];
    let (n, c) = (7, 5);
    let targets: Vec<usize> = (0..n).map(|i| (i * 3) % c).collect();
    for (name, loss) in losses {
        // The first of a family of logits on which mean × n and the sum
        // differ (chosen from the reference, not from the code under test).
        let case = (0..200).find_map(|shift| {
            let values: Vec<f32> = (0..n * c)
                .map(|k| ((k * 7 + shift) % 11) as f32 * 0.37 - 1.3)
                .collect();
            let row = |i: usize| {
                Var::constant(Tensor::from_vec(
                    values[i * c..(i + 1) * c].to_vec(),
                    &[1, c],
                ))
            };
            let reference: f64 = (0..n)
                .map(|i| f64::from(loss(&row(i), &targets[i..=i], Reduction::Sum).item()))
                .sum();
            let all = Var::constant(Tensor::from_vec(values, &[n, c]));
            let mean = loss(&all, &targets, Reduction::Mean).item();
            (mean * n as f32 != reference as f32).then_some((all, reference as f32))
        });
        let (all, reference) =
            case.unwrap_or_else(|| panic!("{name}: no logits tell a sum from mean × n"));
        assert_eq!(
            loss(&all, &targets, Reduction::Sum).item(),
            reference,
            "{name}: Sum is not the sum of the rows"
        );
    }
    // Squares that add up exactly to 3.875, whose mean × 7 is 3.8749998.
    let p = Var::constant(Tensor::from_vec(
        vec![1.5, 1.0, 0.5, 0.5, 0.25, 0.25, 0.0],
        &[7],
    ));
    let zeros = Var::constant(Tensor::zeros(&[7]));
    assert_ne!(mse_loss(&p, &zeros, Reduction::Mean).item() * 7.0, 3.875);
    assert_eq!(mse_loss(&p, &zeros, Reduction::Sum).item(), 3.875);
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
