//! A small residual convnet, written as the user's own structs (`Block`,
//! `Net`) with `Module::visit`: stem conv 32 3×3 → batch norm → ReLU →
//! max-pool 2 → two residual blocks (conv → BN → ReLU → conv → BN, plus the
//! input, → ReLU) → global average pool → linear 10.
//!
//! Its checkpoint (`--save`) has exactly the state dict of this PyTorch
//! module, batch-norm buffers included, so `load_state_dict(strict=True)`
//! takes it after dropping the `optimizer.` entries (docs/check_pytorch_load.py
//! does it):
//!
//! ```python
//! class Block(nn.Module):
//!     def __init__(s, c):
//!         super().__init__()
//!         s.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False); s.bn1 = nn.BatchNorm2d(c)
//!         s.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False); s.bn2 = nn.BatchNorm2d(c)
//!     def forward(s, x):
//!         return F.relu(x + s.bn2(s.conv2(F.relu(s.bn1(s.conv1(x))))))
//! class Net(nn.Module):
//!     def __init__(s):
//!         super().__init__()
//!         s.stem = nn.Conv2d(1, 32, 3, padding=1, bias=False); s.bn = nn.BatchNorm2d(32)
//!         s.blocks = nn.Sequential(Block(32), Block(32)); s.head = nn.Linear(32, 10)
//!     def forward(s, x):
//!         x = F.max_pool2d(F.relu(s.bn(s.stem(x))), 2)
//!         return s.head(s.blocks(x).mean((2, 3)))
//! ```
//!
//! Default recipe: Adam, lr 0.003 decayed along half a cosine to 0 over the
//! run (batch by batch), batch 64, 3 epochs: 99.34, 99.39, 99.27 % test
//! accuracy for seeds 0–2 (mean 99.33 %). One epoch (`--epochs 1`, the
//! cosine then spans that epoch): 98.76, 98.83, 98.69 % (mean 98.76 %), in
//! about two minutes on one thread (docs/benchmarks.md).
//!
//! ```text
//! cargo run --release --example mnist_resnet
//! cargo run --release --example mnist_resnet -- --epochs 1 --save resnet.safetensors
//! ```

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::train::Recipe;
use common::{CommonArgs, OptimizerKind, ScheduleKind};
use ember::autograd::Var;
use ember::layers::{Activation, BatchNorm2d, Conv2d, LayerInit, Linear, Members, Module};
use ember::mnist::Layout;
use rand_chacha::ChaCha8Rng;

/// Train a small residual convnet on MNIST.
#[derive(Parser, Debug)]
#[command(about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

/// A `3×3` convolution, stride 1, padding 1, no bias (batch norm follows).
fn conv3(c_in: usize, c_out: usize, init: &LayerInit, rng: &mut ChaCha8Rng) -> Conv2d {
    Conv2d::with_options(c_in, c_out, 3, 1, 1, init, rng)
}

/// `relu(x + bn2(conv2(relu(bn1(conv1(x))))))`, shape-preserving.
struct Block {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
}

impl Block {
    fn new(c: usize, init: &LayerInit, rng: &mut ChaCha8Rng) -> Block {
        Block {
            conv1: conv3(c, c, init, rng),
            bn1: BatchNorm2d::new(c),
            conv2: conv3(c, c, init, rng),
            bn2: BatchNorm2d::new(c),
        }
    }
}

impl Module for Block {
    fn forward(&self, x: &Var) -> Var {
        let h = self.bn1.forward(&self.conv1.forward(x)).relu();
        let h = self.bn2.forward(&self.conv2.forward(&h));
        x.add(&h).relu()
    }
    fn visit(&self, m: &mut Members) {
        m.child("conv1", &self.conv1);
        m.child("bn1", &self.bn1);
        m.child("conv2", &self.conv2);
        m.child("bn2", &self.bn2);
    }
}

/// `(batch, 1, 28, 28) → (batch, 10)`.
struct Net {
    stem: Conv2d,
    bn: BatchNorm2d,
    blocks: Vec<Block>,
    head: Linear,
}

impl Net {
    fn new(init: &LayerInit, rng: &mut ChaCha8Rng) -> Net {
        // Every convolution feeds a ReLU (through batch norm) and has no bias.
        let conv = init.clone().feeding(Activation::Relu).no_bias();
        Net {
            stem: conv3(1, 32, &conv, rng),
            bn: BatchNorm2d::new(32),
            blocks: vec![Block::new(32, &conv, rng), Block::new(32, &conv, rng)],
            head: Linear::with_init(32, 10, init, rng),
        }
    }
}

impl Module for Net {
    fn forward(&self, x: &Var) -> Var {
        let x = self.bn.forward(&self.stem.forward(x)).relu(); // (32, 28, 28)
        let x = x.max_pool2d(2, 2); // (32, 14, 14)
        let x = self.blocks.iter().fold(x, |x, b| b.forward(&x));
        let pooled = x.mean_axis(3, false).mean_axis(2, false); // (batch, 32)
        self.head.forward(&pooled)
    }
    fn visit(&self, m: &mut Members) {
        m.child("stem", &self.stem);
        m.child("bn", &self.bn);
        m.children("blocks", &self.blocks);
        m.child("head", &self.head);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let recipe = Recipe {
        title: "MNIST ResNet".into(),
        expected: Some("about 99.3 % test accuracy after 3 epochs"),
        epochs: 3,
        optimizer: OptimizerKind::Adam,
        lr: Some(0.003),
        batch_size: 64,
        schedule: ScheduleKind::Cosine,
        layout: Layout::Image,
        extra: &[],
        init_report: false,
        confusion: false,
        parameters: None,
    };
    common::train::main(&cli.common, &recipe, Net::new)
}
