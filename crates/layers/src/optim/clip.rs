//! Gradient clipping, applied between `backward()` and `step()`.

use crate::Named;

/// Scales all gradients together so that their global L2 norm (the norm of
/// every gradient element of every parameter, as one vector) is at most
/// `max_norm`, and returns the norm before clipping. PyTorch's
/// `clip_grad_norm_`: the scale is `max_norm / (norm + 1e-6)` when that is
/// below 1. Parameters without a gradient are ignored. The sum of squares is
/// accumulated in f64. A non-finite norm is returned as it is and the
/// gradients are then scaled by NaN, as in PyTorch: check the result.
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::optim::clip_grad_norm;
/// use ember_layers::Named;
/// use ember_tensor::Tensor;
///
/// let a = Var::parameter(Tensor::zeros(&[1]));
/// let b = Var::parameter(Tensor::zeros(&[1]));
/// a.set_grad(Some(Tensor::from_vec(vec![3.0], &[1])));
/// b.set_grad(Some(Tensor::from_vec(vec![4.0], &[1])));
/// let params = vec![Named::new("a", &a), Named::new("b", &b)];
/// let norm = clip_grad_norm(&params, 1.0);
/// assert_eq!(norm, 5.0);
/// assert!((a.grad().unwrap().item() - 0.6).abs() < 1e-6);
/// ```
///
/// # Panics
/// If `max_norm` is negative or NaN.
#[track_caller]
pub fn clip_grad_norm(params: &[Named], max_norm: f32) -> f32 {
    assert!(
        max_norm >= 0.0,
        "clip_grad_norm: max_norm {max_norm} must be non-negative"
    );
    let mut squares = 0.0f64;
    for Named { var: p, .. } in params {
        if let Some(g) = p.grad() {
            let sum = |s: &[f32]| s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
            squares += match g.as_slice() {
                Some(s) => sum(s),
                None => sum(&g.to_vec()),
            };
        }
    }
    let norm = squares.sqrt() as f32;
    let scale = max_norm / (norm + 1e-6);
    if scale < 1.0 || scale.is_nan() {
        for_each_grad(params, |g| g.iter_mut().for_each(|x| *x *= scale));
    }
    norm
}

/// Clamps every gradient element into `[−clip, clip]` (PyTorch's
/// `clip_grad_value_`).
///
/// # Panics
/// If `clip` is negative or NaN.
#[track_caller]
pub fn clip_grad_value(params: &[Named], clip: f32) {
    assert!(
        clip >= 0.0,
        "clip_grad_value: clip {clip} must be non-negative"
    );
    for_each_grad(params, |g| {
        g.iter_mut().for_each(|x| *x = x.clamp(-clip, clip))
    });
}

/// Runs `f` on each gradient's elements in place. The gradient is taken out
/// of its parameter first, so the buffer is uniquely owned and `data_mut`
/// does not copy it.
fn for_each_grad(params: &[Named], mut f: impl FnMut(&mut [f32])) {
    for Named { var: p, .. } in params {
        if let Some(mut g) = p.grad() {
            p.zero_grad();
            f(g.data_mut());
            p.set_grad(Some(g));
        }
    }
}
