//! The real MNIST files, when `MNIST_DIR` points at them (CI sets it; skipped otherwise).
//!
//! Checks the published label counts, the published SHA-256 of the uncompressed
//! files, and that our arrays equal the `mnist` crate's byte for byte.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use ember_mnist::{locate, BatchConfig, Dataset, FileKind, Layout, Mnist, Scaling};

const TRAIN_COUNTS: [usize; 10] = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const TEST_COUNTS: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

fn mnist_dir() -> Option<PathBuf> {
    match std::env::var_os("MNIST_DIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("note: MNIST_DIR is not set; skipping the real-MNIST test");
            None
        }
    }
}

#[test]
fn real_mnist_matches_published_counts_checksums_and_the_mnist_crate() {
    let Some(dir) = mnist_dir() else { return };
    let located = locate(Dataset::Mnist, Some(&dir)).unwrap();
    let ours = Mnist::from_located(&located).unwrap();

    assert_eq!((ours.train.len(), ours.test.len()), (60_000, 10_000));
    assert_eq!(ours.train.label_counts(), TRAIN_COUNTS);
    assert_eq!(ours.test.label_counts(), TEST_COUNTS);

    // The published checksums hold for what is on disk (gzip or raw).
    #[cfg(feature = "download")]
    for (file, kind) in ember_mnist::download::remote_files(Dataset::Mnist)
        .iter()
        .zip(FileKind::ALL)
    {
        ember_mnist::download::verify_file(located.path(kind), &file.checksum).unwrap();
    }

    // The `mnist` crate reads only uncompressed files under their canonical
    // names, so unpack them into a temporary directory first.
    let unpacked = tempfile::tempdir().unwrap();
    for kind in FileKind::ALL {
        unpack(
            located.path(kind),
            &unpacked.path().join(kind.canonical_name()),
        );
    }
    let base = unpacked.path().to_str().expect("temp dir path is UTF-8");
    let theirs = mnist::MnistBuilder::new()
        .base_path(base)
        .label_format_digit()
        .training_set_length(60_000)
        .validation_set_length(0)
        .test_set_length(10_000)
        .finalize();
    assert!(
        ours.train.pixels() == theirs.trn_img.as_slice(),
        "training images differ"
    );
    assert!(
        ours.train.labels() == theirs.trn_lbl.as_slice(),
        "training labels differ"
    );
    assert!(
        ours.test.pixels() == theirs.tst_img.as_slice(),
        "test images differ"
    );
    assert!(
        ours.test.labels() == theirs.tst_lbl.as_slice(),
        "test labels differ"
    );

    // Batches carry the right pixels: a standardised batch maps back to the bytes.
    let config = BatchConfig::new(100)
        .shuffled(5)
        .layout(Layout::Image)
        .scaling(Scaling::MNIST_STANDARD);
    let mut epoch = ours.train.epoch(&config, 3);
    let indices = epoch.indices_of(7).to_vec();
    let batch = epoch.nth(7).unwrap();
    assert_eq!(batch.images.shape(), &[100, 1, 28, 28]);
    let values = batch.images.to_vec();
    for (row, &i) in indices.iter().enumerate() {
        assert_eq!(batch.labels[row], ours.train.label(i));
        let image = &values[row * 784..(row + 1) * 784];
        for (&v, &p) in image.iter().zip(ours.train.image(i)) {
            let back = (v * 0.3081 + 0.1307) * 255.0;
            assert!((back - p as f32).abs() < 1e-3, "{back} vs {p}");
        }
    }
}

fn unpack(from: &Path, to: &Path) {
    let mut reader = ember_mnist::idx::maybe_gunzip(File::open(from).unwrap()).unwrap();
    let mut out = File::create(to).unwrap();
    io::copy(&mut reader, &mut out).unwrap();
}
