//! RMSprop (Hinton's lecture 6e), with the centred and momentum variants.

use super::StateError;
use super::{
    check_config, check_lr, export_state, flush_subnormal, import_state, par_update, update_param,
    Optimizer, ParamState,
};
use crate::Named;
use multiversion::multiversion;

/// Where RMSprop adds ε: the one real difference between the PyTorch and
/// Keras/TensorFlow rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EpsilonPlacement {
    /// `g / (√v + ε)`: PyTorch (and Keras before 2.1).
    #[default]
    OutsideSqrt,
    /// `g / √(v + ε)`: Keras 3 and TensorFlow (`tf.raw_ops.ApplyRMSProp`).
    InsideSqrt,
}

/// Settings of [`RmsProp`].
///
/// | | Ember (`Default`) | [`RmsPropConfig::keras`] | PyTorch `optim.RMSprop` | Keras `RMSprop` |
/// |---|---|---|---|---|
/// | `lr` | 1e-2 | 1e-3 | 1e-2 | 1e-3 |
/// | `alpha` (Keras `rho`) | 0.99 | 0.9 | 0.99 | 0.9 |
/// | `eps` | 1e-8 | 1e-7 | 1e-8 | 1e-7 |
/// | `eps_placement` | outside √ | inside √ | outside √ | inside √ |
/// | `momentum` | 0 | 0 | 0 | 0 |
/// | `centered` | false | false | False | False |
/// | `weight_decay` | 0 | 0 | 0 | — |
///
/// The classic Keras `mnist_mlp` recipe, `RMSprop(lr=0.001)` with ρ = 0.9, is
/// `RmsPropConfig::keras()`. Keras's momentum form (the buffer accumulates
/// `lr·g/√(v + ε)`) equals PyTorch's (`p ← p − lr·b`) while the learning
/// rate is constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate.
    pub lr: f32,
    /// Decay rate α of the average of squared gradients (Keras's ρ).
    pub alpha: f32,
    /// Keeps the denominator away from zero.
    pub eps: f32,
    /// Where ε is added.
    pub eps_placement: EpsilonPlacement,
    /// Momentum factor μ (0 turns momentum off).
    pub momentum: f32,
    /// Centred RMSprop: divide by an estimate of the gradient's variance
    /// (`v − ḡ²`) rather than its raw second moment.
    pub centered: bool,
    /// L2 penalty added to the gradient: `g ← g + λp`.
    pub weight_decay: f32,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            eps_placement: EpsilonPlacement::OutsideSqrt,
            momentum: 0.0,
            centered: false,
            weight_decay: 0.0,
        }
    }
}

impl RmsPropConfig {
    /// Keras's defaults: lr 1e-3, ρ = 0.9, ε = 1e-7 inside the square root.
    pub fn keras() -> RmsPropConfig {
        RmsPropConfig {
            lr: 1e-3,
            alpha: 0.9,
            eps: 1e-7,
            eps_placement: EpsilonPlacement::InsideSqrt,
            ..RmsPropConfig::default()
        }
    }
}

/// RMSprop, PyTorch's update rule (ε placement selectable):
///
/// ```text
/// g ← ∇ + λ·p
/// v ← α·v + (1 − α)·g²
/// centred:  ḡ ← α·ḡ + (1 − α)·g,   v' = v − ḡ²   (else v' = v)
/// d = √v' + ε   (or √(v' + ε))
/// momentum: b ← μ·b + g/d,  p ← p − lr·b   (else p ← p − lr·g/d)
/// ```
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::optim::{Optimizer, RmsProp, RmsPropConfig};
/// use ember_tensor::Tensor;
///
/// let w = Var::parameter(Tensor::from_vec(vec![1.0], &[1]));
/// let mut opt = RmsProp::new(vec![ember_layers::Named::new("w", &w)], RmsPropConfig::keras());
/// w.mul_scalar(2.0).sum().backward(); // g = 2, v = 0.1·4
/// opt.step();
/// let want = 1.0 - 1e-3 * 2.0 / (0.4f32 + 1e-7).sqrt();
/// assert!((w.value().item() - want).abs() < 1e-7);
/// ```
pub struct RmsProp {
    params: Vec<Named>,
    config: RmsPropConfig,
    states: Vec<ParamState>,
}

impl RmsProp {
    /// An optimizer for `params` (for example `model.parameters()`).
    ///
    /// # Panics
    /// On a negative learning rate, ε, momentum or weight decay, or α
    /// outside [0, 1].
    /// Any NaN or infinite setting is refused too; the message names the
    /// function, the setting and the value (`Sgd::new: invalid learning rate NaN`).
    #[track_caller]
    pub fn new(params: Vec<Named>, config: RmsPropConfig) -> RmsProp {
        let c = &config;
        check_config("RmsProp", "learning rate", c.lr, c.lr >= 0.0);
        check_config("RmsProp", "alpha", c.alpha, (0.0..=1.0).contains(&c.alpha));
        check_config("RmsProp", "epsilon", c.eps, c.eps >= 0.0);
        check_config("RmsProp", "momentum", c.momentum, c.momentum >= 0.0);
        check_config(
            "RmsProp",
            "weight decay",
            c.weight_decay,
            c.weight_decay >= 0.0,
        );
        let states = ParamState::for_params(&params, Self::slot_names_for(c).len(), 0.0);
        RmsProp {
            params,
            config,
            states,
        }
    }

    /// The settings.
    pub fn config(&self) -> &RmsPropConfig {
        &self.config
    }

    fn slot_names_for(c: &RmsPropConfig) -> &'static [&'static str] {
        match (c.centered, c.momentum != 0.0) {
            (false, false) => &["square_avg"],
            (true, false) => &["square_avg", "grad_avg"],
            (false, true) => &["square_avg", "momentum_buffer"],
            (true, true) => &["square_avg", "grad_avg", "momentum_buffer"],
        }
    }
}

impl Optimizer for RmsProp {
    fn step(&mut self) {
        let c = self.config;
        for (Named { var: param, .. }, state) in self.params.iter().zip(&mut self.states) {
            update_param(param, |p, g| {
                state.step += 1;
                let (square_avg, rest) = state.slots.split_first_mut().expect("square_avg");
                let v = square_avg.data_mut();
                let (ga, buf) = match rest {
                    [] => (&mut [][..], &mut [][..]),
                    [one] if c.centered => (one.data_mut(), &mut [][..]),
                    [one] => (&mut [][..], one.data_mut()),
                    [ga, buf, ..] => (ga.data_mut(), buf.data_mut()),
                };
                use EpsilonPlacement::{InsideSqrt as In, OutsideSqrt as Out};
                let m = c.momentum != 0.0;
                // One loop per variant, each free of branches.
                let kernel = match (c.centered, m, c.eps_placement) {
                    (false, false, Out) => kernel::<false, false, false>,
                    (false, false, In) => kernel::<false, false, true>,
                    (false, true, Out) => kernel::<false, true, false>,
                    (false, true, In) => kernel::<false, true, true>,
                    (true, false, Out) => kernel::<true, false, false>,
                    (true, false, In) => kernel::<true, false, true>,
                    (true, true, Out) => kernel::<true, true, false>,
                    (true, true, In) => kernel::<true, true, true>,
                };
                par_update(p, g, [v, ga, buf], |p, g, [v, ga, buf]| {
                    kernel(p, g, v, ga, buf, &c)
                });
            });
        }
    }

    fn parameters(&self) -> &[Named] {
        &self.params
    }

    fn lr(&self) -> f32 {
        self.config.lr
    }

    #[track_caller]
    fn set_lr(&mut self, lr: f32) {
        check_lr("RmsProp", lr);
        self.config.lr = lr;
    }

    fn state(&self) -> Vec<(String, super::StateValue)> {
        let names = Self::slot_names_for(&self.config);
        export_state(self.config.lr, &self.params, names, &self.states)
    }

    fn load_state(&mut self, state: Vec<(String, super::StateValue)>) -> Result<(), StateError> {
        let names = Self::slot_names_for(&self.config);
        import_state(
            state,
            &mut self.config.lr,
            &self.params,
            names,
            &mut self.states,
        )
    }
}

// The kernels take slices and scalars as arguments (not through a closure's
// captures) so the compiler knows nothing aliases and vectorises the loops.

/// `√v + ε` (PyTorch) or `√(v + ε)` (Keras 3, TensorFlow).
#[inline(always)]
fn denominator<const INSIDE: bool>(v: f32, eps: f32) -> f32 {
    if INSIDE {
        (v + eps).sqrt()
    } else {
        v.sqrt() + eps
    }
}

/// One fused pass over value, gradient and state. `ga` (centred) and `buf`
/// (momentum) are empty when their variant is off. Compiled for AVX-512
/// and AVX2 as well and picked at run time (see the module docs); the bits
/// are those of [`kernel_body`] on any of them.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2"))]
fn kernel<const CENTERED: bool, const MOMENTUM: bool, const INSIDE: bool>(
    p: &mut [f32],
    g: &[f32],
    v: &mut [f32],
    ga: &mut [f32],
    buf: &mut [f32],
    c: &RmsPropConfig,
) {
    kernel_body::<CENTERED, MOMENTUM, INSIDE>(p, g, v, ga, buf, c)
}

/// The loop of [`kernel`], as written; inlined into each of its versions.
#[inline(always)]
fn kernel_body<const CENTERED: bool, const MOMENTUM: bool, const INSIDE: bool>(
    p: &mut [f32],
    g: &[f32],
    v: &mut [f32],
    ga: &mut [f32],
    buf: &mut [f32],
    c: &RmsPropConfig,
) {
    let (lr, alpha, eps, mu, wd) = (c.lr, c.alpha, c.eps, c.momentum, c.weight_decay);
    // Equal lengths up front: no bounds checks inside the loop.
    let n = p.len();
    let (g, v) = (&g[..n], &mut v[..n]);
    let ga = if CENTERED { &mut ga[..n] } else { ga };
    let buf = if MOMENTUM { &mut buf[..n] } else { buf };
    for i in 0..n {
        let gi = g[i] + wd * p[i];
        v[i] = flush_subnormal(alpha * v[i] + (1.0 - alpha) * gi * gi);
        let var = if CENTERED {
            ga[i] = flush_subnormal(alpha * ga[i] + (1.0 - alpha) * gi);
            v[i] - ga[i] * ga[i]
        } else {
            v[i]
        };
        let d = denominator::<INSIDE>(var, eps);
        if MOMENTUM {
            buf[i] = flush_subnormal(mu * buf[i] + gi / d);
            p[i] -= lr * buf[i];
        } else {
            p[i] -= lr * gi / d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{test_bits, test_values};

    #[test]
    fn every_variant_run_at_run_time_width_matches_the_plain_loop_bit_for_bit() {
        let c = RmsPropConfig {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 1e-4,
            ..RmsPropConfig::default()
        };
        type Kernel = fn(&mut [f32], &[f32], &mut [f32], &mut [f32], &mut [f32], &RmsPropConfig);
        let variants: [(Kernel, Kernel); 4] = [
            (
                kernel::<false, false, false>,
                kernel_body::<false, false, false>,
            ),
            (
                kernel::<false, true, true>,
                kernel_body::<false, true, true>,
            ),
            (
                kernel::<true, false, false>,
                kernel_body::<true, false, false>,
            ),
            (kernel::<true, true, true>, kernel_body::<true, true, true>),
        ];
        for (dispatched, plain) in variants {
            let run = |f: Kernel| {
                let [mut p, g, mut v, mut ga, mut buf] = test_values::<5>(1_037);
                v.iter_mut().for_each(|v| *v = v.abs());
                for _ in 0..3 {
                    f(&mut p, &g, &mut v, &mut ga, &mut buf, &c);
                }
                test_bits([p, v, ga, buf])
            };
            assert_eq!(run(dispatched), run(plain));
        }
    }
}
