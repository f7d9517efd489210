//! A central-difference gradient checker.
//!
//! [`gradcheck`] compares the gradients `backward()` computes with
//! `(f(x + ε) − f(x − ε)) / 2ε`, element by element. A function with a
//! non-scalar output is reduced to the scalar `Σ f(x) ⊙ r` with a fixed
//! pseudo-random `r`, so every output element is checked with its own weight.
//!
//! ```
//! use ember_autograd::gradcheck::{gradcheck, Tolerance};
//! use ember_tensor::Tensor;
//!
//! let x = Tensor::from_vec(vec![0.3, -1.2, 2.0], &[3]);
//! gradcheck(|v| v[0].tanh(), &[x], Tolerance::default()).unwrap();
//! ```

use std::fmt;

use ember_tensor::Tensor;

use crate::{no_grad, Var};

/// How far an analytic gradient may be from the numeric one.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// The finite-difference step.
    pub eps: f32,
    /// Allowed relative difference.
    pub rtol: f32,
    /// Allowed absolute difference (for gradients near 0).
    pub atol: f32,
}

impl Default for Tolerance {
    /// ε = 1e-2 with f32 arithmetic: small enough for smooth functions, large
    /// enough that rounding (≈ 1e-7 · |f| / ε) stays well below the tolerance.
    fn default() -> Self {
        Tolerance {
            eps: 1e-2,
            rtol: 2e-2,
            atol: 2e-3,
        }
    }
}

/// Where an analytic gradient disagreed with the numeric one.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckError {
    /// Which input.
    pub input: usize,
    /// Which element of it (row-major).
    pub element: usize,
    /// What backward() gave.
    pub analytic: f32,
    /// What central differences gave.
    pub numeric: f32,
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradient of input {} at element {}: backward gave {}, finite differences {}",
            self.input, self.element, self.analytic, self.numeric
        )
    }
}

impl std::error::Error for GradcheckError {}

/// A fixed weight per output element in `[0.5, 1.5)` with alternating-ish
/// signs, from a tiny LCG, so checks are reproducible without an RNG crate.
fn projection(n: usize) -> Vec<f32> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            let sign = if state >> 63 == 0 { 1.0 } else { -1.0 };
            sign * (0.5 + unit)
        })
        .collect()
}

/// `Σ f(inputs) ⊙ r` in f64, evaluated without recording.
fn objective(f: &impl Fn(&[Var]) -> Var, inputs: &[Tensor], r: &[f32]) -> f64 {
    no_grad(|| {
        let vars: Vec<Var> = inputs.iter().cloned().map(Var::constant).collect();
        let out = f(&vars).value().to_vec();
        out.iter()
            .zip(r)
            .map(|(&o, &w)| f64::from(o) * f64::from(w))
            .sum()
    })
}

/// Checks the gradients of `f` with respect to every input at `inputs`.
///
/// Inputs are wrapped as parameters; `f` may also close over constants.
///
/// # Errors
/// The first element whose analytic and numeric gradients differ by more than
/// `atol + rtol · max(|analytic|, |numeric|)`.
pub fn gradcheck(
    f: impl Fn(&[Var]) -> Var,
    inputs: &[Tensor],
    tol: Tolerance,
) -> Result<(), GradcheckError> {
    let vars: Vec<Var> = inputs.iter().cloned().map(Var::parameter).collect();
    let out = f(&vars);
    let r = projection(out.value_ref().numel());
    out.backward_with(Tensor::from_vec(r.clone(), &out.shape()));
    for (i, (var, x)) in vars.iter().zip(inputs).enumerate() {
        let analytic = var
            .grad()
            .map_or_else(|| vec![0.0; x.numel()], |g| g.to_vec());
        let base = x.to_vec();
        for (j, &a) in analytic.iter().enumerate() {
            let shifted = |delta: f32| {
                let mut values = base.clone();
                values[j] += delta;
                let mut all = inputs.to_vec();
                all[i] = Tensor::from_vec(values, x.shape());
                objective(&f, &all, &r)
            };
            let numeric =
                ((shifted(tol.eps) - shifted(-tol.eps)) / (2.0 * f64::from(tol.eps))) as f32;
            let allowed = tol.atol + tol.rtol * a.abs().max(numeric.abs());
            if (a - numeric).abs() > allowed || !a.is_finite() {
                return Err(GradcheckError {
                    input: i,
                    element: j,
                    analytic: a,
                    numeric,
                });
            }
        }
    }
    Ok(())
}
