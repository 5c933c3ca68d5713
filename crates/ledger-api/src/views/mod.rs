//! The views, one module per API, and the helpers they share.

pub mod clerk;
pub mod eliza;
pub mod ops;
pub mod orq;
pub mod wingspan;

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_core::Session;
use ledger_store::{Filter, Start, StoreError};

use crate::auth::{AuthFailure, Scope};
use crate::error::{ApiError, View};
use crate::state::AppState;

/// Query parameters as a map (last value wins), or the view's 400.
pub(crate) fn params(
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    view: View,
    now: i64,
) -> Result<HashMap<String, String>, ApiError> {
    match q {
        Ok(Query(pairs)) => Ok(pairs.into_iter().collect()),
        Err(e) => Err(ApiError::new(
            view,
            StatusCode::BAD_REQUEST,
            "bad_request",
            e.body_text(),
            now,
        )),
    }
}

/// Where a list page starts: after the `cursor` parameter when given, else
/// `offset` items in.
pub(crate) fn page_start(p: &HashMap<String, String>, offset: usize) -> Start {
    match p.get("cursor") {
        Some(c) => Start::After(c.clone()),
        None => Start::Offset(offset),
    }
}

/// The caller's scope, or 401 in the view's envelope.
pub(crate) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    view: View,
) -> Result<Scope, ApiError> {
    state.auth.check(headers).map_err(|f| {
        let (code, msg) = match (view, f) {
            (View::Clerk, AuthFailure::Missing) => (
                "authorization_header_missing",
                "Authorization header is missing",
            ),
            (View::Clerk, AuthFailure::Invalid) => {
                ("authorization_invalid", "The provided API key is invalid")
            }
            (_, AuthFailure::Missing) => (
                "UNAUTHORIZED",
                "Missing API key: send `Authorization: Bearer <key>` or `X-API-KEY`",
            ),
            (_, AuthFailure::Invalid) => ("UNAUTHORIZED", "Invalid API key"),
        };
        ApiError::new(view, StatusCode::UNAUTHORIZED, code, msg, state.now())
    })
}

pub(crate) fn forbidden(view: View, now: i64) -> ApiError {
    let code = match view {
        View::Clerk => "authorization_invalid",
        View::Orq => "forbidden",
        _ => "FORBIDDEN",
    };
    ApiError::new(
        view,
        StatusCode::FORBIDDEN,
        code,
        "This API key may not read outside its scope",
        now,
    )
}

/// Narrows `f` to the scope; asking for another user/workspace is a 403.
pub(crate) fn apply_scope(
    scope: &Scope,
    f: &mut Filter,
    view: View,
    now: i64,
) -> Result<(), ApiError> {
    match scope {
        Scope::Admin => Ok(()),
        Scope::User(u) => match &f.user_id {
            Some(x) if x != u => Err(forbidden(view, now)),
            _ => {
                f.user_id = Some(u.clone());
                Ok(())
            }
        },
        Scope::Workspace(w) => match &f.workspace_id {
            Some(x) if x != w => Err(forbidden(view, now)),
            _ => {
                f.workspace_id = Some(w.clone());
                Ok(())
            }
        },
    }
}

/// A session the scope may see, else 403 (404 is decided before).
pub(crate) fn check_visible(
    scope: &Scope,
    s: &Session,
    view: View,
    now: i64,
) -> Result<(), ApiError> {
    if scope.allows(s.user_id.as_deref(), s.workspace_id.as_deref()) {
        Ok(())
    } else {
        Err(forbidden(view, now))
    }
}

pub(crate) fn store_error(e: StoreError, view: View, now: i64) -> ApiError {
    match e {
        StoreError::BadCursor => ApiError::new(
            view,
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
            "The cursor is not one this server issued",
            now,
        ),
        other => {
            tracing::error!(error = %other, "store read failed");
            ApiError::new(
                view,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "The store could not be read",
                now,
            )
        }
    }
}

/// Parses an integer parameter within `lo..=hi`.
pub(crate) fn int_param(
    p: &HashMap<String, String>,
    name: &str,
    default: usize,
    lo: usize,
    hi: usize,
) -> Result<usize, String> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(format!(
                "`{name}` must be an integer between {lo} and {hi}, got `{v}`"
            )),
        },
    }
}

/// The session `id` as the caller may see it: 401 without a valid key, then
/// 404 (with the view's `not_found_code`) if unknown, then 403 if out of scope.
pub(crate) fn load_visible(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    view: View,
    not_found_code: &str,
) -> Result<Session, ApiError> {
    let now = state.now();
    let scope = authorize(state, headers, view)?;
    let s = state
        .store
        .get(id)
        .map_err(|e| store_error(e, view, now))?
        .ok_or_else(|| {
            ApiError::new(
                view,
                StatusCode::NOT_FOUND,
                not_found_code,
                format!("Session {id} not found"),
                now,
            )
        })?;
    check_visible(&scope, &s, view, now)?;
    Ok(s)
}

/// A JSON response carrying `x-next-cursor` when there is a next page.
pub(crate) fn with_next_cursor(body: impl serde::Serialize, next: Option<&str>) -> Response {
    let mut resp = axum::Json(body).into_response();
    if let Some(v) = next.and_then(|c| c.parse().ok()) {
        resp.headers_mut().insert("x-next-cursor", v);
    }
    resp
}
