//! ledger-gen
