//! The classic small MNIST convnet (Keras's `mnist_cnn`): conv 32 3×3 ReLU →
//! conv 64 3×3 ReLU → max-pool 2 → dropout 0.25 → dense 128 ReLU →
//! dropout 0.5 → 10. Keras reports 99.25 % test accuracy after 12 epochs
//! (with Adadelta, batch 128); Ember trains it with Adam (lr 0.001, decayed
//! along half a cosine to 0 over the run, batch by batch), batch 64 (as
//! PyTorch's MNIST example).
//! Ends with the confusion matrix on the test set.
//!
//! ```text
//! cargo run --release --example mnist_cnn
//! cargo run --release --example mnist_cnn -- --epochs 3 --plot cnn.svg
//! ```

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::train::Recipe;
use common::{CommonArgs, OptimizerKind, ScheduleKind};
use ember::mnist::Layout;

/// Train the classic MNIST convnet.
#[derive(Parser, Debug)]
#[command(about, long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let recipe = Recipe {
        title: "MNIST CNN".into(),
        expected: Some("about 99.2 % test accuracy after 12 epochs"),
        epochs: 12,
        optimizer: OptimizerKind::Adam,
        lr: None,
        batch_size: 64,
        schedule: ScheduleKind::Cosine,
        layout: Layout::Image,
        extra: &[],
        init_report: false,
        confusion: true,
        parameters: None,
    };
    common::train::main(&cli.common, &recipe, |init, rng| {
        ember::zoo::mnist_cnn(init, rng)
    })
}
