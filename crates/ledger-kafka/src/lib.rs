//! ledger-kafka
