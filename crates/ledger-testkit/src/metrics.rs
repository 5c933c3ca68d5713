//! Reading the Prometheus text exposition `serve` answers on `/metrics`
//! (what tests and benches assert on and print).
//!
//! A sample line is `SERIES VALUE`, where `SERIES` is a metric name alone
//! or followed by its labels (`name{label="v"}`); `#` lines are comments.

/// The samples of `text`: (series, value); lines that are no sample (or
/// whose value does not parse) are passed over.
fn samples(text: &str) -> impl Iterator<Item = (&str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            // Label values may hold spaces: the series ends after its `}`.
            let end = match l.find('{') {
                Some(open) => open + l[open..].find('}')? + 1,
                None => l.find(' ')?,
            };
            let value = l[end..].split_whitespace().next()?.parse().ok()?;
            Some((&l[..end], value))
        })
}

/// The value of the sample whose series is exactly `series` (a name alone,
/// or a name with its labels as exposed); `None` when there is none.
pub fn series(text: &str, series: &str) -> Option<f64> {
    samples(text).find_map(|(s, v)| (s == series).then_some(v))
}

/// The sum of every sample of the metric `name`, whatever its labels (a
/// name that only starts another metric's does not count); 0 when none.
pub fn sum(text: &str, name: &str) -> f64 {
    samples(text)
        .filter(|(s, _)| s.split('{').next() == Some(name))
        .map(|(_, v)| v)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP ledger_events Consumed records by outcome.\n\
        # TYPE ledger_events counter\n\
        ledger_events_total{outcome=\"applied\"} 7\n\
        ledger_events_total{outcome=\"dead_lettered\"} 2\n\
        ledger_store_sessions 5\n\
        ledger_store_sessions_pending 3\n\
        ledger_http_requests_total{route=\"a b\",code=\"200\"} 4.5\n\
        # EOF\n";

    #[test]
    fn a_series_is_matched_exactly() {
        assert_eq!(
            series(TEXT, "ledger_events_total{outcome=\"applied\"}"),
            Some(7.0)
        );
        assert_eq!(series(TEXT, "ledger_store_sessions"), Some(5.0));
        assert_eq!(
            series(
                TEXT,
                "ledger_http_requests_total{route=\"a b\",code=\"200\"}"
            ),
            Some(4.5)
        );
        assert_eq!(series(TEXT, "ledger_events_total"), None);
        assert_eq!(series(TEXT, "ledger_store"), None);
    }

    #[test]
    fn a_sum_takes_every_label_set_of_one_metric_only() {
        assert_eq!(sum(TEXT, "ledger_events_total"), 9.0);
        assert_eq!(sum(TEXT, "ledger_store_sessions"), 5.0);
        assert_eq!(sum(TEXT, "ledger_http_requests_total"), 4.5);
        assert_eq!(sum(TEXT, "ledger_absent"), 0.0);
    }
}
