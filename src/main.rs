//! `session-ledger`: the thin binary. Parses the command line and hands off
//! to one module per command.

mod cli;
mod cmd;
mod config;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (between `eager_commit_delay`, 14, and
/// `use_numa_nodes`, 16, in its option enum).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    let huge_pages_off = no_huge_pages();
    let cli = cli::Cli::parse();
    // `serve` keeps freed memory once its store is open (`cmd::serve`).
    if !matches!(cli.command, cli::Command::Serve { .. }) {
        keep_freed_memory();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("LEDGER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    // Colour only on a terminal: a log file or pipe gets plain ` WARN `.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("LEDGER_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
    if let Err(e) = huge_pages_off {
        tracing::debug!("transparent huge pages stay on: {e}");
    }
    match cmd::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// From now on mimalloc keeps freed memory for reuse instead of returning it
/// to the OS 10 ms later: every batch frees and reallocates about the same
/// working set, and re-faulting it cost ~15% of the store path. `serve`
/// calls it once its store is open: what opening a store freed (building
/// its memory indexes holds a group of entries beside them) goes back to
/// the OS first, instead of staying in the process's resident set.
pub(crate) fn keep_freed_memory() {
    // SAFETY: `mi_collect` returns freed memory mimalloc holds (any
    // thread, any time); `mi_option_set` sets one of its global options,
    // any value valid.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_collect(true);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1)
    };
}

/// Turns transparent huge pages off for the whole process. mimalloc asks
/// for them (`madvise`) on the memory it reserves before `main` runs; with
/// the kernel's THP `defrag` on `madvise`, as on Debian, the first touch of
/// each 2 MiB page may compact memory synchronously. Growing the heap so cost
/// the store bench 6.3-8.3 s of system CPU per 1M events, against 1.4-1.5 s
/// in 4 KiB pages, and `serve` a quarter of its CPU while catching up
/// (README, "Benchmarks").
#[cfg(target_os = "linux")]
fn no_huge_pages() -> std::io::Result<()> {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and reads no memory.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Transparent huge pages are Linux's: elsewhere there is nothing to turn off.
#[cfg(not(target_os = "linux"))]
fn no_huge_pages() -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// After `no_huge_pages` the kernel holds THP off for the process.
    #[test]
    fn huge_pages_are_off_after_no_huge_pages() {
        super::no_huge_pages().expect("prctl");
        // SAFETY: PR_GET_THP_DISABLE takes plain integers and reads no memory.
        #[allow(unsafe_code)]
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(disabled, 1);
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        assert!(!status.contains("THP_enabled:\t1"), "{status}");
    }
}
