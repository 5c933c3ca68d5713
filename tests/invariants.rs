//! The written invariants a machine can check (ARCHITECTURE.md): the core
//! depends on no IO crate, the Kafka edge makes no lifecycle decision, and
//! every source file says what it is in a `//!` line.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Crates that do IO, read clocks or draw random numbers.
const IO_CRATES: [&str; 16] = [
    "tokio",
    "mio",
    "socket2",
    "rdkafka",
    "rdkafka-sys",
    "sled",
    "axum",
    "hyper",
    "reqwest",
    "tempfile",
    "getrandom",
    "rand",
    "iana-time-zone",
    "libc",
    "tracing-subscriber",
    "prometheus-client",
];

#[test]
fn the_core_depends_on_no_io_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args([
            "tree",
            "--offline",
            "-p",
            "ledger-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.contains(&"serde_json"), "the tree was read: {tree}");
    let io: Vec<&&str> = names.iter().filter(|n| IO_CRATES.contains(n)).collect();
    assert!(io.is_empty(), "ledger-core depends on {io:?}:\n{tree}");
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_starts_with_a_doc_line() {
    let mut files = vec![];
    for dir in ["src", "crates", "tests"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 40, "found {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            !text.starts_with("//!")
        })
        .map(|f| f.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    assert!(missing.is_empty(), "no `//!` first line: {missing:?}");
}

#[test]
fn the_kafka_edge_makes_no_lifecycle_decision() {
    let mut files = vec![];
    rust_files(&root().join("crates/ledger-kafka/src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for rule in [
            "Status::Expired",
            "Status::Abandoned",
            "EventKind::Expired",
            "EventKind::Abandoned",
            "new_v5",
            "deadline(",
        ] {
            assert!(
                !text.contains(rule),
                "{} decides `{rule}`: ask ledger-core",
                f.display()
            );
        }
    }
}
