//! One fixture per provider / event ID of the collector's table: a recorded property set
//! (written from the provider's manifest fields with realistic values), and the complete
//! dialect events the mapper must produce from it. Fixtures live in `tests/fixtures/*.json`.
//!
//! `ETW_BLESS=1 cargo test -p agent-etw --test fixtures` rewrites the `expected` arrays from
//! the mapper's output (review the diff before committing).

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn fixture_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_fixture_maps_to_its_expected_events() {
    let bless = std::env::var_os("ETW_BLESS").is_some();
    let files = fixture_files();
    assert!(files.len() >= 20, "fixtures missing: {}", files.len());
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("fixture readable");
        let mut fixture: Value = serde_json::from_str(&text).expect("fixture is JSON");
        let records = fixture["records"].as_array().expect("records").clone();
        let mut mapper = common::mapper();
        let got = common::map_all(&mut mapper, &records);
        if bless {
            fixture["expected"] = Value::Array(got);
            let mut out = serde_json::to_string_pretty(&fixture).expect("serialize");
            out.push('\n');
            std::fs::write(&path, out).expect("write fixture");
            continue;
        }
        let expected = fixture["expected"].as_array().expect("expected").clone();
        if got != expected {
            failures.push(format!(
                "{}:\n  expected {}\n  got      {}",
                path.display(),
                serde_json::to_string(&expected).unwrap_or_default(),
                serde_json::to_string(&got).unwrap_or_default()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The table of the issue, row by row: each (provider, ID) has a fixture that produces at
/// least one event from that ID (3006 and 12 without overwrite produce none by design; their
/// fixtures assert that).
#[test]
fn every_table_row_has_a_fixture() {
    let names: Vec<String> = fixture_files()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    for row in [
        "kernel_process_1_start",
        "kernel_process_2_end",
        "kernel_process_3_remote_thread",
        "kernel_file_12_create",
        "kernel_file_19_rename",
        "kernel_file_26_delete_path",
        "kernel_file_27_rename_path",
        "kernel_file_30_create_new_file",
        "kernel_network_12_connect_v4",
        "kernel_network_15_accept_v4",
        "kernel_network_28_connect_v6",
        "kernel_network_31_accept_v6",
        "dns_client_3006_sent",
        "dns_client_3008_completed",
        "powershell_4103_pipeline",
        "powershell_4104_script_block",
        "wmi_5857",
        "wmi_5858",
        "wmi_5859",
        "wmi_5860",
        "wmi_5861",
        "ntlm_8001",
        "ntlm_8002",
        "ntlm_8003",
        "ntlm_8004",
        "ntlm_4001",
        "ntlm_4002",
        "ntlm_4003",
    ] {
        assert!(names.iter().any(|n| n == row), "no fixture for {row}");
    }
}
