//! `demo`: the zero-setup first run. An in-process Kafka (librdkafka's mock
//! cluster), a generated stream, the full server, and requests to paste.

use ledger_gen::Generator;
use ledger_kafka::publish::RawRecord;
use ledger_kafka::Publisher;
use rdkafka::mocking::MockCluster;

use super::publish::gen_config;
use crate::cli::GenerateOpts;
use crate::config::Config;

pub async fn run(port: u16, sessions: usize, events: usize) -> anyhow::Result<()> {
    let port = if port == 0 {
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    } else {
        port
    };
    let cluster = MockCluster::new(1)?;
    let brokers = cluster.bootstrap_servers();
    let mut cfg = Config::default();
    cfg.kafka.brokers = brokers.clone();
    cluster.create_topic(&cfg.kafka.topic, 3, 1)?;
    cluster.create_topic(&ledger_kafka::dlq_topic(&cfg.kafka.topic), 1, 1)?;
    let dir = std::env::temp_dir().join(format!("session-ledger-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    cfg.store.path = dir.clone();
    cfg.http.listen = format!("127.0.0.1:{port}");
    cfg.auth.disabled = true;
    println!("demo: console at http://127.0.0.1:{port}/ui (auth is off in the demo: connect with any key)");
    let opts = GenerateOpts {
        sessions,
        events,
        seed: 7,
        users: 200,
        duplicates: 0.01,
        out_of_order: 0.02,
        start: None,
        out: None,
    };
    // The stream ends now: no time a first-time user sees is in the future.
    let mut events: Vec<_> = Generator::new(gen_config(&opts)?).collect();
    let last = events.iter().map(|e| e.time_ms).max().unwrap_or_default();
    ledger_gen::shift(&mut events, chrono::Utc::now().timestamp_millis() - last);
    let publisher = Publisher::new(&brokers, &cfg.kafka.topic)?;
    let sent = publisher
        .send_all(events.iter().map(RawRecord::event), |_| {})
        .await?;
    println!("demo: in-process Kafka at {brokers}; published {sent} generated events");
    println!("demo: store in {}", dir.display());
    let base = format!("http://127.0.0.1:{port}");
    println!("demo: try these (no API key needed in the demo):");
    println!("  curl -s '{base}/v1/sessions?limit=3'                          # Clerk");
    println!("  curl -s '{base}/v1/sessions?status=active&paginated=true&limit=2'");
    println!("  curl -s -X POST '{base}/v2/traces/sessions/query' -H 'content-type: application/json' -d '{{\"pagination\":{{\"limit\":2}}}}'  # orq.ai");
    println!("  curl -s '{base}/users/session/api?userId=user_1'               # Wingspan");
    println!("  curl -s '{base}/api/messaging/sessions?limit=2'                # elizaOS");
    println!("  curl -s '{base}/api/messaging/sessions/health'");
    println!("  curl -s '{base}/metrics'");
    let result = super::serve::run(cfg, super::wall_clock(), super::serve::shutdown_signal()).await;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    result
}
