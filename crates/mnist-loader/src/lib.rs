//! # ember-mnist
//!
//! Careful loading of the MNIST family (MNIST and Fashion-MNIST) for Ember's
//! training loops: every file is validated, every fault is a typed error that
//! names the file, and batches come out as `f32` [`Tensor`](ember_tensor::Tensor)s.
//!
//! - [`idx`]: the IDX format. A parser over any `Read` for all six element
//!   types, gzip recognised by its magic bytes; the payload must be exactly as
//!   long as the header says, and a forged header cannot make it allocate more
//!   than the input holds.
//! - [`mnist`]: the four files of a set, where they are looked for ([`locate`]:
//!   an explicit path alone, else `$MNIST_DIR`, then `data/mnist`), and the checked
//!   [`MnistSet`] (images 28×28 `u8`, labels `0..=9`, as many of each).
//! - [`batches`]: epochs of [`Batch`]es, `(batch, 784)` or `(batch, 1, 28, 28)`,
//!   in `[0, 1]` or standardised, with seeded per-epoch shuffling that is a pure
//!   function of `(seed, epoch)`, and validation splits.
//! - [`download`] (feature `download`, on by default): the public mirrors,
//!   checksums, a progress bar, and a file renamed into place only once verified;
//!   `Mnist::load_or_download` fetches the set when it is nowhere to be found.
//! - [`MnistError`]: the one error type.
//!
//! ```no_run
//! use ember_mnist::{BatchConfig, Dataset, Layout, Mnist};
//!
//! let mnist = Mnist::load(Dataset::Mnist, None)?; // $MNIST_DIR, then data/mnist
//! let (train, val) = mnist.train.split_validation(10_000);
//! let config = BatchConfig::new(64).shuffled(42).layout(Layout::Flat);
//! for epoch in 0..3 {
//!     for batch in train.epoch(&config, epoch) {
//!         assert_eq!(batch.images.shape()[1], 784); // (batch, 784) in [0, 1]
//!         // ... forward, loss against batch.labels, backward, step ...
//!     }
//! }
//! assert_eq!(val.len(), 10_000);
//! # Ok::<(), ember_mnist::MnistError>(())
//! ```
//!
//! A self-contained example with a synthetic file:
//!
//! ```
//! use ember_mnist::idx::{write_idx, IdxData};
//! use ember_mnist::{BatchConfig, MnistError, MnistSet};
//!
//! let dir = std::env::temp_dir().join(format!("ember-mnist-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let (images, labels) = (dir.join("images"), dir.join("labels"));
//! std::fs::write(&images, write_idx(&[3, 28, 28], &IdxData::U8(vec![255; 3 * 784]))).unwrap();
//! std::fs::write(&labels, write_idx(&[3], &IdxData::U8(vec![4, 2, 10]))).unwrap();
//!
//! // Label 10 is caught, with the file, the index and the value.
//! let err = MnistSet::from_files(&images, &labels).unwrap_err();
//! assert!(matches!(err, MnistError::LabelOutOfRange { index: 2, value: 10, .. }));
//!
//! std::fs::write(&labels, write_idx(&[3], &IdxData::U8(vec![4, 2, 7]))).unwrap();
//! let set = MnistSet::from_files(&images, &labels).unwrap();
//! let batch = set.epoch(&BatchConfig::new(2), 0).next().unwrap();
//! assert_eq!(batch.images.shape(), &[2, 784]);
//! assert_eq!(batch.labels, vec![4, 2]);
//! assert_eq!(batch.images.max_all(), 1.0);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
//!
//! ## Fuzzing
//! `crates/mnist-loader/fuzz` is a `cargo fuzz` crate (its own workspace) with
//! one target, `idx_parser`, feeding arbitrary bytes (raw or gzip) to the parser.
//! It needs a nightly toolchain and `cargo install cargo-fuzz`:
//!
//! ```text
//! cd crates/mnist-loader/fuzz
//! cargo +nightly fuzz run idx_parser -- -max_total_time=300 -malloc_limit_mb=64
//! ```
//!
//! (Ember's machines have no nightly toolchain, so it is not run there.) On
//! stable, and in CI, the property test `tests/mutations.rs` covers the same
//! ground: random mutations of valid files, raw and gzip, never panic, and the
//! peak heap stays small.
#![forbid(unsafe_code)]

pub mod batches;
#[cfg(feature = "download")]
pub mod download;
pub mod error;
pub mod idx;
pub mod mnist;

pub use batches::{Batch, BatchConfig, Batches, Layout, Order, Scaling, Shard};
pub use error::{MirrorAttempt, MnistError, Result, SearchedDir};
pub use mnist::{locate, Dataset, FileKind, Located, Mnist, MnistSet, CLASSES, PIXELS, SIDE};
