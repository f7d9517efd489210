//! Elementwise ops (with broadcasting) and activations.
//!
//! The rule for every binary op: the gradient with respect to an input that
//! was broadcast is summed back over the broadcast axes ([`Grads::add`] does
//! that), since each of its elements was used once per repetition.

use std::ops::{Add, Div, Mul, Neg, Sub};

use ember_tensor::Tensor;

use crate::graph::{record, Grads};
use crate::Var;

/// `√(2/π)`, from the tanh form of GELU.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// ReLU's backward as [`Var::relu`] computes it, from its input or its
/// output (positive at the same places).
#[inline]
pub(crate) fn relu_grad(g: f32, y: f32) -> f32 {
    if y > 0.0 {
        g
    } else {
        0.0 * g
    }
}

impl Var {
    /// `self + other`, broadcasting. ∂/∂a = ∂/∂b = g.
    #[track_caller]
    pub fn add(&self, other: &Var) -> Var {
        let value = self.value_ref().add(&other.value_ref());
        record("add", value, &[self, other], |g, grads: &mut Grads<'_>| {
            grads.add(0, g.clone());
            grads.add(1, g.clone());
        })
    }

    /// `self − other`, broadcasting. ∂/∂a = g, ∂/∂b = −g.
    #[track_caller]
    pub fn sub(&self, other: &Var) -> Var {
        let value = self.value_ref().sub(&other.value_ref());
        record("sub", value, &[self, other], |g, grads: &mut Grads<'_>| {
            grads.add(0, g.clone());
            if grads.wants(1) {
                grads.add(1, g.neg());
            }
        })
    }

    /// `self · other` elementwise, broadcasting. ∂/∂a = g·b, ∂/∂b = g·a.
    #[track_caller]
    pub fn mul(&self, other: &Var) -> Var {
        let (a, b) = (self.value(), other.value());
        let value = a.mul(&b);
        record(
            "mul",
            value,
            &[self, other],
            move |g, grads: &mut Grads<'_>| {
                if grads.wants(0) {
                    grads.add(0, g.mul(&b));
                }
                if grads.wants(1) {
                    grads.add(1, g.mul(&a));
                }
            },
        )
    }

    /// `self / other` elementwise, broadcasting. ∂/∂a = g/b, ∂/∂b = −g·a/b².
    #[track_caller]
    pub fn div(&self, other: &Var) -> Var {
        let (a, b) = (self.value(), other.value());
        let value = a.div(&b);
        record(
            "div",
            value.clone(),
            &[self, other],
            move |g, grads: &mut Grads<'_>| {
                if grads.wants(0) {
                    grads.add(0, g.div(&b));
                }
                if grads.wants(1) {
                    // −g·a/b² = −g·(a/b)/b
                    grads.add(1, g.mul(&value).div(&b).neg());
                }
            },
        )
    }

    /// `−self`.
    pub fn neg(&self) -> Var {
        let value = self.value_ref().neg();
        record("neg", value, &[self], |g, grads: &mut Grads<'_>| {
            grads.add(0, g.neg())
        })
    }

    /// `self + s`. ∂/∂x = g.
    pub fn add_scalar(&self, s: f32) -> Var {
        let value = self.value_ref().add_scalar(s);
        record("add_scalar", value, &[self], |g, grads: &mut Grads<'_>| {
            grads.add(0, g.clone())
        })
    }

    /// `self · s`. ∂/∂x = s·g.
    pub fn mul_scalar(&self, s: f32) -> Var {
        let value = self.value_ref().mul_scalar(s);
        record(
            "mul_scalar",
            value,
            &[self],
            move |g, grads: &mut Grads<'_>| grads.add(0, g.mul_scalar(s)),
        )
    }

    /// `eˣ`. ∂/∂x = g·eˣ (the output itself).
    pub fn exp(&self) -> Var {
        let y = self.value_ref().exp();
        record(
            "exp",
            y.clone(),
            &[self],
            move |g, grads: &mut Grads<'_>| grads.add(0, g.mul(&y)),
        )
    }

    /// `ln x`. ∂/∂x = g/x.
    pub fn ln(&self) -> Var {
        let x = self.value();
        record("ln", x.ln(), &[self], move |g, grads: &mut Grads<'_>| {
            grads.add(0, g.div(&x))
        })
    }

    /// `√x`. ∂/∂x = g/(2√x).
    pub fn sqrt(&self) -> Var {
        let y = self.value_ref().sqrt();
        record(
            "sqrt",
            y.clone(),
            &[self],
            move |g, grads: &mut Grads<'_>| {
                grads.add(0, g.zip_map(&y, "sqrt_backward", |g, y| 0.5 * g / y))
            },
        )
    }

    /// `xᵖ`. ∂/∂x = g·p·xᵖ⁻¹.
    pub fn powf(&self, p: f32) -> Var {
        let x = self.value();
        record(
            "powf",
            x.powf(p),
            &[self],
            move |g, grads: &mut Grads<'_>| {
                grads.add(
                    0,
                    g.zip_map(&x, "powf_backward", |g, x| g * p * x.powf(p - 1.0)),
                )
            },
        )
    }

    /// `|x|`. ∂/∂x = g·sign(x) (0 at 0, as in PyTorch).
    pub fn abs(&self) -> Var {
        let x = self.value();
        record("abs", x.abs(), &[self], move |g, grads: &mut Grads<'_>| {
            grads.add(
                0,
                g.zip_map(&x, "abs_backward", |g, x| {
                    if x == 0.0 {
                        0.0
                    } else {
                        g * x.signum()
                    }
                }),
            )
        })
    }

    /// `max(x, 0)`. ∂/∂x = g where x > 0, else 0.
    pub fn relu(&self) -> Var {
        self.leaky_relu(0.0)
    }

    /// `x` where x > 0, else `slope·x`. ∂/∂x = g or slope·g.
    pub fn leaky_relu(&self, slope: f32) -> Var {
        let x = self.value();
        // `move`: the slope is copied into the closure, so the loop is
        // vectorised with selects instead of reloading it behind a branch.
        let y = x.map(move |v| if v > 0.0 { v } else { slope * v });
        let op = if slope == 0.0 { "relu" } else { "leaky_relu" };
        record(op, y, &[self], move |g, grads: &mut Grads<'_>| {
            grads.add(
                0,
                g.zip_map(
                    &x,
                    "relu_backward",
                    move |g, x| if x > 0.0 { g } else { slope * g },
                ),
            )
        })
    }

    /// The logistic sigmoid `σ(x) = 1/(1 + e⁻ˣ)`. ∂/∂x = g·σ(1 − σ).
    pub fn sigmoid(&self) -> Var {
        let y = self.value_ref().sigmoid();
        record(
            "sigmoid",
            y.clone(),
            &[self],
            move |g, grads: &mut Grads<'_>| {
                grads.add(
                    0,
                    g.zip_map(&y, "sigmoid_backward", |g, y| g * y * (1.0 - y)),
                )
            },
        )
    }

    /// `tanh x`. ∂/∂x = g·(1 − tanh²x).
    pub fn tanh(&self) -> Var {
        let y = self.value_ref().tanh();
        record(
            "tanh",
            y.clone(),
            &[self],
            move |g, grads: &mut Grads<'_>| {
                grads.add(0, g.zip_map(&y, "tanh_backward", |g, y| g * (1.0 - y * y)))
            },
        )
    }

    /// GELU in its tanh form (as in BERT and GPT-2; PyTorch's
    /// `approximate="tanh"`): `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
    pub fn gelu(&self) -> Var {
        let x = self.value();
        let y = x.map(|v| {
            let u = SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v);
            0.5 * v * (1.0 + u.tanh())
        });
        record("gelu", y, &[self], move |g, grads: &mut Grads<'_>| {
            // d/dx = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²), t = tanh(u)
            grads.add(
                0,
                g.zip_map(&x, "gelu_backward", |g, v| {
                    let t = (SQRT_2_OVER_PI * (v + 0.044_715 * v * v * v)).tanh();
                    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * v * v);
                    g * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du)
                }),
            )
        })
    }

    /// Multiplies by a fixed `mask` (for example an inverted-dropout mask of
    /// 0 and 1/(1−p)). ∂/∂x = g·mask; the mask gets no gradient.
    ///
    /// # Panics
    /// If `mask` does not broadcast to the input's shape.
    #[track_caller]
    pub fn dropout_with_mask(&self, mask: &Tensor) -> Var {
        let mask = mask.clone();
        let value = self.value_ref().mul(&mask);
        record(
            "dropout",
            value,
            &[self],
            move |g, grads: &mut Grads<'_>| grads.add(0, g.mul(&mask)),
        )
    }
}

macro_rules! var_operator {
    ($trait:ident, $method:ident, $scalar:expr) => {
        impl $trait<&Var> for &Var {
            type Output = Var;
            #[track_caller]
            fn $method(self, rhs: &Var) -> Var {
                Var::$method(self, rhs)
            }
        }
        impl $trait<f32> for &Var {
            type Output = Var;
            fn $method(self, rhs: f32) -> Var {
                let scalar: fn(&Var, f32) -> Var = $scalar;
                scalar(self, rhs)
            }
        }
    };
}

var_operator!(Add, add, |v, s| v.add_scalar(s));
var_operator!(Sub, sub, |v, s| v.add_scalar(-s));
var_operator!(Mul, mul, |v, s| v.mul_scalar(s));
var_operator!(Div, div, |v, s| v.mul_scalar(1.0 / s));

impl Neg for &Var {
    type Output = Var;
    fn neg(self) -> Var {
        Var::neg(self)
    }
}
