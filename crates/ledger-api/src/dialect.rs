//! The contract every view's dialect keeps: how its API spells an error.
//!
//! A dialect is a stateless unit type in its view's folder ([`of`] makes
//! one the `&'static dyn Dialect` an error carries): the error
//! envelope (the body's shape), the code of each [`Failure`] kind the views
//! share, and that kind's status. orq.ai speaks two (one per SDK generation);
//! the ledger's own routes speak `Plain`. An [`ApiError`](crate::ApiError)
//! carries the dialect it is answered in.

use std::fmt::Debug;

use axum::http::StatusCode;
use serde_json::Value;

use crate::auth::AuthFailure;

/// The failures every view can answer, each spelled by the view's dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No API key presented.
    MissingKey,
    /// A key that is not configured.
    InvalidKey,
    /// Asking outside the key's scope.
    Forbidden,
    /// No such session (or not one this route serves).
    NotFound,
    /// A request that does not parse: its query string or its body.
    BadRequest,
    /// A parameter outside its range or set.
    BadParameter,
    /// A cursor this server did not issue.
    BadCursor,
    /// The store could not be read.
    Internal,
    /// Sharded mode: partitions the answer needs have no instance answering
    /// for them now (moving between instances, or their owner is gone).
    Unavailable,
}

impl Failure {
    /// The ledger's status for the kind, which every dialect keeps unless it
    /// says otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingKey | Self::InvalidKey => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest | Self::BadParameter | Self::BadCursor => StatusCode::BAD_REQUEST,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The ledger's own code for the kind (what `Plain` and orq.ai say).
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingKey | Self::InvalidKey => "UNAUTHORIZED",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::BadRequest | Self::BadParameter => "bad_request",
            Self::BadCursor => "invalid_cursor",
            Self::Internal => "internal_error",
            Self::Unavailable => "unavailable",
        }
    }

    /// The ledger's message for the kind: fixed for 401, 403, a bad cursor
    /// and 500; a generic phrase for the others, whose errors name what was
    /// wrong instead.
    pub fn message(self) -> &'static str {
        match self {
            Self::MissingKey => {
                "Missing API key: send `Authorization: Bearer <key>` or `X-API-KEY`"
            }
            Self::InvalidKey => "Invalid API key",
            Self::Forbidden => "This API key may not read outside its scope",
            Self::BadCursor => "The cursor is not one this server issued",
            Self::Internal => "The store could not be read",
            Self::NotFound => "Not found",
            Self::BadRequest => "Bad request",
            Self::BadParameter => "Invalid parameter",
            Self::Unavailable => {
                "Partitions this answer needs are moving between instances; retry shortly"
            }
        }
    }
}

impl From<AuthFailure> for Failure {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Missing => Self::MissingKey,
            AuthFailure::Invalid => Self::InvalidKey,
        }
    }
}

/// How one API spells its errors. The provided methods are the ledger's own
/// spelling ([`Failure::code`], [`Failure::status`], [`Failure::message`]);
/// a dialect overrides what its API says differently.
pub trait Dialect: Debug + Send + Sync + 'static {
    /// The error body for `status`, machine `code` and human `message`, at
    /// request time `at_ms` (Unix ms).
    fn envelope(&self, status: StatusCode, code: &str, message: &str, at_ms: i64) -> Value;

    /// This API's code for `kind`.
    fn code(&self, kind: Failure) -> &'static str {
        kind.code()
    }

    /// This API's status for `kind`.
    fn status(&self, kind: Failure) -> StatusCode {
        kind.status()
    }

    /// This API's message for a kind whose message is fixed (401, 403, bad
    /// cursor, 500).
    fn message(&self, kind: Failure) -> &'static str {
        kind.message()
    }
}

/// The dialect `D` as an [`ApiError`](crate::ApiError) carries it. Dialects
/// are unit types (checked at compile time), and a box of one allocates
/// nothing, so leaking it costs nothing.
pub fn of<D: Dialect + Default>() -> &'static dyn Dialect {
    const { assert!(std::mem::size_of::<D>() == 0, "a dialect is a unit type") };
    Box::leak(Box::new(D::default()))
}
