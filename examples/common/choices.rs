//! Choosing the optimizer, the learning-rate schedule and the initializer
//! by name on the command line.

use clap::ValueEnum;
use ember::layers::init::{
    self, FanMode, GlorotNormal, GlorotUniform, HeNormal, HeUniform, LecunNormal, LecunUniform,
    Orthogonal, VarianceScaling, Zeros,
};
use ember::layers::optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use ember::layers::schedule::{ConstantLr, CosineAnnealing, LrSchedule};
use ember::layers::{LayerInit, Module};

/// The learning-rate schedules the examples offer.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleKind {
    /// The same rate throughout.
    Constant,
    /// Half a cosine from the rate down to 0 over the whole run, per batch.
    Cosine,
}

impl ScheduleKind {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ScheduleKind::Constant => "constant",
            ScheduleKind::Cosine => "cosine",
        }
    }

    /// The schedule for a run of `total_steps` batches starting at `lr`.
    pub fn build(self, lr: f32, total_steps: usize) -> Box<dyn LrSchedule> {
        match self {
            ScheduleKind::Constant => Box::new(ConstantLr(lr)),
            ScheduleKind::Cosine => Box::new(CosineAnnealing::new(lr, total_steps.max(1), 0.0)),
        }
    }
}

/// The optimizers the examples offer.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// Plain SGD.
    Sgd,
    /// SGD with momentum 0.9.
    Momentum,
    /// Adam.
    Adam,
    /// AdamW (decoupled weight decay 0.01).
    Adamw,
    /// RMSprop as Keras has it (ρ = 0.9, ε = 1e-7 inside the root).
    Rmsprop,
}

impl OptimizerKind {
    /// The usual learning rate for this optimizer.
    pub fn default_lr(self) -> f32 {
        match self {
            OptimizerKind::Sgd | OptimizerKind::Momentum => 0.01,
            OptimizerKind::Adam | OptimizerKind::Adamw | OptimizerKind::Rmsprop => 0.001,
        }
    }

    /// Buffers the optimizer keeps per parameter (momentum, squared
    /// averages).
    pub fn state_slots(self) -> u64 {
        match self {
            OptimizerKind::Sgd => 0,
            OptimizerKind::Momentum | OptimizerKind::Rmsprop => 1,
            OptimizerKind::Adam | OptimizerKind::Adamw => 2,
        }
    }

    /// Builds the optimizer over `model`'s parameters.
    pub fn build(self, model: &dyn Module, lr: f32) -> Box<dyn Optimizer> {
        let params = model.parameters();
        match self {
            OptimizerKind::Sgd => Box::new(Sgd::new(
                params,
                SgdConfig {
                    lr,
                    ..Default::default()
                },
            )),
            OptimizerKind::Momentum => Box::new(Sgd::new(
                params,
                SgdConfig {
                    lr,
                    momentum: 0.9,
                    ..Default::default()
                },
            )),
            OptimizerKind::Adam => Box::new(Adam::new(
                params,
                AdamConfig {
                    lr,
                    ..Default::default()
                },
            )),
            OptimizerKind::Adamw => Box::new(AdamW::new(
                params,
                AdamWConfig {
                    lr,
                    ..Default::default()
                },
            )),
            OptimizerKind::Rmsprop => Box::new(RmsProp::new(
                params,
                RmsPropConfig {
                    lr,
                    ..RmsPropConfig::keras()
                },
            )),
        }
    }
}

/// Every built-in weight initializer, by name.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitKind {
    /// Ember's default: truncated normal, std 1/√fan_in, ±2σ, not corrected.
    TruncatedNormal,
    /// Truncated normal corrected to std 1/√fan_in (Keras's VarianceScaling).
    TruncatedNormalCorrected,
    /// Plain normal, std 1/√fan_in.
    Normal,
    /// Uniform with variance 1/fan_in.
    Uniform,
    /// Glorot (Xavier) uniform.
    GlorotUniform,
    /// Glorot (Xavier) normal.
    GlorotNormal,
    /// He (Kaiming) uniform.
    HeUniform,
    /// He (Kaiming) normal.
    HeNormal,
    /// LeCun uniform.
    LecunUniform,
    /// LeCun normal.
    LecunNormal,
    /// Orthogonal, gain 1.
    Orthogonal,
    /// All zeros (a cautionary baseline).
    Zeros,
}

impl InitKind {
    /// The layer initialization for this choice and a `--bias-init` value.
    pub fn layer_init(self, bias: &str) -> Result<LayerInit, String> {
        let fan_in = |distribution| VarianceScaling {
            scale: 1.0,
            mode: FanMode::FanIn,
            distribution,
        };
        let weight: Box<dyn Fn(LayerInit) -> LayerInit> = match self {
            InitKind::TruncatedNormal => Box::new(|l| l.weight(init::default_weight_init())),
            InitKind::TruncatedNormalCorrected => {
                Box::new(move |l| l.weight(fan_in(init::Distribution::TruncatedNormal)))
            }
            InitKind::Normal => Box::new(move |l| l.weight(fan_in(init::Distribution::Normal))),
            InitKind::Uniform => Box::new(move |l| l.weight(fan_in(init::Distribution::Uniform))),
            InitKind::GlorotUniform => Box::new(|l| l.weight(GlorotUniform)),
            InitKind::GlorotNormal => Box::new(|l| l.weight(GlorotNormal)),
            InitKind::HeUniform => Box::new(|l| l.weight(HeUniform)),
            InitKind::HeNormal => Box::new(|l| l.weight(HeNormal)),
            InitKind::LecunUniform => Box::new(|l| l.weight(LecunUniform)),
            InitKind::LecunNormal => Box::new(|l| l.weight(LecunNormal)),
            InitKind::Orthogonal => Box::new(|l| l.weight(Orthogonal::new(1.0))),
            InitKind::Zeros => Box::new(|l| l.weight(Zeros)),
        };
        let layer = weight(LayerInit::default());
        match bias {
            "default" => Ok(layer),
            value => value
                .parse::<f32>()
                .map(|b| layer.bias_constant(b))
                .map_err(|_| {
                    format!("--bias-init: expected \"default\" or a number, got {value:?}")
                }),
        }
    }
}
