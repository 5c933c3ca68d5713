//! The README's first command, run as a new user would: `demo` with no
//! broker installed serves all four views.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

#[test]
fn demo_serves_all_four_views_with_no_setup() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_session-ledger"))
        .args([
            "demo",
            "--port",
            "0",
            "--sessions",
            "300",
            "--events",
            "3000",
        ])
        .env("LEDGER_LOG", "info,rdkafka=off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut text).unwrap();
        text
    });
    let started_ms = chrono::Utc::now().timestamp_millis();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = vec![];
    let base = loop {
        let line = lines.next().expect("demo exited early").unwrap();
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.trim().to_string();
        }
        printed.push(line);
    };
    std::thread::spawn(move || for _ in lines {});
    assert!(
        printed.iter().any(|l| l.contains("curl")),
        "prints requests to paste: {printed:?}"
    );
    // The console's address comes first, and it serves the page.
    let console = format!("{base}/ui");
    assert!(printed[0].contains(&console), "{printed:?}");
    let page = reqwest::blocking::get(&console).unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .unwrap()
        .contains("<title>session-ledger console</title>"));
    let get = |path: &str| -> Value {
        // The stream is consumed right after start: wait until sessions show.
        for _ in 0..100 {
            let r = reqwest::blocking::get(format!("{base}{path}")).unwrap();
            assert_eq!(r.status(), 200, "{path}");
            let v: Value = r.json().unwrap();
            let empty = v.as_array().map(|a| a.is_empty()).unwrap_or(false)
                || v["sessions"].as_array().is_some_and(|a| a.is_empty());
            if !empty {
                return v;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("{path} stayed empty");
    };
    let clerk = get("/v1/sessions?limit=5");
    assert_eq!(clerk.as_array().unwrap().len(), 5);
    assert_eq!(clerk[0]["object"], "session");
    // The generated stream ends at the demo's start: no time in the future.
    let newest = get("/v1/sessions?limit=500");
    for s in newest.as_array().unwrap() {
        for k in ["created_at", "last_active_at", "updated_at"] {
            let t = s[k].as_i64().unwrap();
            assert!(
                t <= started_ms + 60_000,
                "{k} {t} is in the future of {started_ms}"
            );
        }
    }
    let user = clerk[0]["user_id"].as_str().unwrap().to_string();
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/v2/traces/sessions/query"))
        .header("content-type", "application/json")
        .body(r#"{"pagination":{"limit":3}}"#)
        .send()
        .unwrap();
    let orq: Value = r.json().unwrap();
    assert_eq!(orq["object"], "list");
    assert_eq!(orq["data"].as_array().unwrap().len(), 3);
    let r = reqwest::blocking::get(format!("{base}/users/session/api?userId={user}")).unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().unwrap().is_array());
    let eliza = get("/api/messaging/sessions?limit=2");
    assert!(eliza["stats"]["totalSessions"].as_u64().unwrap() > 0);
    sigterm(child.id());
    assert!(child.wait().unwrap().success());
    let log = log.join().unwrap();
    assert!(log.contains(" INFO "), "logs captured: {log}");
    assert!(
        !log.contains('\x1b'),
        "no colour codes when stderr is not a terminal:\n{log}"
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") && !l.contains("authentication is DISABLED"))
        .collect();
    assert!(
        warnings.is_empty(),
        "a first run warns of nothing but the demo's open auth: {warnings:?}"
    );
}

/// Sends SIGTERM to a process (through `kill`: no unsafe code in the tests).
fn sigterm(pid: u32) {
    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -TERM {pid}");
}
