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
/// mimalloc's `allow_thp` option (after `page_cross_thread_max_reclaim`, 42,
/// in its v3 option enum; the test `mimalloc_option_43_is_allow_thp`
/// checks that setting it has its effect).
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

fn main() -> std::process::ExitCode {
    // Keep freed memory for reuse instead of returning it to the OS 10 ms
    // later: every batch frees and reallocates about the same working set,
    // and re-faulting it cost ~15% of the store path (peak RSS unchanged).
    // No transparent huge pages for mimalloc's memory (it asks for them with
    // `madvise` by default): with the kernel's THP `defrag` on `madvise`, as
    // on Debian, each first touch of a 2 MiB page may compact memory
    // synchronously, and growing the heap cost the store bench 6-8 s of
    // system CPU per 1M events against 1.4 s with 4 KiB pages (README).
    // SAFETY: sets two of mimalloc's global options; any value is valid.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
    };
    let cli = cli::Cli::parse();
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
    match cmd::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MI_OPTION_ALLOW_THP;

    /// mimalloc's value of option 43, as this process read it at start-up.
    #[allow(unsafe_code)]
    fn allow_thp() -> std::os::raw::c_long {
        // SAFETY: reads one of mimalloc's global options.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_ALLOW_THP) }
    }

    /// Prints option 43 for [`mimalloc_option_43_is_allow_thp`]; run alone,
    /// it reads mimalloc's default for `allow_thp` (1 on Linux).
    #[test]
    fn allow_thp_probe() {
        let v = allow_thp();
        println!("allow_thp={v}");
        let want = std::env::var("MIMALLOC_ALLOW_THP").map_or(1, |v| v.parse().unwrap_or(-9));
        assert_eq!(v, want);
    }

    /// mimalloc reads `MIMALLOC_ALLOW_THP` from the environment at start-up:
    /// a child process started with it set reads that value under index 43,
    /// so 43 is `allow_thp` in the mimalloc this binary links.
    #[test]
    fn mimalloc_option_43_is_allow_thp() {
        for value in ["0", "1"] {
            let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args(["--exact", "tests::allow_thp_probe", "--nocapture"])
                .env("MIMALLOC_ALLOW_THP", value)
                .output()
                .expect("run the probe");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "probe failed: {stdout}");
            assert!(
                stdout.contains(&format!("allow_thp={value}")),
                "probe printed: {stdout}"
            );
        }
    }
}
