//! The MNIST family: finding the four files, loading them and checking them against each other.

use std::env;
use std::path::{Path, PathBuf};

use crate::error::{MnistError, Result, SearchedDir};
use crate::idx::{read_idx_file, IdxData};

/// Image height and width of every set in the MNIST family.
pub const SIDE: usize = 28;
/// Pixels per image (28 × 28).
pub const PIXELS: usize = SIDE * SIDE;
/// Number of classes (digits 0–9, or the ten Fashion-MNIST garment kinds).
pub const CLASSES: usize = 10;

/// Which member of the MNIST family.
///
/// Both use the same four file names; they differ in where they are looked
/// for, where they are downloaded from and the checksums they must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// LeCun, Cortes and Burges's handwritten digits.
    Mnist,
    /// Zalando's Fashion-MNIST: ten kinds of clothing, same format.
    FashionMnist,
}

impl Dataset {
    /// Its name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Mnist => "MNIST",
            Dataset::FashionMnist => "Fashion-MNIST",
        }
    }

    /// The environment variable naming its directory: `MNIST_DIR` or `FASHION_MNIST_DIR`.
    pub fn env_var(self) -> &'static str {
        match self {
            Dataset::Mnist => "MNIST_DIR",
            Dataset::FashionMnist => "FASHION_MNIST_DIR",
        }
    }

    /// Its default directory, relative to the working directory: `data/mnist` or `data/fashion-mnist`.
    pub fn default_dir(self) -> &'static Path {
        match self {
            Dataset::Mnist => Path::new("data/mnist"),
            Dataset::FashionMnist => Path::new("data/fashion-mnist"),
        }
    }

    /// The class names, index = label.
    pub fn class_names(self) -> [&'static str; CLASSES] {
        match self {
            Dataset::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            Dataset::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }
}

/// One of the four files of a set, by its canonical (uncompressed) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `train-images-idx3-ubyte`
    TrainImages,
    /// `train-labels-idx1-ubyte`
    TrainLabels,
    /// `t10k-images-idx3-ubyte`
    TestImages,
    /// `t10k-labels-idx1-ubyte`
    TestLabels,
}

impl FileKind {
    /// All four, in the order train images, train labels, test images, test labels.
    pub const ALL: [FileKind; 4] = [
        FileKind::TrainImages,
        FileKind::TrainLabels,
        FileKind::TestImages,
        FileKind::TestLabels,
    ];

    /// The canonical file name, e.g. `train-images-idx3-ubyte`.
    pub fn canonical_name(self) -> &'static str {
        match self {
            FileKind::TrainImages => "train-images-idx3-ubyte",
            FileKind::TrainLabels => "train-labels-idx1-ubyte",
            FileKind::TestImages => "t10k-images-idx3-ubyte",
            FileKind::TestLabels => "t10k-labels-idx1-ubyte",
        }
    }

    /// Every name the file is accepted under, in the order they are tried:
    /// canonical, canonical `.gz`, dotted (`train-images.idx3-ubyte`), dotted `.gz`.
    pub fn accepted_names(self) -> [String; 4] {
        let canonical = self.canonical_name();
        // The dotted variant (common on Kaggle) replaces the dash before "idx".
        let dotted = canonical.replacen("-idx", ".idx", 1);
        [
            canonical.to_string(),
            format!("{canonical}.gz"),
            dotted.clone(),
            format!("{dotted}.gz"),
        ]
    }
}

/// Where a data set was found: the directory and the path of each of the four files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The directory searched successfully.
    pub dir: PathBuf,
    /// Paths in [`FileKind::ALL`] order.
    pub files: [PathBuf; 4],
}

impl Located {
    /// The path of one file.
    pub fn path(&self, kind: FileKind) -> &Path {
        let i = FileKind::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        &self.files[i]
    }
}

/// Finds the four files of `dataset`.
///
/// An `explicit` directory is the only one looked in: the files are found
/// there or not at all, never silently taken from somewhere else. Without
/// one, the search goes through the directory in the dataset's environment
/// variable ([`Dataset::env_var`]), then [`Dataset::default_dir`] under the
/// working directory. The first directory holding all four files (each
/// under any of its [`FileKind::accepted_names`]) wins; when none does, the
/// error lists every directory and the names missing from it.
pub fn locate(dataset: Dataset, explicit: Option<&Path>) -> Result<Located> {
    let mut candidates: Vec<(PathBuf, String)> = Vec::new();
    if let Some(dir) = explicit {
        candidates.push((dir.to_path_buf(), "explicit path".to_string()));
    } else {
        if let Some(dir) = env::var_os(dataset.env_var()).filter(|v| !v.is_empty()) {
            candidates.push((PathBuf::from(dir), format!("${}", dataset.env_var())));
        }
        candidates.push((
            dataset.default_dir().to_path_buf(),
            "default, under the working directory".to_string(),
        ));
    }

    let mut searched = Vec::new();
    for (dir, origin) in candidates {
        match locate_in(&dir) {
            Ok(files) => return Ok(Located { dir, files }),
            Err(missing) => searched.push(SearchedDir {
                dir,
                origin,
                missing,
            }),
        }
    }
    Err(MnistError::NotFound {
        dataset: dataset.name(),
        searched,
    })
}

/// The four files in `dir`, or for each missing one the names tried.
fn locate_in(dir: &Path) -> std::result::Result<[PathBuf; 4], Vec<Vec<String>>> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for kind in FileKind::ALL {
        let names = kind.accepted_names();
        match names.iter().map(|n| dir.join(n)).find(|p| p.is_file()) {
            Some(path) => found.push(path),
            None => missing.push(names.to_vec()),
        }
    }
    match <[PathBuf; 4]>::try_from(found) {
        Ok(files) if missing.is_empty() => Ok(files),
        _ => Err(missing),
    }
}

/// One split (training or test) of an MNIST-family set: images as bytes, labels alongside.
///
/// Images stay `u8` in memory (47 MB for MNIST's 60,000 training images);
/// [`crate::batches`] converts one batch at a time to `f32`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistSet {
    /// `len × rows × cols` pixels, image-major, row-major within an image.
    pixels: Vec<u8>,
    /// One label per image, each in `0..CLASSES`.
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
}

impl MnistSet {
    /// Builds a set from raw parts, checking that they agree.
    ///
    /// # Panics
    /// If `pixels.len() != labels.len() * rows * cols`, or a label is `>= CLASSES`.
    #[track_caller]
    pub fn from_parts(pixels: Vec<u8>, labels: Vec<u8>, rows: usize, cols: usize) -> MnistSet {
        assert_eq!(
            pixels.len(),
            labels.len() * rows * cols,
            "MnistSet::from_parts: {} pixels do not make {} images of {rows}x{cols}",
            pixels.len(),
            labels.len()
        );
        if let Some(i) = labels.iter().position(|&l| l as usize >= CLASSES) {
            panic!(
                "MnistSet::from_parts: label {} at index {i} is not below {CLASSES}",
                labels[i]
            );
        }
        MnistSet {
            pixels,
            labels,
            rows,
            cols,
        }
    }

    /// Loads and cross-checks an image file and a label file (each raw or gzip).
    ///
    /// Images must be `u8` with dimensions `[n, 28, 28]`, labels `u8` with
    /// dimensions `[n]` and values in `0..=9`, and both `n` must agree.
    pub fn from_files(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<MnistSet> {
        let (images, labels) = (images.as_ref(), labels.as_ref());
        let pixels = load_images(images)?;
        let label_bytes = load_labels(labels)?;
        let count = pixels.len() / PIXELS;
        if count != label_bytes.len() {
            return Err(MnistError::CountMismatch {
                images_path: images.to_path_buf(),
                images: count,
                labels_path: labels.to_path_buf(),
                labels: label_bytes.len(),
            });
        }
        Ok(MnistSet {
            pixels,
            labels: label_bytes,
            rows: SIDE,
            cols: SIDE,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image height (28).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Image width (28).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Pixels per image (`rows × cols`).
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// All pixels, image after image.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The pixels of image `i`, row-major.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    #[track_caller]
    pub fn image(&self, i: usize) -> &[u8] {
        assert!(
            i < self.len(),
            "MnistSet::image: index {i} out of range for {} images",
            self.len()
        );
        let n = self.pixels_per_image();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The label of example `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    #[track_caller]
    pub fn label(&self, i: usize) -> usize {
        assert!(
            i < self.len(),
            "MnistSet::label: index {i} out of range for {} labels",
            self.len()
        );
        self.labels[i] as usize
    }

    /// How many examples carry each label.
    pub fn label_counts(&self) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// A new set holding the examples at `indices`, in that order (copies them).
    ///
    /// # Panics
    /// If an index is out of range.
    #[track_caller]
    pub fn select(&self, indices: &[usize]) -> MnistSet {
        let n = self.pixels_per_image();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        MnistSet {
            pixels,
            labels,
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Splits off the last `count` examples as a validation set, without copying the rest.
    ///
    /// This is the classic MNIST practice (train on the first 50,000, validate on
    /// the last 10,000) and Keras's `validation_split` convention; the training
    /// files are not sorted by class, so the tail is a fair sample. For a random
    /// split use [`MnistSet::split_validation_shuffled`].
    ///
    /// # Panics
    /// If `count > self.len()`.
    #[track_caller]
    pub fn split_validation(mut self, count: usize) -> (MnistSet, MnistSet) {
        assert!(
            count <= self.len(),
            "MnistSet::split_validation: cannot hold out {count} of {} examples",
            self.len()
        );
        let keep = self.len() - count;
        let n = self.pixels_per_image();
        let val = MnistSet {
            pixels: self.pixels.split_off(keep * n),
            labels: self.labels.split_off(keep),
            rows: self.rows,
            cols: self.cols,
        };
        // split_off leaves the full capacity behind; give the tail's memory back.
        self.pixels.shrink_to_fit();
        self.labels.shrink_to_fit();
        (self, val)
    }

    /// Splits into (train, validation) with `count` validation examples drawn at random.
    ///
    /// The draw is a pure function of `seed` (see [`crate::batches::permutation`]);
    /// both parts keep the original order of their examples.
    ///
    /// # Panics
    /// If `count > self.len()`.
    #[track_caller]
    pub fn split_validation_shuffled(&self, count: usize, seed: u64) -> (MnistSet, MnistSet) {
        assert!(
            count <= self.len(),
            "MnistSet::split_validation_shuffled: cannot hold out {count} of {} examples",
            self.len()
        );
        let perm = crate::batches::permutation(self.len(), seed, u64::MAX);
        let mut val_idx = perm[..count].to_vec();
        let mut train_idx = perm[count..].to_vec();
        val_idx.sort_unstable();
        train_idx.sort_unstable();
        (self.select(&train_idx), self.select(&val_idx))
    }
}

/// The training and test splits of one data set.
///
/// ```no_run
/// use ember_mnist::{Dataset, Mnist};
///
/// // Looks in $MNIST_DIR, then data/mnist.
/// let mnist = Mnist::load(Dataset::Mnist, None)?;
/// assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
/// # Ok::<(), ember_mnist::MnistError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    /// The training split (60,000 examples for MNIST and Fashion-MNIST).
    pub train: MnistSet,
    /// The test split (10,000 examples).
    pub test: MnistSet,
}

impl Mnist {
    /// Finds (see [`locate`]) and loads both splits of `dataset`.
    pub fn load(dataset: Dataset, explicit_dir: Option<&Path>) -> Result<Mnist> {
        Mnist::from_located(&locate(dataset, explicit_dir)?)
    }

    /// Loads both splits from files already found.
    pub fn from_located(located: &Located) -> Result<Mnist> {
        // Sequential on purpose: the test split is a sixth of the work, so a
        // second thread would save little and make parallelism implicit.
        let train = MnistSet::from_files(
            located.path(FileKind::TrainImages),
            located.path(FileKind::TrainLabels),
        )?;
        let test = MnistSet::from_files(
            located.path(FileKind::TestImages),
            located.path(FileKind::TestLabels),
        )?;
        Ok(Mnist { train, test })
    }
}

/// Reads an image file: `u8`, dimensions `[n, 28, 28]`; returns the pixels.
pub fn load_images(path: &Path) -> Result<Vec<u8>> {
    let idx = read_idx_file(path)?;
    let dims = idx.header.dims.clone();
    if dims.len() != 3 || dims[1] as usize != SIDE || dims[2] as usize != SIDE {
        return Err(MnistError::DimensionMismatch {
            path: path.to_path_buf(),
            expected: format!("[n, {SIDE}, {SIDE}] images"),
            found: dims,
        });
    }
    into_bytes(idx.data, path)
}

/// Reads a label file: `u8`, dimensions `[n]`, every value in `0..=9`; returns the labels.
pub fn load_labels(path: &Path) -> Result<Vec<u8>> {
    let idx = read_idx_file(path)?;
    if idx.header.dims.len() != 1 {
        return Err(MnistError::DimensionMismatch {
            path: path.to_path_buf(),
            expected: "[n] labels".to_string(),
            found: idx.header.dims,
        });
    }
    let labels = into_bytes(idx.data, path)?;
    if let Some(index) = labels.iter().position(|&l| l as usize >= CLASSES) {
        return Err(MnistError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            value: labels[index],
            max: (CLASSES - 1) as u8,
        });
    }
    Ok(labels)
}

fn into_bytes(data: IdxData, path: &Path) -> Result<Vec<u8>> {
    match data {
        IdxData::U8(bytes) => Ok(bytes),
        other => Err(MnistError::WrongType {
            path: path.to_path_buf(),
            expected: "u8",
            found: other.element_type().name(),
        }),
    }
}
