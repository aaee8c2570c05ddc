//! File hashing throughput, as ratios against baselines measured in the same run:
//! - one read pass feeding MD5, SHA-1 and SHA-256 vs. three separate passes (one per digest);
//! - a cache hit (fstat + lookup) vs. hashing the file.
//!
//! Run: `cargo bench -p agent-host --bench hashing` (file size in MiB as first argument,
//! default 64). The file is in the page cache after the first pass, so this measures CPU cost,
//! the best case for the three-pass baseline.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_host::{hash_reader, FileHasher, HashOutcome, HashPolicy};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

fn one_digest<D: Digest>(path: &Path) -> usize {
    let mut d = D::new();
    let mut f = File::open(path).expect("open");
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        d.update(&buf[..n]);
    }
    d.finalize().len()
}

/// Best of `runs` timings of `f`.
fn best<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let mib: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("data");
    let data: Vec<u8> = (0..mib * 1024 * 1024)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    std::fs::write(&path, &data).expect("write");
    let bytes = data.len() as f64;
    let mbps = |d: Duration| bytes / d.as_secs_f64() / 1e6;

    let one_pass = best(5, || {
        let f = File::open(&path).expect("open");
        let (h, n) = hash_reader(f).expect("hash");
        assert_eq!(n as usize, data.len());
        std::hint::black_box(h);
    });
    let three_pass = best(5, || {
        std::hint::black_box(one_digest::<Md5>(&path));
        std::hint::black_box(one_digest::<Sha1>(&path));
        std::hint::black_box(one_digest::<Sha256>(&path));
    });
    println!(
        "file {mib} MiB: one pass (md5+sha1+sha256) {:.0} MB/s, three passes {:.0} MB/s, \
         ratio three/one time = {:.2}",
        mbps(one_pass),
        mbps(three_pass),
        three_pass.as_secs_f64() / one_pass.as_secs_f64()
    );

    let mut hasher = FileHasher::new(HashPolicy::new(Vec::<PathBuf>::new(), u64::MAX), 16);
    let miss = best(3, || {
        let mut fresh = FileHasher::new(HashPolicy::new(Vec::<PathBuf>::new(), u64::MAX), 16);
        assert!(matches!(
            fresh.hash_path(&path),
            HashOutcome::Hashed { cached: false, .. }
        ));
    });
    assert!(matches!(
        hasher.hash_path(&path),
        HashOutcome::Hashed { .. }
    ));
    let iters = 10_000u32;
    let hits = best(3, || {
        for _ in 0..iters {
            let out = hasher.hash_path(&path);
            assert!(matches!(out, HashOutcome::Hashed { cached: true, .. }));
        }
    }) / iters;
    println!(
        "hash_path: miss {:.2} ms, cache hit {:.2} us, ratio miss/hit = {:.0}",
        miss.as_secs_f64() * 1e3,
        hits.as_secs_f64() * 1e6,
        miss.as_secs_f64() / hits.as_secs_f64()
    );
}
