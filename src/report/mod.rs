//! Reporting for training loops: a progress bar, a CSV of metrics per epoch,
//! SVG plots of the learning curves, and plots with error bands and
//! histograms for experiments repeated over seeds.

mod bands;
mod csv;
mod plot;
mod progress;

pub use bands::{
    plot_bands, plot_histograms, Band, BandPanel, BandPoint, Color, Histogram, HistogramPanel,
};
pub use csv::MetricsCsv;
pub use plot::{plot_curves, Curve, Panel};
pub use progress::EpochProgress;
