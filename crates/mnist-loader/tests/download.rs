//! Downloads against a real HTTP server on 127.0.0.1, started here: a good file,
//! a corrupted one, a 404 and a connection cut mid-body. Nothing touches the internet.
#![cfg(feature = "download")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ember_mnist::download::{verify_file, Checksum, Downloader, RemoteFile};
use ember_mnist::idx::{write_idx, IdxData};
use ember_mnist::{Dataset, FileKind, MnistError, PIXELS};
use md5::Md5;
use sha2::{Digest, Sha256};

/// What the server answers for a path.
#[derive(Clone)]
enum Reply {
    /// 200 with this body.
    Ok(Vec<u8>),
    /// 200 announcing the full length, but the connection closes after half the body.
    Cut(Vec<u8>),
}

/// A one-thread HTTP/1.1 server on an ephemeral loopback port; unknown paths get 404.
/// It serves at most `MAX_CONNECTIONS` and stops when dropped.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

const MAX_CONNECTIONS: usize = 64;

impl Server {
    fn start(routes: HashMap<String, Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming().take(MAX_CONNECTIONS) {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = serve_one(stream, &routes, &requests2);
                }
            }
        });
        Server {
            addr,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    fn url(&self, prefix: &str) -> String {
        format!("http://{}/{prefix}/", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(
    stream: TcpStream,
    routes: &HashMap<String, Reply>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    log.lock().unwrap().push(path.clone());
    let mut out = stream;
    match routes.get(&path) {
        Some(Reply::Ok(body)) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(body)?;
        }
        Some(Reply::Cut(body)) => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(&body[..body.len() / 2])?;
        }
        None => {
            let body = b"not here";
            write!(
                out,
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            out.write_all(body)?;
        }
    }
    out.flush()?;
    out.shutdown(std::net::Shutdown::Both)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tiny synthetic label file, and the same file with one label changed.
fn payloads() -> (Vec<u8>, Vec<u8>) {
    let good = write_idx(
        &[50],
        &IdxData::U8((0..50).map(|i| (i % 10) as u8).collect()),
    );
    let mut bad = good.clone();
    bad[20] = 9;
    (good, bad)
}

const NAME: &str = "labels-idx1-ubyte.gz";

fn downloader(server: &Server, prefixes: &[&str], checksum: Checksum) -> Downloader {
    Downloader::new(Dataset::Mnist)
        .mirrors(prefixes.iter().map(|p| server.url(p)).collect())
        .files(vec![RemoteFile {
            name: NAME.to_string(),
            checksum,
        }])
        .progress(false)
        .timeout(Duration::from_secs(10))
}

fn routes(good_gz: &[u8], bad_gz: &[u8]) -> HashMap<String, Reply> {
    HashMap::from([
        (format!("/good/{NAME}"), Reply::Ok(good_gz.to_vec())),
        (format!("/corrupt/{NAME}"), Reply::Ok(bad_gz.to_vec())),
        (format!("/cut/{NAME}"), Reply::Cut(good_gz.to_vec())),
    ])
}

fn no_part_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().contains(".part"))
}

#[test]
fn falls_through_corrupt_404_and_cut_mirrors_to_a_good_one() {
    let (good, bad) = payloads();
    let (good_gz, bad_gz) = (gzip(&good), gzip(&bad));
    let server = Server::start(routes(&good_gz, &bad_gz));
    let dir = tempfile::tempdir().unwrap();
    let sha = Checksum::Sha256Decompressed(hex(&Sha256::digest(&good)));

    let d = downloader(&server, &["corrupt", "missing", "cut", "good"], sha.clone());
    let path = d.fetch(&d_file(&sha), dir.path()).unwrap();
    assert_eq!(path, dir.path().join(NAME));
    assert_eq!(std::fs::read(&path).unwrap(), good_gz);
    assert!(no_part_files(dir.path()), "temporary file left behind");
    assert_eq!(
        server.requests(),
        [
            format!("/corrupt/{NAME}"),
            format!("/missing/{NAME}"),
            format!("/cut/{NAME}"),
            format!("/good/{NAME}"),
        ]
    );

    // Already there and valid: no request at all.
    d.fetch(&d_file(&sha), dir.path()).unwrap();
    assert_eq!(server.requests().len(), 4);
}

fn d_file(checksum: &Checksum) -> RemoteFile {
    RemoteFile {
        name: NAME.to_string(),
        checksum: checksum.clone(),
    }
}

#[test]
fn every_mirror_failing_names_each_url_and_reason() {
    let (good, bad) = payloads();
    let (good_gz, bad_gz) = (gzip(&good), gzip(&bad));
    let server = Server::start(routes(&good_gz, &bad_gz));
    let dir = tempfile::tempdir().unwrap();
    let sha = Checksum::Sha256Decompressed(hex(&Sha256::digest(&good)));

    // A port nothing listens on (bound, then released) for a transport error.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut mirrors: Vec<String> = ["corrupt", "missing", "cut"]
        .map(|p| server.url(p))
        .to_vec();
    mirrors.push(format!("http://{closed}/"));
    let d = downloader(&server, &[], sha.clone()).mirrors(mirrors);
    let err = d.fetch(&d_file(&sha), dir.path()).unwrap_err();
    let MnistError::DownloadFailed { file, attempts } = &err else {
        panic!("expected DownloadFailed, got {err}");
    };
    assert_eq!(file, NAME);
    assert_eq!(attempts.len(), 4);
    assert_eq!(attempts[0].url, format!("{}{NAME}", server.url("corrupt")));
    assert!(
        attempts[0].reason.contains("checksum mismatch"),
        "{}",
        attempts[0].reason
    );
    assert!(
        attempts[1].reason.contains("HTTP 404"),
        "{}",
        attempts[1].reason
    );
    assert!(
        attempts[2].reason.contains("mid-body") || attempts[2].reason.contains("body ended"),
        "{}",
        attempts[2].reason
    );
    assert!(
        attempts[3].reason.starts_with("transport error"),
        "{}",
        attempts[3].reason
    );
    // Nothing half-written is left where the loader would find it.
    assert!(!dir.path().join(NAME).exists());
    assert!(no_part_files(dir.path()));
    let message = err.to_string();
    assert!(
        message.contains("HTTP 404") && message.contains("/cut/"),
        "{message}"
    );
}

#[test]
fn md5_of_the_compressed_file_and_replacing_a_bad_local_copy() {
    // Fashion-MNIST style: MD5 of the exact .gz served.
    let (good, bad) = payloads();
    let (good_gz, bad_gz) = (gzip(&good), gzip(&bad));
    let server = Server::start(routes(&good_gz, &bad_gz));
    let dir = tempfile::tempdir().unwrap();
    let md5 = Checksum::Md5(hex(&Md5::digest(&good_gz)));

    // A stale, wrong local copy is re-downloaded, not trusted.
    std::fs::write(dir.path().join(NAME), &bad_gz).unwrap();
    let d = downloader(&server, &["corrupt", "good"], md5.clone());
    let path = d.fetch(&d_file(&md5), dir.path()).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), good_gz);
    assert_eq!(server.requests().len(), 2);
    verify_file(&path, &md5).unwrap();
    let err = verify_file(&path, &Checksum::Md5(hex(&Md5::digest(&bad_gz)))).unwrap_err();
    assert!(
        matches!(
            err,
            MnistError::ChecksumMismatch {
                algorithm: "MD5",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn fetch_into_gets_a_whole_set_that_then_loads() {
    let n = 6;
    let images = write_idx(&[n, 28, 28], &IdxData::U8(vec![128; n as usize * PIXELS]));
    let labels = write_idx(&[n], &IdxData::U8(vec![3; n as usize]));
    let mut routes = HashMap::new();
    let mut files = Vec::new();
    for kind in FileKind::ALL {
        let raw = if kind == FileKind::TrainImages || kind == FileKind::TestImages {
            &images
        } else {
            &labels
        };
        let name = format!("{}.gz", kind.canonical_name());
        routes.insert(format!("/base/{name}"), Reply::Ok(gzip(raw)));
        files.push(RemoteFile {
            name,
            checksum: Checksum::Sha256Decompressed(hex(&Sha256::digest(raw))),
        });
    }
    let server = Server::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("nested/fashion");
    let located = Downloader::new(Dataset::FashionMnist)
        .base_url(format!("http://{}/base", server.addr)) // no trailing slash: added
        .files(files)
        .progress(false)
        .fetch_into(&target)
        .unwrap();
    assert_eq!(located.dir, target);
    let set = ember_mnist::Mnist::from_located(&located).unwrap();
    assert_eq!((set.train.len(), set.test.len()), (6, 6));
    assert_eq!(set.train.label_counts()[3], 6);
}

#[test]
fn load_or_fetch_downloads_only_when_missing_and_explains_total_failure() {
    // The search falls through to the environment variable, so use the data set
    // whose variable CI does not set (MNIST_DIR would find the real files).
    if std::env::var_os(Dataset::FashionMnist.env_var()).is_some() {
        eprintln!("note: FASHION_MNIST_DIR is set; skipping");
        return;
    }
    let images = write_idx(&[2, 28, 28], &IdxData::U8(vec![7; 2 * PIXELS]));
    let labels = write_idx(&[2], &IdxData::U8(vec![1, 8]));
    let mut routes = HashMap::new();
    let mut files = Vec::new();
    for kind in FileKind::ALL {
        let raw = match kind {
            FileKind::TrainImages | FileKind::TestImages => &images,
            _ => &labels,
        };
        let name = format!("{}.gz", kind.canonical_name());
        routes.insert(format!("/m/{name}"), Reply::Ok(gzip(raw)));
        files.push(RemoteFile {
            name,
            checksum: Checksum::Sha256Decompressed(hex(&Sha256::digest(raw))),
        });
    }
    let server = Server::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let d = Downloader::new(Dataset::FashionMnist)
        .base_url(server.url("m"))
        .files(files.clone())
        .progress(false);

    let mnist = d.load_or_fetch(Some(dir.path())).unwrap();
    assert_eq!(mnist.test.labels(), &[1, 8]);
    assert_eq!(server.requests().len(), 4);
    // Second time the files are found: no request.
    let again = d.load_or_fetch(Some(dir.path())).unwrap();
    assert_eq!(again, mnist);
    assert_eq!(server.requests().len(), 4);

    // Nowhere to be found and every mirror fails: both stories in one error.
    let empty = tempfile::tempdir().unwrap();
    let err = d
        .clone()
        .base_url(server.url("nothing-here"))
        .load_or_fetch(Some(empty.path()))
        .unwrap_err();
    assert!(matches!(err, MnistError::Unavailable { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("Fashion-MNIST not found"), "{message}");
    assert!(message.contains("HTTP 404"), "{message}");
    assert!(
        message.contains(&empty.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn published_checksums_are_well_formed() {
    for dataset in [Dataset::Mnist, Dataset::FashionMnist] {
        let files = ember_mnist::download::remote_files(dataset);
        let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
        let expected: Vec<String> = FileKind::ALL
            .iter()
            .map(|k| format!("{}.gz", k.canonical_name()))
            .collect();
        assert_eq!(names, expected);
        for f in files {
            let (hex, len) = match &f.checksum {
                Checksum::Sha256Decompressed(h) => (h, 64),
                Checksum::Md5(h) => (h, 32),
            };
            assert_eq!(hex.len(), len, "{}", f.name);
            assert!(hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        }
    }
}
