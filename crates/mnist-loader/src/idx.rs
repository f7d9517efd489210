//! The IDX format: a validating parser over any [`Read`], gzip recognised by magic bytes.
//!
//! An IDX file is a 4-byte magic `0x00 0x00 <type> <ndims>`, then `ndims`
//! big-endian `u32` dimensions, then exactly `product(dims) * size_of(type)`
//! bytes of big-endian elements in row-major order. Anything else is an error.
//!
//! The parser never trusts the header with memory: the payload buffer grows as
//! bytes actually arrive, so a forged header claiming 2³² images in a 16-byte
//! file costs 16 bytes, not 4 GiB.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ByteOrder};
use flate2::read::MultiGzDecoder;

use crate::error::{MnistError, Result};

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// First allocation for a payload; the buffer then doubles as bytes arrive.
const INITIAL_CAPACITY: usize = 64 * 1024;

/// The element type named by the third byte of the magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// `0x08`: unsigned byte (MNIST pixels and labels).
    U8,
    /// `0x09`: signed byte.
    I8,
    /// `0x0B`: big-endian `i16`.
    I16,
    /// `0x0C`: big-endian `i32`.
    I32,
    /// `0x0D`: big-endian IEEE `f32`.
    F32,
    /// `0x0E`: big-endian IEEE `f64`.
    F64,
}

impl ElementType {
    /// The type for an IDX type code, if it is one of the six.
    pub fn from_code(code: u8) -> Option<ElementType> {
        Some(match code {
            0x08 => ElementType::U8,
            0x09 => ElementType::I8,
            0x0b => ElementType::I16,
            0x0c => ElementType::I32,
            0x0d => ElementType::F32,
            0x0e => ElementType::F64,
            _ => return None,
        })
    }

    /// The IDX type code (third byte of the magic).
    pub fn code(self) -> u8 {
        match self {
            ElementType::U8 => 0x08,
            ElementType::I8 => 0x09,
            ElementType::I16 => 0x0b,
            ElementType::I32 => 0x0c,
            ElementType::F32 => 0x0d,
            ElementType::F64 => 0x0e,
        }
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            ElementType::U8 | ElementType::I8 => 1,
            ElementType::I16 => 2,
            ElementType::I32 | ElementType::F32 => 4,
            ElementType::F64 => 8,
        }
    }

    /// The Rust name of the type, for messages.
    pub fn name(self) -> &'static str {
        match self {
            ElementType::U8 => "u8",
            ElementType::I8 => "i8",
            ElementType::I16 => "i16",
            ElementType::I32 => "i32",
            ElementType::F32 => "f32",
            ElementType::F64 => "f64",
        }
    }
}

/// A parsed IDX header: element type and dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxHeader {
    /// The element type.
    pub element_type: ElementType,
    /// The dimensions, outermost first (MNIST images: `[n, 28, 28]`).
    pub dims: Vec<u32>,
}

impl IdxHeader {
    /// Number of elements, or `None` if the product overflows `usize`.
    pub fn element_count(&self) -> Option<usize> {
        self.dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
    }

    /// Payload size in bytes, or `None` if it overflows `usize`.
    pub fn payload_bytes(&self) -> Option<usize> {
        self.element_count()?.checked_mul(self.element_type.size())
    }
}

/// The elements of an IDX file, in the type its header declares.
#[derive(Debug, Clone, PartialEq)]
pub enum IdxData {
    /// `u8` elements (kept as the raw bytes, no copy).
    U8(Vec<u8>),
    /// `i8` elements.
    I8(Vec<i8>),
    /// `i16` elements.
    I16(Vec<i16>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `f32` elements.
    F32(Vec<f32>),
    /// `f64` elements.
    F64(Vec<f64>),
}

impl IdxData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements (a dimension is zero).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A whole IDX file: header and elements, validated against each other.
///
/// ```
/// use ember_mnist::idx::{read_idx, ElementType, IdxData};
///
/// // magic (u8, 2 dims), dims 2×3, then 6 bytes.
/// let bytes = [0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6];
/// let idx = read_idx(&bytes[..], "inline.idx").unwrap();
/// assert_eq!(idx.header.element_type, ElementType::U8);
/// assert_eq!(idx.header.dims, vec![2, 3]);
/// assert_eq!(idx.data, IdxData::U8(vec![1, 2, 3, 4, 5, 6]));
///
/// // One byte short is an error that says so.
/// let err = read_idx(&bytes[..17], "short.idx").unwrap_err();
/// assert!(err.to_string().contains("short.idx: truncated payload: expected 6 bytes, got 5"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// The header.
    pub header: IdxHeader,
    /// Exactly `header.element_count()` elements.
    pub data: IdxData,
}

/// Opens a file for reading, decompressing it if it starts with the gzip magic.
///
/// The file name plays no part: a `.gz` that is really raw IDX is read raw, and
/// a raw-named file that is really gzip is decompressed.
pub fn open_maybe_gzip(path: &Path) -> Result<Box<dyn Read>> {
    let file = File::open(path).map_err(|source| MnistError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    maybe_gunzip(BufReader::with_capacity(256 * 1024, file)).map_err(|source| MnistError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Wraps `reader` in a gzip decoder if its first two bytes are the gzip magic.
///
/// Concatenated gzip members (as `cat a.gz b.gz` makes) are read as one stream.
pub fn maybe_gunzip<'r, R: Read + 'r>(mut reader: R) -> io::Result<Box<dyn Read + 'r>> {
    let mut head = [0u8; 2];
    let n = read_up_to(&mut reader, &mut head)?;
    // Put the sniffed bytes back in front of the rest of the stream.
    let whole = io::Cursor::new(head).take(n as u64).chain(reader);
    if n == 2 && head == GZIP_MAGIC {
        Ok(Box::new(MultiGzDecoder::new(whole)))
    } else {
        Ok(Box::new(whole))
    }
}

/// Reads and validates a whole IDX file (raw or gzip) from disk.
pub fn read_idx_file(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let reader = open_maybe_gzip(path)?;
    read_idx(reader, path)
}

/// Parses one IDX stream (already decompressed) and checks it is exactly as long as its header says.
///
/// `name` is only used in error messages. See [`IdxArray`] for an example.
pub fn read_idx(reader: impl Read, name: impl AsRef<Path>) -> Result<IdxArray> {
    let path = name.as_ref();
    let mut reader = reader;
    let header = read_idx_header(&mut reader, path)?;
    let bytes = read_payload(&mut reader, &header, path)?;
    Ok(IdxArray {
        data: decode(header.element_type, bytes),
        header,
    })
}

/// Reads the magic and the dimensions, leaving `reader` at the first payload byte.
pub fn read_idx_header(reader: &mut impl Read, path: &Path) -> Result<IdxHeader> {
    let mut magic = [0u8; 4];
    read_header_part(reader, &mut magic, 0, path)?;
    if magic[0] != 0 || magic[1] != 0 || magic[3] == 0 {
        return Err(MnistError::BadMagic {
            path: path.to_path_buf(),
            found: magic,
        });
    }
    let element_type =
        ElementType::from_code(magic[2]).ok_or_else(|| MnistError::UnsupportedType {
            path: path.to_path_buf(),
            code: magic[2],
        })?;
    let ndims = magic[3] as usize;
    // At most 255 × 4 bytes: bounded by the format, safe to allocate.
    let mut raw = vec![0u8; 4 * ndims];
    read_header_part(reader, &mut raw, 4, path)?;
    let dims = raw.chunks_exact(4).map(BigEndian::read_u32).collect();
    Ok(IdxHeader { element_type, dims })
}

/// Fills `buf`, or reports a truncated header counting the `before` bytes already read.
fn read_header_part(
    reader: &mut impl Read,
    buf: &mut [u8],
    before: usize,
    path: &Path,
) -> Result<()> {
    let n = read_up_to(reader, buf).map_err(|e| io_error(path, e))?;
    if n < buf.len() {
        return Err(MnistError::Truncated {
            path: path.to_path_buf(),
            part: "header",
            expected: (before + buf.len()) as u64,
            got: (before + n) as u64,
        });
    }
    Ok(())
}

/// Reads exactly the payload the header describes, then checks the stream ends there.
fn read_payload(reader: &mut impl Read, header: &IdxHeader, path: &Path) -> Result<Vec<u8>> {
    let expected = header
        .payload_bytes()
        .filter(|&n| u64::try_from(n).is_ok() && n <= isize::MAX as usize)
        .ok_or_else(|| MnistError::SizeOverflow {
            path: path.to_path_buf(),
            dims: header.dims.clone(),
            element_size: header.element_type.size(),
        })?;
    let bytes = read_growing(reader, expected).map_err(|e| io_error(path, e))?;
    if bytes.len() < expected {
        return Err(MnistError::Truncated {
            path: path.to_path_buf(),
            part: "payload",
            expected: expected as u64,
            got: bytes.len() as u64,
        });
    }
    // Count what follows without storing it (io::sink never allocates).
    let extra = io::copy(reader, &mut io::sink()).map_err(|e| io_error(path, e))?;
    if extra > 0 {
        return Err(MnistError::TrailingBytes {
            path: path.to_path_buf(),
            expected: expected as u64,
            extra,
        });
    }
    Ok(bytes)
}

/// Reads up to `limit` bytes, growing the buffer only as data arrives.
///
/// Capacity at most doubles past what was actually read and never exceeds
/// `limit`, so a lying header cannot make us allocate more than about twice
/// the real input; for honest files the final capacity is exactly `limit`.
fn read_growing(reader: &mut impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(limit.min(INITIAL_CAPACITY));
    while buf.len() < limit {
        if buf.len() == buf.capacity() {
            let grow = buf.len().max(INITIAL_CAPACITY).min(limit - buf.len());
            buf.reserve_exact(grow);
        }
        let room = (buf.capacity() - buf.len()).min(limit - buf.len());
        // `take(room)` stops read_to_end at the spare capacity, so it never reallocates.
        let got = reader.by_ref().take(room as u64).read_to_end(&mut buf)?;
        if got < room {
            break; // end of input
        }
    }
    Ok(buf)
}

/// Like `read_exact`, but returns how many bytes were read instead of failing at end of input.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Classifies a read error: a failing decompressor is a corrupt gzip stream, the rest is I/O.
pub(crate) fn io_error(path: &Path, source: io::Error) -> MnistError {
    let path: PathBuf = path.to_path_buf();
    // flate2 reports bad deflate data, bad headers and bad CRCs as InvalidInput/InvalidData,
    // and a stream cut before its trailer as UnexpectedEof. A plain file never produces those.
    match source.kind() {
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
            MnistError::CorruptGzip { path, source }
        }
        _ => MnistError::Io { path, source },
    }
}

/// Converts big-endian payload bytes to elements (u8 keeps the buffer as is).
fn decode(element_type: ElementType, bytes: Vec<u8>) -> IdxData {
    match element_type {
        ElementType::U8 => IdxData::U8(bytes),
        ElementType::I8 => IdxData::I8(bytes.into_iter().map(|b| b as i8).collect()),
        ElementType::I16 => {
            let mut out = vec![0; bytes.len() / 2];
            BigEndian::read_i16_into(&bytes, &mut out);
            IdxData::I16(out)
        }
        ElementType::I32 => {
            let mut out = vec![0; bytes.len() / 4];
            BigEndian::read_i32_into(&bytes, &mut out);
            IdxData::I32(out)
        }
        ElementType::F32 => {
            let mut out = vec![0.0; bytes.len() / 4];
            BigEndian::read_f32_into(&bytes, &mut out);
            IdxData::F32(out)
        }
        ElementType::F64 => {
            let mut out = vec![0.0; bytes.len() / 8];
            BigEndian::read_f64_into(&bytes, &mut out);
            IdxData::F64(out)
        }
    }
}

/// Serialises an array back to IDX bytes (uncompressed); the inverse of [`read_idx`].
///
/// Useful to build fixtures and to write derived data sets.
///
/// # Panics
/// If `data` does not hold exactly the number of elements `dims` describes, or
/// if `dims` has 0 or more than 255 entries.
#[track_caller]
pub fn write_idx(dims: &[u32], data: &IdxData) -> Vec<u8> {
    let header = IdxHeader {
        element_type: data.element_type(),
        dims: dims.to_vec(),
    };
    assert!(
        (1..=255).contains(&dims.len()),
        "write_idx: IDX needs 1..=255 dimensions, got {dims:?}"
    );
    assert_eq!(
        header.element_count(),
        Some(data.len()),
        "write_idx: dims {dims:?} do not match {} elements",
        data.len()
    );
    let mut out = vec![0, 0, header.element_type.code(), dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    match data {
        IdxData::U8(v) => out.extend_from_slice(v),
        IdxData::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
        IdxData::I16(v) => out.extend(v.iter().flat_map(|x| x.to_be_bytes())),
        IdxData::I32(v) => out.extend(v.iter().flat_map(|x| x.to_be_bytes())),
        IdxData::F32(v) => out.extend(v.iter().flat_map(|x| x.to_be_bytes())),
        IdxData::F64(v) => out.extend(v.iter().flat_map(|x| x.to_be_bytes())),
    }
    out
}

impl IdxData {
    /// The element type of these elements.
    pub fn element_type(&self) -> ElementType {
        match self {
            IdxData::U8(_) => ElementType::U8,
            IdxData::I8(_) => ElementType::I8,
            IdxData::I16(_) => ElementType::I16,
            IdxData::I32(_) => ElementType::I32,
            IdxData::F32(_) => ElementType::F32,
            IdxData::F64(_) => ElementType::F64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn parse(bytes: &[u8]) -> Result<IdxArray> {
        read_idx(maybe_gunzip(bytes).unwrap(), "fixture.idx")
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn every_element_type_round_trips_big_endian() {
        let cases = [
            IdxData::U8(vec![0, 1, 255, 7, 8, 9]),
            IdxData::I8(vec![-128, -1, 0, 1, 127, 5]),
            IdxData::I16(vec![-32768, -2, 0, 258, 32767, 1]),
            IdxData::I32(vec![i32::MIN, -3, 0, 0x0102_0304, i32::MAX, 2]),
            IdxData::F32(vec![-1.5, 0.0, 3.25, f32::MAX, f32::MIN_POSITIVE, 1e-3]),
            IdxData::F64(vec![-2.5, 0.0, 1e300, f64::MIN, 0.1, 7.0]),
        ];
        for data in cases {
            let bytes = write_idx(&[3, 2], &data);
            let parsed = parse(&bytes).unwrap();
            assert_eq!(parsed.header.dims, vec![3, 2]);
            assert_eq!(parsed.data, data);
        }
        // Big-endian on disk: i16 258 is 0x01 0x02.
        let bytes = write_idx(&[1], &IdxData::I16(vec![258]));
        assert_eq!(&bytes[8..], &[0x01, 0x02]);
    }

    #[test]
    fn gzip_is_recognised_by_magic_not_name() {
        let raw = write_idx(&[4], &IdxData::U8(vec![9, 8, 7, 6]));
        let gz = gzip(&raw);
        assert_eq!(parse(&gz).unwrap(), parse(&raw).unwrap());
        // Concatenated members are one stream: header in the first, payload in the second.
        let mut two = gzip(&raw[..8]);
        two.extend(gzip(&raw[8..]));
        assert_eq!(parse(&two).unwrap().data, IdxData::U8(vec![9, 8, 7, 6]));
    }

    #[test]
    fn corrupt_gzip_stream_is_reported_as_such() {
        let raw = write_idx(
            &[1000],
            &IdxData::U8((0..1000).map(|i| (i * 7) as u8).collect()),
        );
        let mut gz = gzip(&raw);
        let mid = gz.len() / 2;
        gz[mid] ^= 0xff;
        gz[mid + 1] ^= 0x55;
        let err = parse(&gz).unwrap_err();
        assert!(matches!(err, MnistError::CorruptGzip { .. }), "{err}");
        // Cut before the trailer.
        let gz = gzip(&raw);
        let err = parse(&gz[..gz.len() - 6]).unwrap_err();
        assert!(matches!(err, MnistError::CorruptGzip { .. }), "{err}");
    }

    #[test]
    fn header_faults() {
        let err = parse(&[0, 1, 8, 1, 0, 0, 0, 0]).unwrap_err();
        assert!(
            matches!(
                err,
                MnistError::BadMagic {
                    found: [0, 1, 8, 1],
                    ..
                }
            ),
            "{err}"
        );
        let err = parse(&[0, 0, 8, 0]).unwrap_err();
        assert!(
            matches!(err, MnistError::BadMagic { .. }),
            "zero dims: {err}"
        );
        let err = parse(&[0, 0, 0x0a, 1, 0, 0, 0, 0]).unwrap_err();
        assert!(
            matches!(err, MnistError::UnsupportedType { code: 0x0a, .. }),
            "{err}"
        );
        let err = parse(&[0, 0, 8]).unwrap_err();
        assert!(
            matches!(
                err,
                MnistError::Truncated {
                    part: "header",
                    expected: 4,
                    got: 3,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse(&[0, 0, 8, 2, 0, 0, 0, 1, 0, 0]).unwrap_err();
        assert!(
            matches!(
                err,
                MnistError::Truncated {
                    part: "header",
                    expected: 12,
                    got: 10,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse(&[]).unwrap_err();
        assert!(matches!(err, MnistError::Truncated { got: 0, .. }), "{err}");
    }

    #[test]
    fn payload_must_be_exact() {
        let good = write_idx(&[2, 2], &IdxData::I16(vec![1, 2, 3, 4]));
        let err = parse(&good[..good.len() - 1]).unwrap_err();
        assert!(
            matches!(
                err,
                MnistError::Truncated {
                    part: "payload",
                    expected: 8,
                    got: 7,
                    ..
                }
            ),
            "{err}"
        );
        let mut long = good.clone();
        long.extend_from_slice(&[0, 0, 0]);
        let err = parse(&long).unwrap_err();
        assert!(
            matches!(
                err,
                MnistError::TrailingBytes {
                    expected: 8,
                    extra: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("fixture.idx: 3 trailing bytes"),
            "{err}"
        );
    }

    #[test]
    fn forged_huge_header_neither_overflows_nor_allocates() {
        // 2^32-1 × 2^32-1 × 2^32-1 f64 elements: the product overflows usize.
        let mut bytes = vec![0, 0, 0x0e, 3];
        bytes.extend_from_slice(&[0xff; 12]);
        let err = parse(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                MnistError::SizeOverflow {
                    element_size: 8,
                    ..
                }
            ),
            "{err}"
        );

        // (2^32-1) × 28 × 28 bytes ≈ 3.4 TB claimed, 10 bytes present: a quick truncation error.
        let mut bytes = vec![
            0, 0, 0x08, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 28, 0, 0, 0, 28,
        ];
        bytes.extend_from_slice(&[1; 10]);
        let err = parse(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                MnistError::Truncated {
                    got: 10,
                    expected: 3_367_254_359_280,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn growing_reader_capacity_tracks_the_input() {
        let data = vec![5u8; 300_000];
        let buf = read_growing(&mut &data[..], data.len()).unwrap();
        assert_eq!(buf, data);
        assert_eq!(buf.capacity(), data.len(), "honest input: exact capacity");
        let buf = read_growing(&mut &data[..1000], usize::MAX / 4).unwrap();
        assert_eq!(buf.len(), 1000);
        assert!(
            buf.capacity() <= INITIAL_CAPACITY,
            "lying limit: {}",
            buf.capacity()
        );
    }

    #[test]
    fn zero_sized_dimension_is_an_empty_array() {
        let bytes = [0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28];
        let idx = parse(&bytes).unwrap();
        assert!(idx.data.is_empty());
        assert_eq!(idx.header.dims, vec![0, 28, 28]);
    }
}
