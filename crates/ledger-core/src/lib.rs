//! The pure core of the session ledger: the event contract, the session state
//! and the lifecycle fold `apply(state, event) -> outcome`.
//!
//! **Invariant:** nothing in this crate does IO, reads a clock or draws random
//! numbers. All time comes from events (or, for read-time status, from a `now`
//! passed in by the caller). Bad input is a [`DecodeError`], never a panic.

pub mod config;
pub mod erasure;
pub mod event;
pub mod fold;
pub mod limits;
pub mod partition;
pub mod reap;
pub mod session;
pub mod time;

pub use config::{Defaults, TimeoutConfig, TimeoutPatch};
pub use erasure::{Erasure, Subject};
pub use event::{
    decode_binary, decode_record, decode_structured, ActivityData, Billing, CreatedData,
    DecodeError, Device, Event, EventData, EventKind, RenewedData, TerminalData, Usage,
    MAX_EVENT_BYTES,
};
pub use fold::{apply, replay, Bucket, Outcome};
pub use limits::Limit;
pub use reap::reap_event;
pub use session::{Session, Status, UNLIMITED_EXPIRY_MS};
