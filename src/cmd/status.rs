//! `status`: one screen on how a running ledger is doing, read from its
//! `/metrics` and `/readyz` (no key needed): per-partition applied offset,
//! high watermark and lag, batch rate, events by outcome and dead letters,
//! store size and bytes per session, reaper ownership, health.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;

/// What one scrape says.
#[derive(Debug, Default)]
struct Snapshot {
    /// Partition → (applied, high watermark, lag).
    partitions: BTreeMap<i64, (f64, f64, f64)>,
    /// Outcome → events.
    events: BTreeMap<String, f64>,
    batches: f64,
    store_bytes: f64,
    sessions: f64,
    reaper_owned: Vec<i64>,
    consumer_up: Option<f64>,
    stalled: f64,
    dlq_failures: f64,
    skipped: f64,
    purged: f64,
    erasures: f64,
    erased: f64,
    rebuild_running: f64,
    rebuilds: f64,
    feed_subscribers: f64,
    /// Endpoint → (delivered, failed attempts, failing now, partitions owned).
    webhooks: BTreeMap<String, (f64, f64, f64, f64)>,
    ready: (u16, String),
}

fn scrape(base: &str) -> anyhow::Result<Snapshot> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("reading {base}/metrics"))?
        .text()?;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .context("/metrics is not Prometheus text")?;
    let mut s = Snapshot::default();
    for m in &scrape.samples {
        let v = match &m.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            // Batches applied: the count of the batch-time histogram.
            prometheus_parse::Value::Histogram(h) if m.metric == "ledger_batch_seconds" => {
                s.batches = h.iter().map(|b| b.count).fold(0.0, f64::max);
                continue;
            }
            _ => continue,
        };
        let partition = m
            .labels
            .get("partition")
            .and_then(|p| p.parse::<i64>().ok());
        match (m.metric.as_str(), partition) {
            ("ledger_applied_offset", Some(p)) => s.partitions.entry(p).or_default().0 = v,
            ("ledger_high_watermark", Some(p)) => s.partitions.entry(p).or_default().1 = v,
            ("ledger_consumer_lag", Some(p)) => s.partitions.entry(p).or_default().2 = v,
            ("ledger_reaper_owned_partition", Some(p)) if v > 0.0 => s.reaper_owned.push(p),
            ("ledger_events_total" | "ledger_events", _) => {
                let outcome = m.labels.get("outcome").unwrap_or("?").to_string();
                *s.events.entry(outcome).or_default() += v;
            }
            ("ledger_store_bytes", _) => s.store_bytes = v,
            ("ledger_store_sessions", _) => s.sessions = v,
            ("ledger_consumer_up", _) => s.consumer_up = Some(v),
            ("ledger_stalled_partitions", _) => s.stalled = v,
            ("ledger_dlq_failures_total" | "ledger_dlq_failures", _) => s.dlq_failures = v,
            ("ledger_skipped_records_total" | "ledger_skipped_records", _) => s.skipped = v,
            ("ledger_purged_sessions_total", _) => s.purged = v,
            ("ledger_erasures_total", _) => s.erasures = v,
            ("ledger_erased_sessions_total", _) => s.erased = v,
            ("ledger_rebuild_running", _) => s.rebuild_running = v,
            ("ledger_rebuilds_total", _) => s.rebuilds = v,
            ("ledger_feed_subscribers", _) => s.feed_subscribers = v,
            (name, _) if name.starts_with("ledger_webhook_") => {
                let ep = m.labels.get("endpoint").unwrap_or("?").to_string();
                let w = s.webhooks.entry(ep).or_default();
                match name {
                    "ledger_webhook_deliveries_total" => w.0 = v,
                    "ledger_webhook_failures_total" => w.1 = v,
                    "ledger_webhook_failing" => w.2 = v,
                    "ledger_webhook_owned_partitions" => w.3 = v,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    s.reaper_owned.sort_unstable();
    let r = client.get(format!("{base}/readyz")).send()?;
    s.ready = (r.status().as_u16(), r.text().unwrap_or_default());
    Ok(s)
}

/// A count with thousands separators (`1,234,567`); the figures shown are
/// never negative.
fn thousands(v: f64) -> String {
    indicatif::HumanCount(v.max(0.0).round() as u64).to_string()
}

/// The screen, from this scrape and (for rates) the one before it.
fn render(base: &str, now: &Snapshot, before: Option<(&Snapshot, Duration)>) -> String {
    let mut o = String::new();
    let health = match now.ready.0 {
        200 => "ready".to_string(),
        _ => match serde_json::from_str::<serde_json::Value>(&now.ready.1) {
            Ok(v) => {
                let problems: Vec<String> = v["problems"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let status = v["status"].as_str().unwrap_or("not ready");
                if problems.is_empty() {
                    status.to_string()
                } else {
                    format!("{status}: {}", problems.join("; "))
                }
            }
            Err(_) => format!("not ready ({})", now.ready.0),
        },
    };
    o.push_str(&format!("session-ledger at {base} — {health}\n\n"));
    o.push_str(&format!(
        "{:>9}  {:>14}  {:>14}  {:>10}\n",
        "partition", "applied", "high watermark", "lag"
    ));
    for (p, (applied, high, lag)) in &now.partitions {
        o.push_str(&format!(
            "{p:>9}  {:>14}  {:>14}  {:>10}\n",
            thousands(*applied),
            thousands(*high),
            thousands(*lag)
        ));
    }
    let total_lag: f64 = now.partitions.values().map(|p| p.2).sum();
    o.push_str(&format!(
        "{:>9}  {:>14}  {:>14}  {:>10}\n\n",
        "all",
        "",
        "",
        thousands(total_lag)
    ));
    let applied = now.events.get("applied").copied().unwrap_or(0.0);
    match before {
        Some((b, dt)) => {
            let secs = dt.as_secs_f64().max(1e-3);
            let ev = applied - b.events.get("applied").copied().unwrap_or(0.0);
            o.push_str(&format!(
                "rate         {:.1} batches/s, {} events/s applied (last {:.1} s)\n",
                (now.batches - b.batches) / secs,
                thousands(ev / secs),
                secs
            ));
        }
        None => o.push_str(&format!(
            "batches      {} applied since start (rates with --watch)\n",
            thousands(now.batches)
        )),
    }
    let mut outcomes: Vec<String> = now
        .events
        .iter()
        .map(|(k, v)| format!("{k} {}", thousands(*v)))
        .collect();
    outcomes.sort();
    o.push_str(&format!("events       {}\n", outcomes.join(", ")));
    o.push_str(&format!(
        "dead letters {} (skipped unfetchable {}, delivery failures {})\n",
        thousands(now.events.get("dead_lettered").copied().unwrap_or(0.0)),
        thousands(now.skipped),
        thousands(now.dlq_failures)
    ));
    let per = if now.sessions > 0.0 {
        format!(
            "{} bytes/session",
            thousands(now.store_bytes / now.sessions)
        )
    } else {
        "no sessions yet".to_string()
    };
    o.push_str(&format!(
        "store        {:.1} MiB, {} sessions, {per}\n",
        now.store_bytes / 1_048_576.0,
        thousands(now.sessions)
    ));
    let reaper = if now.reaper_owned.is_empty() {
        "owns no partition (disabled, or another instance owns them)".to_string()
    } else {
        let ps: Vec<String> = now.reaper_owned.iter().map(i64::to_string).collect();
        format!("owns partitions {}", ps.join(", "))
    };
    o.push_str(&format!("reaper       {reaper}\n"));
    o.push_str(&format!(
        "retention    {} sessions purged since start, {} dropped late events; erasures {} records applied, {} sessions erased\n",
        thousands(now.purged),
        thousands(now.events.get("dropped").copied().unwrap_or(0.0)),
        thousands(now.erasures),
        thousands(now.erased)
    ));
    o.push_str(&format!(
        "rebuild      {}, {} online rebuilds switched in since start\n",
        if now.rebuild_running > 0.0 {
            "RUNNING"
        } else {
            "idle"
        },
        thousands(now.rebuilds)
    ));
    o.push_str(&format!(
        "feed         {} readers connected\n",
        thousands(now.feed_subscribers)
    ));
    if now.webhooks.is_empty() {
        o.push_str("webhooks     none configured\n");
    }
    for (ep, (delivered, failures, failing, owned)) in &now.webhooks {
        o.push_str(&format!(
            "webhook      {ep}: {}, {} delivered, {} failed attempts since start; delivers {} partitions here\n",
            if *failing > 0.0 { "FAILING (retrying)" } else { "ok" },
            thousands(*delivered),
            thousands(*failures),
            thousands(*owned),
        ));
    }
    o.push_str(&format!(
        "consumer     {}, stalled partitions {}\n",
        match now.consumer_up {
            Some(v) if v > 0.0 => "running",
            Some(_) => "STOPPED",
            None => "not reported",
        },
        thousands(now.stalled)
    ));
    o
}

/// Writes to stdout; a reader that went away (`| head`) ends the command
/// quietly.
fn show(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

/// Prints the screen once, or every `watch` until interrupted.
pub fn run(url: &str, watch: Option<u64>) -> anyhow::Result<()> {
    let base = url.trim_end_matches('/');
    let mut before: Option<(Snapshot, Instant)> = None;
    loop {
        let now = scrape(base)?;
        let at = Instant::now();
        let screen = render(base, &now, before.as_ref().map(|(s, t)| (s, at - *t)));
        let Some(secs) = watch else {
            return show(&screen);
        };
        // On a terminal: clear it and draw from the top; elsewhere, one
        // screen after another.
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            show(&format!("\x1b[2J\x1b[H{screen}"))?;
        } else {
            show(&format!("{screen}\n"))?;
        }
        before = Some((now, at));
        std::thread::sleep(Duration::from_secs(secs.max(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(-1_000.0), "0", "no figure shown is negative");
    }
}
