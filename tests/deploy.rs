//! The operator's files in `deploy/` against a running ledger: every metric
//! the Grafana dashboard and the Prometheus alert rules query exists in
//! `/metrics`, and `session-ledger status` reads the same server.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::*;
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;

/// The metric families a text names (`ledger_*`, suffixes of counters and
/// histograms removed).
fn families(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("ledger_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        if boundary {
            let mut name = &text[start..end];
            for suffix in ["_bucket", "_count", "_sum", "_total"] {
                if let Some(s) = name.strip_suffix(suffix) {
                    name = s;
                    break;
                }
            }
            out.insert(name.to_string());
        }
        i = end.max(start + 1);
    }
    out
}

#[test]
fn every_metric_the_dashboard_and_alerts_query_exists_and_status_reads_the_server() {
    let brokers = broker();
    let topic = topic(&brokers, "deploy", 3);
    let events = generate(GenConfig {
        seed: 21,
        sessions: 500,
        events: 4_000,
        start_ms: chrono::Utc::now().timestamp_millis() - 3_600_000,
        ..Default::default()
    });
    let mut records: Vec<RawRecord> = events.iter().map(RawRecord::event).collect();
    records.push(RawRecord {
        key: Some(b"bad".to_vec()),
        payload: b"not json".to_vec(),
        headers: None,
        partition: None,
    });
    let sent = publish(&brokers, &topic, records) as i64;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&brokers, &topic, &dir.path().join("store"), &["--no-auth"]);
    server.wait_applied(sent, Duration::from_secs(120));
    // A request, so the HTTP latency family has a sample too.
    reqwest::blocking::get(server.url("/v1/sessions?limit=1")).unwrap();
    // The reaper's group assignment takes a few seconds after start.
    let started = std::time::Instant::now();
    let metrics = loop {
        let text = reqwest::blocking::get(server.url("/metrics"))
            .unwrap()
            .text()
            .unwrap();
        if text.contains("ledger_reaper_owned_partition{") {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the reaper never owned a partition:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let served = families(&metrics);

    let dashboard =
        std::fs::read_to_string(root().join("deploy/grafana/session-ledger.json")).unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let exprs: Vec<&str> = parsed["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(exprs.len() >= 14, "{} queries", exprs.len());
    let alerts = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yaml")).unwrap();
    let alert_exprs: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .collect();
    assert!(alert_exprs.len() >= 8, "{} alert rules", alert_exprs.len());

    let queried: BTreeSet<String> = exprs
        .iter()
        .chain(&alert_exprs)
        .flat_map(|e| families(e))
        .collect();
    assert!(queried.len() >= 12, "{queried:?}");
    let missing: Vec<&String> = queried.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "queried but not in /metrics: {missing:?}\n{metrics}"
    );

    // `status` reads the same server: the partitions, the outcome counts,
    // the dead letter and the sessions it shows are the server's.
    let out = Command::new(BIN)
        .args(["status", "--url", &server.base])
        .output()
        .unwrap();
    assert!(out.status.success());
    let screen = String::from_utf8(out.stdout).unwrap();
    eprintln!("{screen}");
    assert!(screen.contains("— ready"), "{screen}");
    for p in 0..3 {
        assert!(
            screen
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{p} "))),
            "partition {p} listed:\n{screen}"
        );
    }
    assert!(screen.contains("dead letters 1 "), "{screen}");
    assert!(screen.contains(" 500 sessions,"), "{screen}");
    assert!(
        screen.contains("reaper       owns partitions 0, 1, 2"),
        "{screen}"
    );
    assert!(
        !screen.contains('\x1b'),
        "no terminal codes when not on a terminal"
    );
    let (st, _) = server.term();
    assert!(st.success());
}
