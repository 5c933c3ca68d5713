//! The figures of a `wrk --latency` run, parsed from its report.

/// What one `wrk --latency` run printed; latencies in ms (NaN when missing).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub requests: u64,
    pub non_2xx: u64,
}

/// A wrk duration (`812.00us`, `3.41ms`, `1.20s`, `2.00m`) in ms.
pub fn ms(s: &str) -> f64 {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => f64::NAN,
    }
}

/// Parses wrk's standard output.
pub fn parse(text: &str) -> Figures {
    // The `n`th field of the first line starting with `prefix`.
    let field = |prefix: &str, n: usize| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(n))
            .unwrap_or("")
    };
    let count = |line: Option<&str>| line.and_then(|v| v.parse().ok()).unwrap_or(0);
    Figures {
        rps: field("Requests/sec:", 1).parse().unwrap_or(f64::NAN),
        p50_ms: ms(field("50%", 1)),
        p99_ms: ms(field("99%", 1)),
        // "Latency  avg  stdev  max  +/- stdev"
        max_ms: ms(field("Latency ", 3)),
        requests: count(
            text.lines()
                .find(|l| l.contains("requests in"))
                .and_then(|l| l.split_whitespace().next()),
        ),
        non_2xx: count(
            text.lines()
                .find(|l| l.contains("Non-2xx"))
                .and_then(|l| l.split_whitespace().last()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrk_report_parses_into_its_figures() {
        let report = "Running 30s test @ http://127.0.0.1:8080/v1/sessions?limit=10
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.12ms    3.02ms 338.64ms   91.20%
    Req/Sec     8.52k     1.01k   10.20k    70.00%
  Latency Distribution
     50%    3.46ms
     75%    4.90ms
     90%    7.01ms
     99%   27.61ms
  255556 requests in 30.00s, 1.10GB read
  Non-2xx or 3xx responses: 12
Requests/sec:   8518.40
Transfer/sec:     37.60MB
";
        assert_eq!(
            parse(report),
            Figures {
                rps: 8518.40,
                p50_ms: 3.46,
                p99_ms: 27.61,
                max_ms: 338.64,
                requests: 255_556,
                non_2xx: 12,
            }
        );
        assert_eq!(ms("812.00us"), 0.812);
        assert_eq!(ms("1.20s"), 1200.0);
        assert_eq!(ms("2.00m"), 120_000.0);
        assert!(ms("").is_nan());
    }
}
