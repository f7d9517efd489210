//! Reporting for training loops: a progress bar, a CSV of metrics per epoch,
//! and SVG plots of the learning curves.

mod csv;
mod plot;
mod progress;

pub use csv::MetricsCsv;
pub use plot::{plot_curves, Curve, Panel};
pub use progress::EpochProgress;
