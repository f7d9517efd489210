//! What a model looks like at initialization, layer by layer: an
//! [`InitReport`].
//!
//! The report answers the questions people ask about initializers with
//! numbers from *their* model and *their* data: how wide are the weights,
//! how large are the pre-activations, how many sigmoid or tanh units start
//! saturated, how many ReLU units start dead, and how large is each weight's
//! gradient on the first batch.
//!
//! ```
//! use ember_layers::diagnostics::InitReport;
//! use ember_layers::{Linear, ReLU, Sequential};
//! use ember_tensor::Tensor;
//! use rand::SeedableRng;
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let model = Sequential::new()
//!     .add(Linear::new(20, 64, &mut rng))
//!     .add(ReLU)
//!     .add(Linear::new(64, 3, &mut rng));
//! let x = Tensor::randn(&[32, 20], &mut rng);
//! let labels: Vec<usize> = (0..32).map(|i| i % 3).collect();
//! let report = InitReport::new(&model, &x, &labels);
//! println!("{report}"); // a table
//!
//! let first = &report.layers[0];
//! // Ember's default: truncated normal, std 1/√fan_in before truncation,
//! // so no weight lies beyond 2/√fan_in and the actual std is ≈ 0.88/√fan_in.
//! assert_eq!(first.beyond_2_nominal, 0.0);
//! assert!((first.std_ratio - 0.88).abs() < 0.1);
//! // The 0.1 bias before the ReLU: no unit is dead on this batch.
//! assert_eq!(first.dead, Some(0.0));
//! assert!(first.grad_norm > 0.0);
//! ```

use std::fmt;

use ember_autograd::Var;
use ember_tensor::Tensor;

use crate::loss::{cross_entropy, Reduction};
use crate::probe;
use crate::{walk, Activation, LayerKind, Member, Module};

/// A sigmoid or tanh unit whose pre-activation exceeds this in absolute
/// value counts as saturated: there sigmoid′(z) < 0.105 (against 0.25 at 0)
/// and tanh′(z) < 0.071 (against 1), so its gradient is cut by 2.4× to 14×.
pub const SATURATION_THRESHOLD: f32 = 2.0;

/// The activation that follows a weighted layer in the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowedBy {
    /// A ReLU: the report counts dead units.
    Relu,
    /// A logistic sigmoid: the report counts saturated units.
    Sigmoid,
    /// A tanh: the report counts saturated units.
    Tanh,
    /// Another module (its description), or nothing (the model's output).
    Other(String),
}

impl FollowedBy {
    fn label(&self) -> &str {
        match self {
            FollowedBy::Relu => "ReLU",
            FollowedBy::Sigmoid => "sigmoid",
            FollowedBy::Tanh => "tanh",
            FollowedBy::Other(name) => name,
        }
    }
}

/// The figures of one weighted layer (a module with a parameter named
/// `"weight"` of two or more axes: `Linear`, `Conv2d`).
///
/// Two yardsticks for "large" weights, because they answer different
/// questions:
/// - σ, the weights' own **sample** std: `beyond_2_sigma` and
///   `beyond_3_sigma` describe the *shape* of the distribution (a normal
///   has 4.6 % and 0.27 %; a ±2σ-truncated normal, whose sample std is
///   0.88 of the std it was cut from, still has ≈ 3.4 % beyond 2 of *its
///   own* σ, but none beyond 2.28 of them).
/// - the **nominal** std 1/√fan_in (TensorFlow's MNIST recipe, Ember's
///   default before truncation): `beyond_2_nominal` and `beyond_3_nominal`
///   are zero for Ember's default by construction.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerStats {
    /// The layer's path in the model (its parameter-name prefix: `"0"`,
    /// `"fc1"`, `"blocks.1.conv2"`).
    pub name: String,
    /// The layer's description, like `Linear(784 → 512)`.
    pub description: String,
    /// What the layer's output feeds.
    pub followed_by: FollowedBy,
    /// Inputs per output unit: the product of the weight's axes after the first.
    pub fan_in: usize,
    /// Mean of the weights.
    pub weight_mean: f64,
    /// Sample std of the weights (about their mean; divides by n).
    pub weight_std: f64,
    /// `weight_std · √fan_in`: 1 for a std of exactly 1/√fan_in, 0.88 for
    /// Ember's (uncorrected) truncated default.
    pub std_ratio: f64,
    /// The largest |w|.
    pub max_abs: f64,
    /// Fraction of weights with |w − mean| > 2·`weight_std`.
    pub beyond_2_sigma: f64,
    /// Fraction of weights with |w − mean| > 3·`weight_std`.
    pub beyond_3_sigma: f64,
    /// Fraction of weights with |w| > 2/√fan_in.
    pub beyond_2_nominal: f64,
    /// Fraction of weights with |w| > 3/√fan_in.
    pub beyond_3_nominal: f64,
    /// Mean of the layer's output (the pre-activation z) over the batch.
    pub preact_mean: f64,
    /// Std of the pre-activation over the batch and the units.
    pub preact_std: f64,
    /// Before a sigmoid or tanh: the fraction of (example, unit) pairs with
    /// |z| > [`SATURATION_THRESHOLD`]; `None` otherwise.
    pub saturated: Option<f64>,
    /// Before a ReLU: the fraction of units (axis 1; a channel for
    /// convolutions) never positive on the batch; `None` otherwise.
    pub dead: Option<f64>,
    /// ‖∂L/∂W‖ (Frobenius) for the mean cross-entropy L on the batch.
    pub grad_norm: f64,
}

/// A model's state at initialization on one batch: see the
/// [module documentation](self).
///
/// Prints as a table (`Display`); every figure is also a public field.
#[derive(Clone, Debug, PartialEq)]
pub struct InitReport {
    /// Examples in the batch.
    pub batch_size: usize,
    /// The mean cross-entropy of the model's output on the batch
    /// (ln 10 ≈ 2.30 is chance for ten classes).
    pub loss: f64,
    /// One entry per weighted layer, in model order.
    pub layers: Vec<LayerStats>,
}

impl InitReport {
    /// Runs `model` on `input` (`(batch, …)`, whatever the model takes) and
    /// back-propagates the mean cross-entropy against `labels`, recording
    /// what each weighted layer looks like.
    ///
    /// The model runs in whatever mode it is in (call
    /// `model.set_training(false)` first to switch dropout off). Parameters'
    /// accumulated gradients are left as they were found.
    ///
    /// # Panics
    /// If the model's output is not `(batch, classes)` with one label per
    /// example, or a label is out of range (as cross-entropy panics).
    #[track_caller]
    pub fn new(model: &dyn Module, input: &Tensor, labels: &[usize]) -> InitReport {
        let params: Vec<Var> = model.parameters().into_iter().map(|p| p.var).collect();
        let saved: Vec<Option<Tensor>> = params.iter().map(Var::grad).collect();
        params.iter().for_each(Var::zero_grad);

        // The weighted layers, in state-dict order, by address (what the
        // probe records them under).
        let mut weighted = Vec::new();
        walk(model, &mut |path, member| {
            if let Member::Child(layer) = member {
                if let (LayerKind::Weighted { feeds }, Some(weight)) =
                    (layer.kind(), weight_of(layer))
                {
                    let address = layer as *const dyn Module as *const () as usize;
                    weighted.push((path.to_string(), address, feeds, layer.describe(), weight));
                }
            }
        });
        // A bare layer is its own model.
        if let (LayerKind::Weighted { feeds }, Some(weight)) = (model.kind(), weight_of(model)) {
            let address = model as *const dyn Module as *const () as usize;
            weighted.push((String::new(), address, feeds, model.describe(), weight));
        }
        let (logits, probe) = probe::recording(|| model.forward(&Var::constant(input.clone())));
        let loss = cross_entropy(&logits, labels, Reduction::Mean);
        loss.backward();

        let stats = weighted
            .into_iter()
            .filter_map(|(name, address, feeds, description, weight)| {
                // The layer's last output in this forward (a layer the
                // forward never ran has none and no row).
                let z = probe
                    .outputs
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == address)
                    .map(|(_, z)| z.clone())?;
                // What the layer was built to feed, else the activation
                // module its output went into.
                let feeds = match feeds {
                    Activation::Identity => probe
                        .activations
                        .iter()
                        .find(|(id, _)| *id == z.id())
                        .map_or(Activation::Identity, |(_, a)| *a),
                    declared => declared,
                };
                let followed_by = match feeds {
                    Activation::Relu => FollowedBy::Relu,
                    Activation::Sigmoid => FollowedBy::Sigmoid,
                    Activation::Tanh => FollowedBy::Tanh,
                    Activation::Identity if z.id() == logits.id() => {
                        FollowedBy::Other("output".to_string())
                    }
                    other => FollowedBy::Other(other.label().to_string()),
                };
                Some(layer_stats(
                    name,
                    description,
                    followed_by,
                    &weight,
                    &z.value(),
                ))
            })
            .collect();

        for (p, g) in params.iter().zip(saved) {
            p.set_grad(g);
        }
        InitReport {
            batch_size: labels.len(),
            loss: loss.item() as f64,
            layers: stats,
        }
    }
}

/// The weight of a weighted layer ([`LayerKind::Weighted`]): its first
/// parameter.
fn weight_of(layer: &dyn Module) -> Option<Var> {
    match layer.kind() {
        LayerKind::Weighted { .. } => layer.parameters().into_iter().next().map(|p| p.var),
        _ => None,
    }
}

fn layer_stats(
    name: String,
    description: String,
    followed_by: FollowedBy,
    weight: &Var,
    z: &Tensor,
) -> LayerStats {
    let w = weight.value().to_vec();
    let shape = weight.shape();
    let fan_in: usize = shape[1..].iter().product();
    let (weight_mean, weight_std) = mean_std(&w);
    let nominal = 1.0 / (fan_in.max(1) as f64).sqrt();
    let fraction = |pred: &dyn Fn(f64) -> bool| {
        w.iter().filter(|&&v| pred(v as f64)).count() as f64 / w.len().max(1) as f64
    };
    let zs = z.to_vec();
    let (preact_mean, preact_std) = mean_std(&zs);
    let saturated = matches!(followed_by, FollowedBy::Sigmoid | FollowedBy::Tanh).then(|| {
        let n = zs.iter().filter(|v| v.abs() > SATURATION_THRESHOLD).count();
        n as f64 / zs.len().max(1) as f64
    });
    let dead = (followed_by == FollowedBy::Relu).then(|| dead_fraction(z));
    let grad_norm = weight
        .grad()
        .map(|g| {
            g.to_vec()
                .iter()
                .map(|&v| (v as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .unwrap_or(0.0);
    LayerStats {
        name,
        description,
        followed_by,
        fan_in,
        weight_mean,
        weight_std,
        std_ratio: weight_std / nominal,
        max_abs: w.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64)),
        beyond_2_sigma: fraction(&|v| (v - weight_mean).abs() > 2.0 * weight_std),
        beyond_3_sigma: fraction(&|v| (v - weight_mean).abs() > 3.0 * weight_std),
        beyond_2_nominal: fraction(&|v| v.abs() > 2.0 * nominal),
        beyond_3_nominal: fraction(&|v| v.abs() > 3.0 * nominal),
        preact_mean,
        preact_std,
        saturated,
        dead,
        grad_norm,
    }
}

/// Mean and (population) std, accumulated in f64.
fn mean_std(values: &[f32]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

/// Fraction of units (axis 1) whose pre-activation is ≤ 0 for every example
/// and position of the batch: a ReLU there passes no signal and no gradient.
fn dead_fraction(z: &Tensor) -> f64 {
    let shape = z.shape();
    if shape.len() < 2 || shape[1] == 0 {
        return 0.0;
    }
    let units = shape[1];
    let inner: usize = shape[2..].iter().product();
    let mut alive = vec![false; units];
    for (k, &v) in z.to_vec().iter().enumerate() {
        if v > 0.0 {
            alive[(k / inner) % units] = true;
        }
    }
    alive.iter().filter(|&&a| !a).count() as f64 / units as f64
}

impl fmt::Display for InitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "initialization report on a batch of {} (loss {:.4})",
            self.batch_size, self.loss
        )?;
        writeln!(
            f,
            "{:<14} {:<20} {:<8} {:>9} {:>7} {:>8} {:>6} {:>6} {:>7} {:>8} {:>7} {:>6} {:>6} {:>9}",
            "name",
            "layer",
            "feeds",
            "w std",
            "×√fan",
            "max|w|",
            ">2σ%",
            ">3σ%",
            ">2/√n%",
            "z mean",
            "z std",
            "sat%",
            "dead%",
            "‖∇W‖"
        )?;
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}", 100.0 * v));
        for l in &self.layers {
            writeln!(
                f,
                "{:<14} {:<20} {:<8} {:>9.5} {:>7.3} {:>8.4} {:>6.2} {:>6.2} {:>7.2} {:>8.4} {:>7.4} {:>6} {:>6} {:>9.3e}",
                l.name,
                l.description,
                l.followed_by.label(),
                l.weight_std,
                l.std_ratio,
                l.max_abs,
                100.0 * l.beyond_2_sigma,
                100.0 * l.beyond_3_sigma,
                100.0 * l.beyond_2_nominal,
                l.preact_mean,
                l.preact_std,
                pct(l.saturated),
                pct(l.dead),
                l.grad_norm
            )?;
        }
        write!(
            f,
            "σ: the weights' sample std; n: fan_in; saturated: |z| > {SATURATION_THRESHOLD} before sigmoid/tanh; \
             dead: ReLU units never positive on the batch"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::Constant;
    use crate::Sequential;
    use crate::{LayerInit, Linear, ReLU, Sigmoid, Tanh};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(3)
    }

    #[test]
    fn known_weights_give_known_weight_stats() {
        // A 2×4 weight of ±0.5 (four of each): mean 0, std 0.5, max 0.5,
        // none beyond 2σ; fan_in 4, so 1/√fan_in = 0.5 and the ratio is 1.
        let layer = Linear::new(4, 2, &mut rng());
        let w = [0.5, -0.5, 0.5, -0.5, -0.5, 0.5, -0.5, 0.5];
        layer
            .weight()
            .set_value(Tensor::from_vec(w.to_vec(), &[2, 4]));
        let model = Sequential::new().add(layer);
        let x = Tensor::from_vec(vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0], &[2, 4]);
        let r = InitReport::new(&model, &x, &[0, 1]);
        let l = &r.layers[0];
        assert_eq!(l.fan_in, 4);
        assert_eq!(l.weight_mean, 0.0);
        assert!((l.weight_std - 0.5).abs() < 1e-12);
        assert!((l.std_ratio - 1.0).abs() < 1e-12);
        assert_eq!(l.max_abs, 0.5);
        assert_eq!((l.beyond_2_sigma, l.beyond_2_nominal), (0.0, 0.0));
        // z = x·Wᵀ (bias 0): example 0 → (0.5, −0.5), example 1 → (−0.5, 0.5).
        assert_eq!(l.preact_mean, 0.0);
        assert!((l.preact_std - 0.5).abs() < 1e-12);
        assert_eq!(l.followed_by, FollowedBy::Other("output".to_string()));
        assert_eq!((l.saturated, l.dead), (None, None));
        // Labels 0 and 1: each true class leads the other logit by 1, so
        // each example's loss is ln(1 + e⁻¹).
        let want = (1.0f64 + (-1f64).exp()).ln();
        assert!((r.loss - want).abs() < 1e-6, "{} vs {want}", r.loss);
    }

    #[test]
    fn gradient_norm_matches_the_hand_derivation() {
        // One example x = e₀, zero weights: p = (½, ½), label 0, so
        // ∂L/∂z = p − onehot = (−½, ½) and ∂L/∂W = (∂L/∂z)ᵀ·x has two
        // non-zero entries ∓½: ‖∇W‖ = √(¼ + ¼) = 1/√2.
        let init = LayerInit::default().weight(Constant(0.0));
        let model = Sequential::new().add(Linear::with_init(3, 2, &init, &mut rng()));
        let x = Tensor::from_vec(vec![1.0, 0.0, 0.0], &[1, 3]);
        let r = InitReport::new(&model, &x, &[0]);
        assert!((r.layers[0].grad_norm - 0.5f64.sqrt()).abs() < 1e-6);
        assert!((r.loss - 2f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn a_large_negative_bias_kills_every_relu_unit() {
        let init = LayerInit::default().bias_constant(-100.0);
        let model = Sequential::new()
            .add(Linear::with_init(8, 16, &init, &mut rng()))
            .add(ReLU)
            .add(Linear::new(16, 3, &mut rng()));
        let x = Tensor::uniform(&[64, 8], 0.0, 1.0, &mut rng());
        let labels: Vec<usize> = (0..64).map(|i| i % 3).collect();
        let r = InitReport::new(&model, &x, &labels);
        assert_eq!(r.layers.len(), 2);
        assert_eq!(r.layers[0].followed_by, FollowedBy::Relu);
        assert_eq!(r.layers[0].dead, Some(1.0));
        // Nothing reaches the first layer's weight through dead units.
        assert_eq!(r.layers[0].grad_norm, 0.0);
        // A default model (bias 0.1 before the ReLU) on centred inputs has
        // live units. (On all-positive inputs a unit whose weights are mostly
        // negative can start dead even so: 2 of these 16 do on `x`.)
        let alive = Sequential::new()
            .add(Linear::new(8, 16, &mut rng()))
            .add(ReLU)
            .add(Linear::new(16, 3, &mut rng()));
        let centred = Tensor::randn(&[64, 8], &mut rng());
        let r = InitReport::new(&alive, &centred, &labels);
        assert_eq!(r.layers[0].dead, Some(0.0));
        assert!(r.layers[0].grad_norm > 0.0);
    }

    #[test]
    fn saturation_counts_large_pre_activations_only() {
        // Weight 1 on one input: z equals that input. Inputs −3, −1, 0.5, 2.5
        // → two of four beyond |2|.
        for (act, kind) in [
            (Box::new(Sigmoid) as Box<dyn Module>, FollowedBy::Sigmoid),
            (Box::new(Tanh), FollowedBy::Tanh),
        ] {
            let init = LayerInit::default().weight(Constant(1.0));
            let mut model = Sequential::new().add(Linear::with_init(1, 1, &init, &mut rng()));
            model.push(act);
            model.push(Box::new(Linear::new(1, 2, &mut rng())));
            let x = Tensor::from_vec(vec![-3.0, -1.0, 0.5, 2.5], &[4, 1]);
            let r = InitReport::new(&model, &x, &[0, 1, 0, 1]);
            assert_eq!(r.layers[0].followed_by, kind);
            assert_eq!(r.layers[0].saturated, Some(0.5));
            assert_eq!(r.layers[0].dead, None);
        }
    }

    #[test]
    fn dead_units_are_counted_per_unit_not_per_value() {
        // Unit 0 positive once, unit 1 never, unit 2 always.
        let z = Tensor::from_vec(vec![-1.0, -1.0, 1.0, 2.0, 0.0, 1.0], &[2, 3]);
        assert!((dead_fraction(&z) - 1.0 / 3.0).abs() < 1e-12);
        // (batch, channels, h, w): a channel is alive if any position is.
        let mut v = vec![-1.0; 2 * 2 * 4];
        v[4 + 3] = 0.5; // example 0, channel 1, last position
        assert_eq!(dead_fraction(&Tensor::from_vec(v, &[2, 2, 2, 2])), 0.5);
    }

    #[test]
    fn gradients_are_left_as_found() {
        let model = Sequential::new().add(Linear::new(3, 2, &mut rng()));
        let params = model.parameters();
        params[0].var.set_grad(Some(Tensor::full(&[2, 3], 7.0)));
        let x = Tensor::ones(&[4, 3]);
        let r = InitReport::new(&model, &x, &[0, 1, 0, 1]);
        assert!(r.layers[0].grad_norm > 0.0);
        assert_eq!(params[0].var.grad().unwrap().to_vec(), vec![7.0; 6]);
        assert!(params[1].var.grad().is_none());
    }

    #[test]
    fn the_table_lists_every_weighted_layer() {
        let model = Sequential::new()
            .add(Linear::new(5, 6, &mut rng()))
            .add(Tanh)
            .add(Linear::new(6, 2, &mut rng()));
        let r = InitReport::new(&model, &Tensor::ones(&[2, 5]), &[0, 1]);
        let table = r.to_string();
        assert!(table.contains("Linear(5 → 6)") && table.contains("Linear(6 → 2)"));
        assert!(table.contains("tanh"));
        assert_eq!(table.lines().count(), 2 + 2 + 1);
    }

    #[test]
    fn a_users_struct_gets_a_row_per_weighted_layer_named_by_its_field() {
        use crate::{Activation, LayerInit, Linear, Members};
        struct Net([Linear; 2]);
        impl Module for Net {
            fn forward(&self, x: &Var) -> Var {
                self.0[1].forward(&self.0[0].forward(x).relu())
            }
            fn visit(&self, m: &mut Members) {
                m.child("fc1", &self.0[0]);
                m.child("fc2", &self.0[1]);
            }
        }
        let relu = LayerInit::before(Activation::Relu);
        let net = Net([
            Linear::with_init(5, 6, &relu, &mut rng()),
            Linear::new(6, 3, &mut rng()),
        ]);
        let r = InitReport::new(&net, &Tensor::ones(&[4, 5]), &[0, 1, 2, 0]);
        let rows: Vec<(&str, &FollowedBy)> = r
            .layers
            .iter()
            .map(|l| (l.name.as_str(), &l.followed_by))
            .collect();
        assert_eq!(
            rows,
            [
                ("fc1", &FollowedBy::Relu),
                ("fc2", &FollowedBy::Other("output".to_string()))
            ]
        );
        assert!(r.layers[0].dead.is_some() && r.layers[1].dead.is_none());
        assert!(r.layers.iter().all(|l| l.grad_norm > 0.0));
    }
}
