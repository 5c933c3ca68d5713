//! The official clients, unchanged, against a running ledger: Clerk's Python
//! SDK (`clerk-backend-api`) and elizaOS's `@elizaos/api-client`, installed by
//! `scripts/sdk` (pinned, cached outside the clone). The ledger runs for real:
//! events through the broker, a sled store, API-key auth.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;

#[test]
fn official_clients_read_the_ledger_unchanged() {
    let brokers = broker();
    let topic = topic(&brokers, "sdk", 3);
    // Sessions from the last 40 minutes: some live, some expired, some ended.
    let events = generate(GenConfig {
        seed: 61,
        sessions: 2_000,
        events: 20_000,
        users: 150,
        start_ms: chrono::Utc::now().timestamp_millis() - 40 * 60_000,
        block: 2_000,
        ..Default::default()
    });
    let sent = publish(
        &brokers,
        &topic,
        events.iter().map(RawRecord::event).collect(),
    ) as i64;

    let key = "sk_test_ledger_sdk";
    let out = Command::new(BIN).args(["hash-key", key]).output().unwrap();
    let hash = String::from_utf8(out.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ledger.toml");
    std::fs::write(
        &config,
        format!(
            "[[auth.keys]]\nname = \"sdk\"\nsha256 = \"{}\"\nscope = \"admin\"\n",
            hash.trim()
        ),
    )
    .unwrap();
    let server = Server::start(
        &brokers,
        &topic,
        &dir.path().join("store"),
        &["--no-reaper", "--config", config.to_str().unwrap()],
    );
    server.wait_applied(sent, Duration::from_secs(300));

    let install = Command::new(root().join("scripts/sdk"))
        .arg("install")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(install.status.success(), "installing the SDKs failed");
    let paths = String::from_utf8(install.stdout).unwrap();
    let mut lines = paths.lines().rev();
    let node_prefix = lines.next().unwrap().to_string();
    let python = lines.next().unwrap().to_string();

    let clerk = Command::new(&python)
        .arg(root().join("sdk/clerk_sdk_test.py"))
        .args([&server.base, key])
        .output()
        .unwrap();
    let eliza = Command::new("node")
        .arg(root().join("sdk/eliza_sdk_test.mjs"))
        .args([&server.base, key, &node_prefix])
        .output()
        .unwrap();
    for (name, out) in [
        ("clerk-backend-api", &clerk),
        ("@elizaos/api-client", &eliza),
    ] {
        eprintln!(
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{name} test failed");
    }
    assert!(server.term().0.success());
}
