//! Stochastic gradient descent with momentum, Nesterov and weight decay.

use super::StateError;
use super::{
    check_config, check_lr, export_state, flush_subnormal, import_state, par_update, update_param,
    Optimizer, ParamState,
};
use crate::Named;

/// Settings of [`Sgd`].
///
/// | | Ember (`Default`) | PyTorch `optim.SGD` | Keras `SGD` |
/// |---|---|---|---|
/// | `lr` | 1e-3 | 1e-3 | 1e-2 |
/// | `momentum` | 0 | 0 | 0 |
/// | `dampening` | 0 | 0 | — |
/// | `nesterov` | false | False | False |
/// | `weight_decay` | 0 | 0 | — (a regularizer) |
///
/// Keras's momentum form `v ← μv − lr·g; p ← p + v` equals PyTorch's while
/// the learning rate is constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor μ (0 turns momentum off).
    pub momentum: f32,
    /// Dampening of the gradient entering the momentum buffer.
    pub dampening: f32,
    /// Nesterov momentum (needs `momentum > 0` and `dampening = 0`).
    pub nesterov: bool,
    /// L2 penalty added to the gradient: `g ← g + λp`.
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// Stochastic gradient descent, PyTorch's update rule:
///
/// ```text
/// g ← ∇ + λ·p
/// if μ ≠ 0:  b ← g (first step),  b ← μ·b + (1 − dampening)·g (later)
///            g ← g + μ·b (Nesterov)  or  g ← b
/// p ← p − lr·g
/// ```
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::optim::{Optimizer, Sgd, SgdConfig};
/// use ember_tensor::Tensor;
///
/// let w = Var::parameter(Tensor::from_vec(vec![1.0], &[1]));
/// let mut opt = Sgd::new(vec![ember_layers::Named::new("w", &w)], SgdConfig { lr: 0.1, ..Default::default() });
/// w.mul_scalar(2.0).sum().backward(); // ∂/∂w = 2
/// opt.step();
/// assert!((w.value().item() - 0.8).abs() < 1e-7); // 1 − 0.1·2
/// ```
pub struct Sgd {
    params: Vec<Named>,
    config: SgdConfig,
    states: Vec<ParamState>,
}

impl Sgd {
    /// An optimizer for `params` (for example `model.parameters()`).
    ///
    /// # Panics
    /// On a negative learning rate, momentum, dampening or weight decay, or
    /// Nesterov without momentum or with dampening.
    /// Any NaN or infinite setting is refused too; the message names the
    /// function, the setting and the value (`Sgd::new: invalid learning rate NaN`).
    #[track_caller]
    pub fn new(params: Vec<Named>, config: SgdConfig) -> Sgd {
        let c = &config;
        check_config("Sgd", "learning rate", c.lr, c.lr >= 0.0);
        check_config("Sgd", "momentum", c.momentum, c.momentum >= 0.0);
        check_config("Sgd", "dampening", c.dampening, c.dampening >= 0.0);
        check_config("Sgd", "weight decay", c.weight_decay, c.weight_decay >= 0.0);
        assert!(
            !c.nesterov || (c.momentum > 0.0 && c.dampening == 0.0),
            "Sgd: Nesterov momentum needs momentum > 0 and zero dampening"
        );
        let slots = usize::from(c.momentum != 0.0);
        let states = ParamState::for_params(&params, slots, 0.0);
        Sgd {
            params,
            config,
            states,
        }
    }

    /// The settings.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    fn slot_names(&self) -> &'static [&'static str] {
        if self.config.momentum != 0.0 {
            &["momentum_buffer"]
        } else {
            &[]
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) {
        let c = self.config;
        for (Named { var: param, .. }, state) in self.params.iter().zip(&mut self.states) {
            update_param(param, |p, g| {
                state.step += 1;
                let first = state.step == 1;
                match state.slots.first_mut() {
                    None => par_update(p, g, [], |p, g, []| sgd_kernel(p, g, c.lr, c.weight_decay)),
                    Some(buf) => par_update(p, g, [buf.data_mut()], |p, g, [buf]| {
                        momentum_kernel(p, g, buf, &c, first)
                    }),
                }
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
        check_lr("Sgd", lr);
        self.config.lr = lr;
    }

    fn state(&self) -> Vec<(String, super::StateValue)> {
        export_state(
            self.config.lr,
            &self.params,
            self.slot_names(),
            &self.states,
        )
    }

    fn load_state(&mut self, state: Vec<(String, super::StateValue)>) -> Result<(), StateError> {
        let names = self.slot_names();
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

fn sgd_kernel(p: &mut [f32], g: &[f32], lr: f32, weight_decay: f32) {
    for (p, &g) in p.iter_mut().zip(g) {
        *p -= lr * (g + weight_decay * *p);
    }
}

fn momentum_kernel(p: &mut [f32], g: &[f32], buf: &mut [f32], c: &SgdConfig, first: bool) {
    let (lr, mu, wd) = (c.lr, c.momentum, c.weight_decay);
    let keep = 1.0 - c.dampening;
    for ((p, &g), b) in p.iter_mut().zip(g).zip(buf) {
        let g = g + wd * *p;
        // PyTorch starts the buffer at the first gradient, undamped.
        *b = flush_subnormal(if first { g } else { mu * *b + keep * g });
        let d = if c.nesterov { g + mu * *b } else { *b };
        *p -= lr * d;
    }
}
