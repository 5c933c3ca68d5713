//! The official reader clients, unchanged, against one running ledger: Clerk
//! (`clerk-backend-api`, `@clerk/backend`), orq.ai (`orq-ai-sdk` 3.x and
//! 4.x), Wingspan (`@wingspan/users`) and elizaOS (`@elizaos/api-client`),
//! installed by `scripts/sdk` (pinned, cached outside the clone) and driven
//! by `sdk/*.py|mjs`. The ledger runs for real: events through the broker, a
//! sled store, API-key auth with an admin key and a key scoped to one user.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use ledger_core::event::SessionType;
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;

const ADMIN_KEY: &str = "sk_test_ledger_sdk";
const USER_KEY: &str = "sk_test_ledger_sdk_user";

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
    // The scoped key's user: the one with the most API sessions (Wingspan's
    // list holds API sessions only), who also has others.
    let mut per_user: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for s in fold(&events).values() {
        if let (Some(u), Some(_)) = (&s.user_id, s.created_at) {
            let e = per_user.entry(u.clone()).or_default();
            if s.session_type == SessionType::API {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    let (user, _) = per_user
        .iter()
        .filter(|(_, (_, other))| *other > 0)
        .max_by_key(|(u, (api, _))| (*api, std::cmp::Reverse((*u).clone())))
        .unwrap();
    let sent = publish(
        &brokers,
        &topic,
        events.iter().map(RawRecord::event).collect(),
    ) as i64;

    let dir = tempfile::tempdir().unwrap();
    let user_scope = format!("user:{user}");
    let config = config_with_keys(
        dir.path(),
        "",
        &[(ADMIN_KEY, "admin"), (USER_KEY, &user_scope)],
    );
    let mut server = Server::start(
        &brokers,
        &topic,
        &dir.path().join("store"),
        &["--no-reaper", "--config", &config],
    );
    server.key = Some(ADMIN_KEY.to_string());
    server.wait_applied(sent, Duration::from_secs(300));

    let sdk = sdk_paths();
    let sdk_dir = root().join("sdk");
    let args = [server.base.as_str(), ADMIN_KEY, USER_KEY, user.as_str()];
    let python = |venv: &str, script: &str| {
        Command::new(&sdk[venv])
            .arg(sdk_dir.join(script))
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap()
    };
    let node = |script: &str| {
        Command::new("node")
            .arg(sdk_dir.join(script))
            .args(args)
            .arg(&sdk["node_prefix"])
            .output()
            .unwrap()
    };
    let runs: Vec<(&str, Output)> = vec![
        ("clerk-backend-api", python("python", "clerk_sdk_test.py")),
        ("@clerk/backend", node("clerk_js_sdk_test.mjs")),
        ("orq-ai-sdk 3.x", python("python_orq3", "orq3_sdk_test.py")),
        ("orq-ai-sdk 4.x", python("python", "orq4_sdk_test.py")),
        ("@wingspan/users", node("wingspan_sdk_test.mjs")),
        ("@elizaos/api-client", node("eliza_sdk_test.mjs")),
    ];
    let mut failed = vec![];
    for (name, out) in &runs {
        eprintln!(
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "SDK tests failed: {failed:?}");
    assert!(server.term().0.success());
}
