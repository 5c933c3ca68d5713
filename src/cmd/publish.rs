//! `publish` (NDJSON → topic) and `generate` (synthetic stream → NDJSON or topic).

use std::io::{BufRead, Write};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ledger_core::decode_structured;
use ledger_gen::{GenConfig, Generator};
use ledger_kafka::publish::RawRecord;
use ledger_kafka::{event_headers, Publisher};

use crate::cli::GenerateOpts;
use crate::config::Config;

fn bar(total: u64) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if std::env::var_os("CI").is_some() {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    pb
}

/// Turns one NDJSON line into a record keyed by its subject.
fn record(line: &str, binary: bool) -> Result<RawRecord, String> {
    let event = decode_structured(line.as_bytes()).map_err(|e| e.to_string())?;
    if binary {
        let mut v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let data = v
            .get_mut("data")
            .map(serde_json::Value::take)
            .unwrap_or_default();
        Ok(RawRecord {
            key: Some(event.session_id.clone().into_bytes()),
            payload: data.to_string().into_bytes(),
            headers: Some(event_headers(&event)),
            partition: None,
        })
    } else {
        Ok(RawRecord {
            key: Some(event.session_id.into_bytes()),
            payload: line.as_bytes().to_vec(),
            headers: None,
            partition: None,
        })
    }
}

pub async fn publish(cfg: Config, input: &str, binary: bool) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = if input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(input).with_context(|| format!("opening {input}"))?,
        ))
    };
    let mut records = vec![];
    let mut rejected = 0u64;
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match record(&line, binary) {
            Ok(r) => records.push(r),
            Err(e) => {
                rejected += 1;
                eprintln!("line {}: skipped: {e}", n + 1);
            }
        }
    }
    let publisher = Publisher::new(&cfg.kafka.brokers, &cfg.kafka.topic)?;
    let pb = bar(records.len() as u64);
    let sent = publisher.send_all(records, |n| pb.set_position(n)).await?;
    pb.finish_and_clear();
    println!(
        "published {sent} events to {} ({rejected} lines skipped)",
        cfg.kafka.topic
    );
    Ok(())
}

pub fn gen_config(o: &GenerateOpts) -> anyhow::Result<GenConfig> {
    let start_ms = match &o.start {
        Some(s) => ledger_core::time::parse_rfc3339_ms(s).context("--start must be RFC 3339")?,
        None => chrono::Utc::now().timestamp_millis() - 3_600_000,
    };
    Ok(GenConfig {
        seed: o.seed,
        sessions: o.sessions,
        events: o.events,
        users: o.users.max(1),
        clients: (o.users / 5).max(1),
        agents: 25,
        workspaces: 12,
        start_ms,
        duplicate_rate: o.duplicates,
        out_of_order_rate: o.out_of_order,
        ..GenConfig::default()
    })
}

pub async fn generate(cfg: Config, o: GenerateOpts) -> anyhow::Result<()> {
    let gen = Generator::new(gen_config(&o)?);
    match o.out.as_deref() {
        Some(path) => {
            let mut w: Box<dyn Write> = if path == "-" {
                Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
            } else {
                Box::new(std::io::BufWriter::new(std::fs::File::create(path)?))
            };
            let mut n = 0u64;
            for e in gen {
                serde_json::to_writer(&mut w, &e.to_json())?;
                w.write_all(b"\n")?;
                n += 1;
            }
            w.flush()?;
            if path != "-" {
                println!("wrote {n} events to {path}");
            }
        }
        None => {
            let publisher = Publisher::new(&cfg.kafka.brokers, &cfg.kafka.topic)?;
            let pb = bar(o.events as u64);
            let sent = publisher
                .send_all(gen.map(|e| RawRecord::event(&e)), |n| pb.set_position(n))
                .await?;
            pb.finish_and_clear();
            println!("published {sent} generated events to {}", cfg.kafka.topic);
        }
    }
    Ok(())
}

/// Publishes an erasure of `subject` to every partition and prints where.
pub async fn erase(cfg: Config, subject: ledger_core::Subject) -> anyhow::Result<()> {
    anyhow::ensure!(
        !matches!(&subject, ledger_core::Subject::User(s) | ledger_core::Subject::Workspace(s) if s.is_empty()),
        "the id to erase is empty"
    );
    let publisher = Publisher::new(&cfg.kafka.brokers, &cfg.kafka.topic)?;
    let e = ledger_core::Erasure {
        id: uuid::Uuid::new_v4().to_string(),
        time_ms: chrono::Utc::now().timestamp_millis(),
        subject,
    };
    let copies = publisher
        .erase(&e)
        .await
        .with_context(|| format!("publishing the erasure to {}", cfg.kafka.topic))?;
    let at: Vec<String> = copies.iter().map(|(p, o)| format!("{p}@{o}")).collect();
    println!(
        "erasure {} ({}) published to {} partitions of {} ({})",
        e.id,
        e.subject,
        copies.len(),
        cfg.kafka.topic,
        at.join(", ")
    );
    Ok(())
}
