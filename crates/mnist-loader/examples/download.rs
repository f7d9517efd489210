//! Downloads MNIST or Fashion-MNIST from the public mirrors, verifying every file.
//!
//! ```text
//! cargo run -p ember-mnist --example download                       # MNIST into data/mnist
//! cargo run -p ember-mnist --example download -- fashion            # into data/fashion-mnist
//! cargo run -p ember-mnist --example download -- mnist /some/dir https://my.mirror/mnist/
//! ```
//!
//! Arguments, all optional and in order: `mnist` or `fashion`, the target
//! directory, and a base URL to use instead of the public mirrors.

use std::path::PathBuf;

use ember_mnist::download::Downloader;
use ember_mnist::{Dataset, Mnist};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dataset = match args.first().map(String::as_str) {
        None | Some("mnist") => Dataset::Mnist,
        Some("fashion") | Some("fashion-mnist") => Dataset::FashionMnist,
        Some(other) => {
            eprintln!("unknown data set {other:?}: say `mnist` or `fashion`");
            std::process::exit(2);
        }
    };
    let dir = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| dataset.default_dir().to_path_buf());
    let mut downloader = Downloader::new(dataset);
    if let Some(url) = args.get(2) {
        downloader = downloader.base_url(url.clone());
    }

    let result = downloader
        .fetch_into(&dir)
        .and_then(|located| Mnist::from_located(&located));
    match result {
        Ok(set) => println!(
            "{} is in {}: {} training and {} test examples, checksums verified",
            dataset.name(),
            dir.display(),
            set.train.len(),
            set.test.len()
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
