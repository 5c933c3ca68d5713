//! API keys: stored as SHA-256 hashes, presented as `Authorization: Bearer`
//! or `X-API-KEY`, each with a scope.

use std::collections::HashMap;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

/// What a key may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Admin,
    /// Only this user's sessions.
    User(String),
    /// Only this workspace's sessions.
    Workspace(String),
}

impl Scope {
    /// Parses `admin`, `user:<id>` or `workspace:<id>`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.split_once(':') {
            None if s == "admin" => Some(Scope::Admin),
            Some(("user", id)) if !id.is_empty() => Some(Scope::User(id.into())),
            Some(("workspace", id)) if !id.is_empty() => Some(Scope::Workspace(id.into())),
            _ => None,
        }
    }

    /// Narrows `f` to what the scope may see; `false` when `f` asks for
    /// another user or workspace (nothing is visible then).
    pub fn narrow(&self, f: &mut ledger_store::Filter) -> bool {
        let (slot, own) = match self {
            Scope::Admin => return true,
            Scope::User(u) => (&mut f.user_id, u),
            Scope::Workspace(w) => (&mut f.workspace_id, w),
        };
        match slot {
            Some(asked) if asked != own => false,
            _ => {
                *slot = Some(own.clone());
                true
            }
        }
    }

    /// Whether a session with these owners is visible.
    pub fn allows(&self, user: Option<&str>, workspace: Option<&str>) -> bool {
        match self {
            Scope::Admin => true,
            Scope::User(u) => user == Some(u.as_str()),
            Scope::Workspace(w) => workspace == Some(w.as_str()),
        }
    }
}

/// A configured key: its name, the hex SHA-256 of the secret, its scope.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub name: String,
    pub sha256: String,
    pub scope: Scope,
}

/// The hex SHA-256 of a key, as stored in the configuration.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The key table. `disabled` admits every request as admin (demo only).
#[derive(Debug, Clone, Default)]
pub struct Auth {
    by_hash: HashMap<String, ApiKey>,
    disabled: bool,
}

/// The outcome of authenticating one request, kept in its extensions by the
/// consistency middleware so handlers do not hash the key again.
#[derive(Debug, Clone)]
pub(crate) struct Checked(pub(crate) Result<Scope, AuthFailure>);

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Invalid,
}

impl Auth {
    pub fn new(keys: Vec<ApiKey>) -> Self {
        Self {
            by_hash: keys
                .into_iter()
                .map(|k| (k.sha256.to_lowercase(), k))
                .collect(),
            disabled: false,
        }
    }

    /// No authentication at all (the local demo).
    pub fn disabled() -> Self {
        Self {
            by_hash: HashMap::new(),
            disabled: true,
        }
    }

    /// The scope of the key presented in `headers`.
    pub fn check(&self, headers: &HeaderMap) -> Result<Scope, AuthFailure> {
        if self.disabled {
            return Ok(Scope::Admin);
        }
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        let key = bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
        // The key is compared exactly as presented: no trimming.
        let key = key.filter(|k| !k.is_empty()).ok_or(AuthFailure::Missing)?;
        self.by_hash
            .get(&hash_key(key))
            .map(|k| k.scope.clone())
            .ok_or(AuthFailure::Invalid)
    }
}
