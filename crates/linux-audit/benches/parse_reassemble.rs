//! Parse + reassembly throughput over the reference audit logs, repeated to ≥ 1 M records.
//!
//! `cargo bench -p agent-linux-audit [-- --records N]`. Prints records/s of:
//! - baseline: splitting each line into whitespace tokens (a floor any parser pays),
//! - parse: `parse_line` into typed fields,
//! - parse + reassembly: the collector's whole per-record cost,
//!
//! and each as a ratio of the baseline measured in the same run (absolute numbers depend
//! on the machine, ratios much less).

use std::hint::black_box;
use std::time::{Duration, Instant};

use agent_linux_audit::parse_line;
use agent_linux_audit::reassembly::Reassembler;

/// Lines of every reference log, each repetition with its serials shifted so events stay
/// distinct.
fn corpus(min_records: usize) -> Vec<String> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/go-libaudit/audit-logs"
    );
    let mut base = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reference logs at {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        base.extend(
            text.lines()
                .filter(|l| parse_line(l).is_ok())
                .map(str::to_owned),
        );
    }
    assert!(!base.is_empty());
    let mut out = Vec::with_capacity(min_records + base.len());
    let mut rep: u32 = 0;
    while out.len() < min_records {
        for l in &base {
            out.push(shift_serial(l, rep.wrapping_mul(100_003)));
        }
        rep += 1;
    }
    out
}

/// Rewrites `audit(TS:SERIAL)` with SERIAL + `by`.
fn shift_serial(line: &str, by: u32) -> String {
    let Some(start) = line.find("audit(") else {
        return line.to_owned();
    };
    let rest = &line[start..];
    let (Some(colon), Some(close)) = (rest.find(':'), rest.find(')')) else {
        return line.to_owned();
    };
    let serial: u32 = rest[colon + 1..close].parse().unwrap_or(0);
    format!(
        "{}{}{}",
        &line[..start + colon + 1],
        serial.wrapping_add(by),
        &rest[close..]
    )
}

fn best_of(runs: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut n = 0;
    for _ in 0..runs {
        let t = Instant::now();
        n = f();
        best = best.min(t.elapsed());
    }
    (best, n)
}

fn main() {
    let mut records = 1_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--records" {
            records = args.next().and_then(|s| s.parse().ok()).unwrap_or(records);
        }
    }
    let lines = corpus(records);
    let n = lines.len();
    let bytes: usize = lines.iter().map(String::len).sum();
    println!("corpus: {n} records, {} MB", bytes / 1_000_000);

    let (t_base, _) = best_of(3, || {
        lines
            .iter()
            .map(|l| black_box(l.split_ascii_whitespace().count()))
            .sum()
    });
    let (t_parse, _) = best_of(3, || {
        lines
            .iter()
            .filter_map(|l| parse_line(l).ok())
            .map(|r| black_box(r.field_count()))
            .sum()
    });
    let (t_full, events) = best_of(3, || {
        let mut r = Reassembler::default();
        let now = Instant::now();
        let mut out = Vec::new();
        let mut events = 0;
        for l in &lines {
            if let Ok(rec) = parse_line(l) {
                r.push_at(rec, now, &mut out);
                events += out.len();
                out.clear();
            }
        }
        events + r.flush().len()
    });
    let rate = |t: Duration| n as f64 / t.as_secs_f64();
    let base = rate(t_base);
    for (name, t) in [
        ("baseline (tokenize)", t_base),
        ("parse", t_parse),
        ("parse + reassembly", t_full),
    ] {
        println!(
            "{name:<22} {:>12.0} records/s  ({:.3} of baseline)",
            rate(t),
            rate(t) / base
        );
    }
    println!("events reassembled: {events}");
}
