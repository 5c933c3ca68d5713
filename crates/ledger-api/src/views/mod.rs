//! The views: one folder per API, holding its routes, handlers, JSON
//! builders and dialect; the dialect of each path; and what the list routes
//! share.
//!
//! A view's folder exports `routes()` (merged in `lib.rs`) and `PREFIXES`,
//! the paths its dialect is spoken under (listed in [`PREFIXES`] here).

pub mod clerk;
pub mod console;
pub mod eliza;
pub mod ops;
pub mod orq;
pub(crate) mod stream;
pub mod wingspan;

use axum::response::{IntoResponse, Response};

use crate::dialect::Dialect;

/// Each view's path prefixes and the dialect spoken under them.
const PREFIXES: [&[(&str, &dyn Dialect)]; 4] = [
    clerk::PREFIXES,
    orq::PREFIXES,
    wingspan::PREFIXES,
    eliza::PREFIXES,
];

/// The dialect of the view `path` belongs to (it is a prefix, or continues
/// one with `/`); the ledger's own anywhere else.
pub(crate) fn dialect_for(path: &str) -> &'static dyn Dialect {
    PREFIXES
        .iter()
        .copied()
        .flatten()
        .find(|(prefix, _)| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .map_or(&ops::Plain, |(_, d)| *d)
}

/// A JSON response carrying `x-next-cursor` when there is a next page.
pub(crate) fn with_next_cursor(body: impl serde::Serialize, next: Option<&str>) -> Response {
    let mut resp = axum::Json(body).into_response();
    if let Some(v) = next.and_then(|c| c.parse().ok()) {
        resp.headers_mut().insert("x-next-cursor", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::dialect_for;

    #[test]
    fn each_path_speaks_the_dialect_of_its_view() {
        for (path, dialect) in [
            ("/v1/sessions", "Clerk"),
            ("/v1/sessions/s-1", "Clerk"),
            ("/v2/traces/sessions/query", "Orq"),
            ("/v2/traces/sessions", "Orq"),
            ("/v2/sessions/tags", "Threads"),
            ("/v2/sessions/s-1", "Threads"),
            ("/users/session/api", "Wingspan"),
            ("/users/session/token/s-1", "Wingspan"),
            ("/api/messaging/sessions/health", "Eliza"),
            ("/api/messaging/sessions/s-1/events", "Eliza"),
            ("/v1/sessionsx", "Plain"),
            ("/v2", "Plain"),
            ("/healthz", "Plain"),
        ] {
            assert_eq!(format!("{:?}", dialect_for(path)), dialect, "{path}");
        }
    }
}
