//! One module per command; this one resolves settings and dispatches.

mod demo;
mod ops;
mod publish;
mod serve;
mod status;

use std::sync::Arc;

use crate::cli::{Cli, Command, Common};
use crate::config::Config;

/// A clock, Unix ms.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock, Unix ms.
pub fn wall_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp_millis())
}

/// File, then environment and flags (clap merges those two).
fn settings(c: &Common) -> anyhow::Result<Config> {
    let mut cfg = Config::load(c.config.as_deref())?;
    if let Some(b) = &c.brokers {
        cfg.kafka.brokers = b.clone();
    }
    if let Some(t) = &c.topic {
        cfg.kafka.topic = t.clone();
    }
    if let Some(d) = &c.data_dir {
        cfg.store.path = d.clone();
    }
    // Every store this process opens from here on.
    ledger_store::set_cache_bytes(cfg.store.cache_mb.saturating_mul(1 << 20));
    Ok(cfg)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo {
            port,
            sessions,
            events,
        } => runtime()?.block_on(demo::run(port, sessions, events)),
        Command::Serve {
            common,
            listen,
            no_auth,
            no_reaper,
            mode,
            advertise,
            now_ms,
        } => {
            let mut cfg = settings(&common)?;
            if let Some(m) = mode {
                cfg.cluster.mode = m;
            }
            if advertise.is_some() {
                cfg.cluster.advertise = advertise;
            }
            if let Some(l) = listen {
                cfg.http.listen = l;
            }
            if no_auth {
                cfg.auth.disabled = true;
            }
            if no_reaper {
                cfg.reaper.enabled = false;
            }
            let clock = match now_ms {
                Some(ms) => Arc::new(move || ms) as Clock,
                None => wall_clock(),
            };
            runtime()?.block_on(serve::run(cfg, clock, serve::shutdown_signal()))
        }
        Command::Publish {
            common,
            input,
            binary,
        } => runtime()?.block_on(publish::publish(settings(&common)?, &input, binary)),
        Command::Generate { common, opts } => {
            runtime()?.block_on(publish::generate(settings(&common)?, opts))
        }
        Command::Erase {
            common,
            user,
            workspace,
        } => {
            let subject = match (user, workspace) {
                (Some(u), _) => ledger_core::Subject::User(u),
                (None, Some(w)) => ledger_core::Subject::Workspace(w),
                (None, None) => anyhow::bail!("name --user or --workspace"),
            };
            runtime()?.block_on(publish::erase(settings(&common)?, subject))
        }
        Command::Rebuild {
            url: Some(url),
            key,
            from_store,
            ..
        } => ops::rebuild_online(&url, key.as_deref(), from_store),
        Command::Rebuild {
            common, remove_old, ..
        } => ops::rebuild(settings(&common)?, remove_old),
        Command::Inspect { common, session_id } => ops::inspect(settings(&common)?, &session_id),
        Command::Audit { common } => ops::audit(settings(&common)?),
        Command::Status { url, watch } => status::run(&url, watch),
        Command::HashKey { key } => {
            println!("{}", ledger_api::hash_key(&key));
            Ok(())
        }
    }
}
