//! The change feed end to end, read by an independent SSE client (httpx-sse,
//! pinned in `scripts/sdk`): a mixed stream — pending shells, duplicates,
//! terminal events, deadlines passing during the test and the reaper's
//! events — published to the dev broker around a SIGKILL and restart of the
//! server; the readers reconnect with `Last-Event-ID` and end up with
//! exactly the changes the fold produced, for the whole feed (admin key) and
//! for one user (that user's scoped key).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ledger_core::{apply, Defaults, Event, EventData, Session, Status};
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;
use ledger_store::Token;
use serde_json::Value;

const ADMIN_KEY: &str = "sk_test_live_admin";
const USER_KEY: &str = "sk_test_live_user";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One applied change the fold produced: the state before and after.
struct Change {
    before: Option<Session>,
    after: Session,
}

/// The changes of each session, in the order the topic holds its events.
fn expected_changes(brokers: &str, topic: &str) -> BTreeMap<String, Vec<Change>> {
    let mut reads = read_topic(brokers, topic);
    reads.sort_by_key(|r| (r.partition, r.offset));
    let defaults = Defaults::default();
    let mut state: BTreeMap<String, Session> = BTreeMap::new();
    let mut out: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for e in reads.into_iter().filter_map(|r| r.event) {
        let before = state.remove(&e.session_id);
        let (after, outcome) = apply(before.clone(), &e, &defaults);
        if outcome.changed_state() && after.status != Status::Pending {
            out.entry(e.session_id.clone()).or_default().push(Change {
                before,
                after: after.clone(),
            });
        }
        state.insert(e.session_id.clone(), after);
    }
    out
}

/// A received SSE event: its token, type and Clerk session.
struct Received {
    token: Token,
    event: String,
    data: Value,
}

fn received(out: &Path) -> Vec<Received> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Received {
                token: Token::decode(v["id"].as_str().unwrap()).expect("an id the feed sent"),
                event: v["event"].as_str().unwrap().to_string(),
                data: serde_json::from_str(v["data"].as_str().unwrap()).unwrap(),
            }
        })
        .collect()
}

/// `data` without the read-time status (shown as of the reader's now).
fn stable(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("status");
    v
}

/// Checks `got` against the fold's changes of the sessions `wanted` keeps:
/// each session's changes once, in order, but the reaper's close of a
/// deadline announced at read time; each deadline announced at most once.
fn check(
    got: &[Received],
    want: &BTreeMap<String, Vec<Change>>,
    wanted: impl Fn(&Session) -> bool,
) -> Result<usize, String> {
    let mut applied: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
    let mut read_time: BTreeSet<(String, i64)> = BTreeSet::new();
    for r in got {
        let id = r.data["id"].as_str().unwrap().to_string();
        let is_read_time = r.token.through_id.as_deref() == Some(id.as_str())
            && matches!(r.event.as_str(), "session.expired" | "session.abandoned");
        if is_read_time {
            if !read_time.insert((id.clone(), r.token.through)) {
                return Err(format!(
                    "{id}: deadline {} announced twice",
                    r.token.through
                ));
            }
        } else {
            applied.entry(id).or_default().push(r);
        }
    }
    let mut matched = 0;
    for (id, changes) in want {
        if !wanted(&changes[0].after) {
            if applied.contains_key(id) {
                return Err(format!("{id}: outside the filter, yet sent"));
            }
            continue;
        }
        let mut got = applied
            .remove(id)
            .unwrap_or_default()
            .into_iter()
            .peekable();
        for (i, c) in changes.iter().enumerate() {
            let want = stable(ledger_api::clerk_session_json(&c.after, 0));
            // The reaper's close at a deadline the reader's clock had passed
            // (announced at read time, or shown as expired already) is no
            // visible change: it is sent only while the reader's watermark
            // is not past the deadline.
            let reaper_close = c.before.as_ref().and_then(|b| {
                let (at, due) = (b.status == Status::Active)
                    .then(|| b.next_deadline())
                    .flatten()?;
                (c.after.status == due && c.after.ended_at == Some(at)).then_some(at)
            });
            if let Some(at) = reaper_close {
                let sent = got
                    .peek()
                    .is_some_and(|r| stable(r.data.clone()) == want && r.token.through <= at);
                if read_time.contains(&(id.clone(), at)) && sent {
                    return Err(format!(
                        "{id}: deadline {at} announced at read time and by the reaper"
                    ));
                }
                if !sent {
                    continue;
                }
            }
            let Some(r) = got.next() else {
                return Err(format!(
                    "{id}: change {i} of {} not received ({:?} → {:?} at {:?})",
                    changes.len(),
                    c.before.as_ref().map(|b| b.status),
                    c.after.status,
                    c.after.updated_at,
                ));
            };
            if stable(r.data.clone()) != want {
                return Err(format!(
                    "{id}: change {i} differs: got {} want {want}",
                    r.data
                ));
            }
            matched += 1;
        }
        if let Some(extra) = got.next() {
            return Err(format!(
                "{id}: received a change the fold did not make: {}",
                extra.data
            ));
        }
    }
    if let Some(id) = applied.keys().next() {
        return Err(format!("{id}: received changes of an unknown session"));
    }
    Ok(matched)
}

/// A reader process: httpx-sse on `path` with `key` (killed if the test
/// fails before it stops).
struct Reader {
    child: Option<Child>,
    out: PathBuf,
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn reader(python: &str, dir: &Path, url_file: &Path, path: &str, key: &str, name: &str) -> Reader {
    let out = dir.join(format!("{name}.jsonl"));
    let child = Command::new(python)
        .arg(root().join("tests/live/sse_client.py"))
        .arg(url_file)
        .arg(path)
        .arg(key)
        .arg(&out)
        .arg(dir.join("stop"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Reader {
        child: Some(child),
        out,
    }
}

/// Events of sessions whose only event is `created`, expiring at `at`.
fn expiring(template: &Event, n: usize, now: i64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut e = template.clone();
            e.id = format!("fresh-{i}");
            e.session_id = format!("fresh-session-{i}");
            e.time_ms = now - 1_000;
            let at = now + 6_000 + (i as i64 % 8) * 1_000;
            e.created_expires_at_ms = Some(at);
            if let EventData::Created(d) = &mut e.data {
                d.expires_at = Some(ledger_core::time::format_iso_ms(at));
                d.unlimited = false;
            }
            e
        })
        .collect()
}

#[test]
fn readers_get_every_change_once_across_a_restart() {
    let paths = sdk_paths();
    let python = &paths["python_live"];
    let brokers = broker();
    let topic = topic(&brokers, "live", 3);
    let dir = tempfile::tempdir().unwrap();

    let now = now_ms();
    let mut events = generate(GenConfig {
        seed: 77,
        sessions: 600,
        events: 5_000,
        users: 12,
        duplicate_rate: 0.05,
        out_of_order_rate: 0.1,
        terminal_rate: 0.25,
        start_ms: now - 3 * 3_600_000,
        ..Default::default()
    });
    let last = events.iter().map(|e| e.time_ms).max().unwrap();
    ledger_gen::shift(&mut events, now - 2_000 - last);
    let created = events
        .iter()
        .find(|e| matches!(e.data, EventData::Created(_)))
        .unwrap()
        .clone();
    let user = {
        let mut n: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &events {
            if let EventData::Created(d) = &e.data {
                *n.entry(&d.user_id).or_default() += 1;
            }
        }
        n.into_iter().max_by_key(|(_, c)| *c).unwrap().0.to_string()
    };
    let fresh = expiring(&created, 40, now);
    let fresh_user = match &created.data {
        EventData::Created(d) => d.user_id.clone(),
        _ => unreachable!(),
    };
    let half = events.len() / 2;
    let mut wave1: Vec<Event> = events[..half].to_vec();
    wave1.extend(fresh.iter().cloned());
    let mut wave2: Vec<Event> = events[half..].to_vec();
    // Exact repeats of published events: duplicates by id.
    wave2.extend(events[..200].iter().cloned());

    let user_scope = format!("user:{user}");
    let config = config_with_keys(
        dir.path(),
        &format!(
            "[kafka]\ngroup_id = \"{}\"\n[reaper]\ninterval_ms = 250\n[feed]\nheartbeat_ms = 500\n",
            unique("live")
        ),
        &[(ADMIN_KEY, "admin"), (USER_KEY, &user_scope)],
    );
    let store = dir.path().join("store");
    let mut server = Server::start(&brokers, &topic, &store, &["--config", &config]);
    server.key = Some(ADMIN_KEY.to_string());
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, &server.base).unwrap();

    // A scoped key reads its own user only.
    let other = reqwest::blocking::Client::new()
        .get(server.url("/v1/sessions/stream?user_id=someone-else"))
        .bearer_auth(USER_KEY)
        .send()
        .unwrap();
    assert_eq!(other.status().as_u16(), 403);
    let bad = reqwest::blocking::Client::new()
        .get(server.url("/v1/sessions/stream"))
        .bearer_auth(ADMIN_KEY)
        .header("last-event-id", "not-a-token")
        .send()
        .unwrap();
    assert_eq!(
        bad.status().as_u16(),
        422,
        "Clerk's status for a bad parameter"
    );
    assert!(bad.text().unwrap().contains("Last-Event-ID"));

    let all = reader(
        python,
        dir.path(),
        &url_file,
        "/v1/sessions/stream",
        ADMIN_KEY,
        "all",
    );
    let mine = reader(
        python,
        dir.path(),
        &url_file,
        &format!("/v1/sessions/stream?user_id={user}"),
        USER_KEY,
        "mine",
    );
    let t0 = Instant::now();
    while server.metric("ledger_feed_subscribers") < 2.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "readers did not connect"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let n1 = publish(
        &brokers,
        &topic,
        wave1.iter().map(RawRecord::event).collect(),
    ) as i64;
    server.wait_applied(n1, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    server.kill();
    let down = Instant::now();
    let n2 = publish(
        &brokers,
        &topic,
        wave2.iter().map(RawRecord::event).collect(),
    ) as i64;
    // The killed server leaves the reaper's group when its session times
    // out (10 s): restarting after that, the new one owns the partitions at
    // once instead of waiting out a rebalance for a dead member.
    std::thread::sleep(Duration::from_secs(11).saturating_sub(down.elapsed()));
    let mut server = Server::start(&brokers, &topic, &store, &["--config", &config]);
    server.key = Some(ADMIN_KEY.to_string());
    std::fs::write(&url_file, &server.base).unwrap();
    server.wait_applied(n1 + n2, Duration::from_secs(60));

    // Every fresh deadline passes, the reaper closes each, and the ledger
    // applies its events: then the topic is complete.
    let last_deadline = fresh
        .iter()
        .filter_map(|e| e.created_expires_at_ms)
        .max()
        .unwrap();
    while now_ms() < last_deadline + 2_000 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let t0 = Instant::now();
    let want = loop {
        let total: i64 = read_topic(&brokers, &topic).len() as i64;
        server.wait_applied(total, Duration::from_secs(60));
        let want = expected_changes(&brokers, &topic);
        let reaped = fresh.iter().all(|e| {
            want[&e.session_id]
                .last()
                .unwrap()
                .after
                .status
                .is_terminal()
        });
        if reaped {
            break want;
        }
        // The killed server's reaper leaves its group only when its session
        // times out (10 s); then the restarted one owns the partitions.
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the reaper closed not every fresh session"
        );
        std::thread::sleep(Duration::from_millis(500));
    };

    let results = |r: &Reader, only: Option<&str>| {
        let got = received(&r.out);
        check(&got, &want, |s| {
            only.is_none_or(|u| s.user_id.as_deref() == Some(u))
        })
    };
    let t0 = Instant::now();
    loop {
        let a = results(&all, None);
        let m = results(&mine, Some(&user));
        if a.is_ok() && m.is_ok() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            panic!("after 60 s: all: {a:?}; mine: {m:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::fs::write(dir.path().join("stop"), "").unwrap();
    for mut r in [all, mine] {
        let out = r.child.take().unwrap().wait_with_output().unwrap();
        let end: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            end["connects"].as_u64().unwrap() >= 2,
            "{end}: reconnected after the restart"
        );
    }
    let got = received(&dir.path().join("all.jsonl"));
    let matched = check(&got, &want, |_| true).unwrap();
    let read_time = got
        .iter()
        .filter(|r| r.token.through_id.as_deref() == r.data["id"].as_str())
        .count();
    // Deadlines passed while the readers were connected: announced at read
    // time (the reaper's close then not again), or by the reaper's event.
    assert!(read_time > 0, "no read-time transition was announced");
    assert!(matched > 1_000, "{matched} changes");
    let mine = received(&dir.path().join("mine.jsonl"));
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|r| r.data["user_id"] == user.as_str()));
    eprintln!(
        "feed: {} events to the admin reader ({matched} applied changes, {read_time} read-time), {} to {user}'s (fresh sessions' user: {fresh_user})",
        got.len(),
        mine.len()
    );
}

/// Resident memory of a process, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn a_reader_that_stops_reading_costs_no_memory_and_gets_a_reset() {
    let paths = sdk_paths();
    let brokers = broker();
    let topic = topic(&brokers, "slow", 3);
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_keys(
        dir.path(),
        "[kafka]\nbatch_max = 2000\n[feed]\nkeep_offsets = 500\ntrim_every_ms = 100\nheartbeat_ms = 500\n",
        &[(ADMIN_KEY, "admin")],
    );
    let mut server = Server::start(
        &brokers,
        &topic,
        &dir.path().join("store"),
        &["--no-reaper", "--config", &config],
    );
    server.key = Some(ADMIN_KEY.to_string());
    // The same ledger with a reader that keeps reading: what ingestion and
    // reading the feed cost.
    let mut control = Server::start(
        &brokers,
        &topic,
        &dir.path().join("control"),
        &["--no-reaper", "--config", &config],
    );
    control.key = Some(ADMIN_KEY.to_string());
    let url_file = dir.path().join("control-url");
    std::fs::write(&url_file, &control.base).unwrap();
    let _reading = reader(
        &paths["python_live"],
        dir.path(),
        &url_file,
        "/v1/sessions/stream",
        ADMIN_KEY,
        "control",
    );
    let (out, go) = (dir.path().join("slow.jsonl"), dir.path().join("go"));
    let mut slow = Reader {
        child: Some(
            Command::new(&paths["python_live"])
                .arg(root().join("tests/live/slow_reader.py"))
                .arg(server.url("/v1/sessions/stream"))
                .arg(ADMIN_KEY)
                .arg(&out)
                .arg(&go)
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        ),
        out: out.clone(),
    };
    let t0 = Instant::now();
    while server.metric("ledger_feed_subscribers") < 1.0
        || control.metric("ledger_feed_subscribers") < 1.0
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the reader did not connect"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let events = generate(GenConfig {
        seed: 5,
        sessions: 12_000,
        events: 100_000,
        start_ms: now_ms() - 3_600_000,
        ..Default::default()
    });
    let n0 = publish(
        &brokers,
        &topic,
        events[..100].iter().map(RawRecord::event).collect(),
    ) as i64;
    server.wait_applied(n0, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    let before = rss(server.child.id());
    let n1 = publish(
        &brokers,
        &topic,
        events[100..].iter().map(RawRecord::event).collect(),
    ) as i64;
    server.wait_applied(n0 + n1, Duration::from_secs(120));
    control.wait_applied(n0 + n1, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(1_000));
    let (after, alone) = (rss(server.child.id()), rss(control.child.id()));
    // What the reader fell behind by, as the feed would have sent it.
    let sample = ledger_api::clerk_session_json(
        &ledger_testkit::fold(&events[..50])
            .into_values()
            .next()
            .unwrap(),
        0,
    )
    .to_string()
    .len() as u64;
    let behind = (n1 as u64) * sample;
    std::fs::write(&go, "").unwrap();
    let st = slow.child.take().unwrap().wait().unwrap();
    assert!(st.success());
    let got: Vec<Value> = std::fs::read_to_string(&slow.out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reset = got
        .iter()
        .position(|e| e["event"] == "reset")
        .expect("a reset event");
    // The reset's id is the head; what follows resumes from it.
    let head = Token::decode(got[reset]["id"].as_str().unwrap()).unwrap();
    let next = Token::decode(got[reset + 1]["id"].as_str().unwrap()).unwrap();
    assert!(next
        .next
        .iter()
        .all(|(p, o)| *o >= head.next.get(p).copied().unwrap_or(0)));
    eprintln!(
        "slow reader: {} events before the reset; server RSS {:.1} MiB before the backlog, {:.1} MiB with the reader {:.1} MiB of changes behind, {:.1} MiB for the same ledger with a reader that keeps reading",
        reset,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        behind as f64 / 1048576.0,
        alone as f64 / 1048576.0,
    );
    assert!(
        after < alone + behind / 2,
        "{after} bytes resident with the reader {behind} bytes behind, {alone} with one reading"
    );
}
