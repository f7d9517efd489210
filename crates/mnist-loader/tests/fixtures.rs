//! Hand-built files on disk: every fault the loader must name, and the search for the files.

use std::io::Write;
use std::path::{Path, PathBuf};

use ember_mnist::idx::{read_idx_file, write_idx, IdxData};
use ember_mnist::{locate, Dataset, FileKind, Mnist, MnistError, MnistSet, PIXELS};

/// `n` images whose pixels are `(i + k) % 256` and labels `i % 10`.
fn images(n: usize) -> Vec<u8> {
    let pixels = (0..n * PIXELS)
        .map(|j| ((j / PIXELS + j % PIXELS) % 256) as u8)
        .collect();
    write_idx(&[n as u32, 28, 28], &IdxData::U8(pixels))
}

fn labels(n: usize) -> Vec<u8> {
    write_idx(
        &[n as u32],
        &IdxData::U8((0..n).map(|i| (i % 10) as u8).collect()),
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A whole set (train `n`, test `m`) in `dir`, gzipped or not, under canonical names.
fn write_set(dir: &Path, n: usize, m: usize, gz: bool) {
    let files = [
        (FileKind::TrainImages, images(n)),
        (FileKind::TrainLabels, labels(n)),
        (FileKind::TestImages, images(m)),
        (FileKind::TestLabels, labels(m)),
    ];
    for (kind, bytes) in files {
        if gz {
            write(dir, &format!("{}.gz", kind.canonical_name()), &gzip(&bytes));
        } else {
            write(dir, kind.canonical_name(), &bytes);
        }
    }
}

/// Loads an image file and a good label file for its count, returning the error.
fn image_fault(bytes: &[u8]) -> (PathBuf, MnistError) {
    let dir = tempfile::tempdir().unwrap();
    let images = write(dir.path(), "bad-images", bytes);
    let labels = write(dir.path(), "labels", &labels(3));
    let err = MnistSet::from_files(&images, &labels).unwrap_err();
    assert!(
        err.to_string().contains(&images.display().to_string()),
        "message names the file: {err}"
    );
    (images, err)
}

#[test]
fn good_files_load_raw_and_gzip_identically() {
    let dir = tempfile::tempdir().unwrap();
    let raw = MnistSet::from_files(
        write(dir.path(), "i", &images(7)),
        write(dir.path(), "l", &labels(7)),
    )
    .unwrap();
    assert_eq!(raw.len(), 7);
    assert_eq!(raw.image(3)[5], 8);
    assert_eq!(raw.label(6), 6);
    assert_eq!(raw.label_counts(), [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);

    // gzip named as if raw: recognised by magic bytes.
    let gz = MnistSet::from_files(
        write(dir.path(), "i-actually-gzip", &gzip(&images(7))),
        write(dir.path(), "l.gz", &gzip(&labels(7))),
    )
    .unwrap();
    assert_eq!(gz, raw);
}

#[test]
fn bad_magic() {
    let mut bytes = images(3);
    bytes[0] = 0x1f; // not gzip either: 0x1f 0x00
    let (_, err) = image_fault(&bytes);
    assert!(
        matches!(
            err,
            MnistError::BadMagic {
                found: [0x1f, 0, 8, 3],
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn unsupported_type() {
    let mut bytes = images(3);
    bytes[2] = 0x07;
    let (_, err) = image_fault(&bytes);
    assert!(
        matches!(err, MnistError::UnsupportedType { code: 7, .. }),
        "{err}"
    );
}

#[test]
fn truncated_header() {
    let (_, err) = image_fault(&images(3)[..10]);
    assert!(
        matches!(
            err,
            MnistError::Truncated {
                part: "header",
                expected: 16,
                got: 10,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn truncated_payload() {
    let bytes = images(3);
    let (_, err) = image_fault(&bytes[..bytes.len() - 100]);
    assert!(
        matches!(
            err,
            MnistError::Truncated {
                part: "payload",
                expected: 2352,
                got: 2252,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("expected 2352 bytes, got 2252"),
        "{err}"
    );
}

#[test]
fn trailing_bytes() {
    let mut bytes = images(3);
    bytes.push(0);
    let (_, err) = image_fault(&bytes);
    assert!(
        matches!(err, MnistError::TrailingBytes { extra: 1, .. }),
        "{err}"
    );
}

#[test]
fn wrong_image_shape_and_type() {
    let bytes = write_idx(&[3, 27, 28], &IdxData::U8(vec![0; 3 * 27 * 28]));
    let (_, err) = image_fault(&bytes);
    assert!(
        matches!(&err, MnistError::DimensionMismatch { found, .. } if found == &[3, 27, 28]),
        "{err}"
    );
    let bytes = write_idx(&[3, 28, 28], &IdxData::I16(vec![0; 3 * PIXELS]));
    let (_, err) = image_fault(&bytes);
    assert!(
        matches!(
            err,
            MnistError::WrongType {
                expected: "u8",
                found: "i16",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn label_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_idx(&[4], &IdxData::U8(vec![0, 9, 10, 3]));
    let labels = write(dir.path(), "labels", &bad);
    let images = write(dir.path(), "images", &images(4));
    let err = MnistSet::from_files(&images, &labels).unwrap_err();
    assert!(
        matches!(&err, MnistError::LabelOutOfRange { index: 2, value: 10, max: 9, path } if path == &labels),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("label 10 at index 2 is out of range 0..=9"),
        "{err}"
    );
}

#[test]
fn count_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let images = write(dir.path(), "images", &images(5));
    let labels = write(dir.path(), "labels", &labels(4));
    let err = MnistSet::from_files(&images, &labels).unwrap_err();
    assert!(
        matches!(
            err,
            MnistError::CountMismatch {
                images: 5,
                labels: 4,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn corrupt_gzip_stream() {
    let mut gz = gzip(&images(3));
    let n = gz.len();
    gz.truncate(n - 20); // cut inside the deflate data
    let (_, err) = image_fault(&gz);
    assert!(matches!(err, MnistError::CorruptGzip { .. }), "{err}");

    let mut gz = gzip(&images(3));
    let n = gz.len();
    gz[n - 8] ^= 1; // the CRC-32 in the trailer
    let (_, err) = image_fault(&gz);
    assert!(matches!(err, MnistError::CorruptGzip { .. }), "{err}");
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = read_idx_file("/nonexistent/ember/train-images-idx3-ubyte").unwrap_err();
    assert!(matches!(err, MnistError::Io { .. }), "{err}");
    assert!(err
        .to_string()
        .starts_with("/nonexistent/ember/train-images-idx3-ubyte: I/O error"));
}

#[test]
fn whole_set_loads_from_a_directory_with_any_accepted_names() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), 12, 5, true);
    // Replace one file by its dotted, uncompressed variant.
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    write(dir.path(), "t10k-labels.idx1-ubyte", &labels(5));
    let mnist = Mnist::load(Dataset::Mnist, Some(dir.path())).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (12, 5));
    assert_eq!(mnist.test.label(4), 4);
}

/// The one test that touches the environment (FASHION_MNIST_DIR, which nothing else reads).
#[test]
fn search_order_explicit_then_env_then_default() {
    let explicit = tempfile::tempdir().unwrap();
    let from_env = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    write_set(explicit.path(), 3, 2, false);
    write_set(from_env.path(), 4, 1, true);
    std::env::set_var("FASHION_MNIST_DIR", from_env.path());

    let found = locate(Dataset::FashionMnist, Some(explicit.path())).unwrap();
    assert_eq!(found.dir, explicit.path());
    assert_eq!(
        found.path(FileKind::TestImages),
        explicit.path().join("t10k-images-idx3-ubyte")
    );
    let found = locate(Dataset::FashionMnist, None).unwrap();
    assert_eq!(found.dir, from_env.path());
    assert_eq!(
        found.path(FileKind::TrainLabels),
        from_env.path().join("train-labels-idx1-ubyte.gz")
    );
    // An explicit directory without the files is refused, not replaced by
    // the one in the environment.
    let err = locate(Dataset::FashionMnist, Some(empty.path())).unwrap_err();
    match &err {
        MnistError::NotFound { searched, .. } => {
            let dirs: Vec<&Path> = searched.iter().map(|s| s.dir.as_path()).collect();
            assert_eq!(dirs, [empty.path()]);
            assert_eq!(searched[0].origin, "explicit path");
            assert_eq!(searched[0].missing.len(), 4);
        }
        other => panic!("expected NotFound, got {other}"),
    }

    // Nothing anywhere: every directory and every name is listed.
    std::env::set_var("FASHION_MNIST_DIR", empty.path());
    let err = locate(Dataset::FashionMnist, None).unwrap_err();
    match &err {
        MnistError::NotFound { dataset, searched } => {
            assert_eq!(*dataset, "Fashion-MNIST");
            let dirs: Vec<&Path> = searched.iter().map(|s| s.dir.as_path()).collect();
            assert_eq!(dirs, [empty.path(), Path::new("data/fashion-mnist")]);
            assert_eq!(searched[0].missing.len(), 4);
        }
        other => panic!("expected NotFound, got {other}"),
    }
    let message = err.to_string();
    for needle in [
        "$FASHION_MNIST_DIR",
        "train-images-idx3-ubyte.gz",
        "t10k-labels.idx1-ubyte",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
    std::env::remove_var("FASHION_MNIST_DIR");
}

#[test]
fn validation_splits() {
    let dir = tempfile::tempdir().unwrap();
    let set = MnistSet::from_files(
        write(dir.path(), "i", &images(20)),
        write(dir.path(), "l", &labels(20)),
    )
    .unwrap();

    let (train, val) = set.clone().split_validation(6);
    assert_eq!((train.len(), val.len()), (14, 6));
    assert_eq!(val.image(0), set.image(14));
    assert_eq!(val.label(5), set.label(19));
    assert_eq!(train.image(13), set.image(13));

    let (train, val) = set.split_validation_shuffled(5, 11);
    assert_eq!((train.len(), val.len()), (15, 5));
    assert_eq!(
        set.split_validation_shuffled(5, 11),
        (train.clone(), val.clone())
    );
    assert_ne!(set.split_validation_shuffled(5, 12).1, val, "seed matters");
    // Disjoint and complete: image i starts with pixel value i.
    let mut firsts: Vec<u8> = train.pixels().chunks(PIXELS).map(|im| im[0]).collect();
    firsts.extend(val.pixels().chunks(PIXELS).map(|im| im[0]));
    firsts.sort_unstable();
    assert_eq!(firsts, (0..20).collect::<Vec<u8>>());
}
