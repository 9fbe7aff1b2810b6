//! Requests with an `Idempotency-Key` (IETF Idempotency-Key draft): the work
//! and the record of its answer commit in one transaction, so "done" and
//! "key recorded" cannot disagree. A repeat replays the first answer, marked
//! with `Idempotent-Replayed: true`; a repeat with another request answers
//! `422 idempotency_key_mismatch`; a repeat while the first still runs
//! answers `409 idempotency_key_in_use`. Keys are the caller's own and kept
//! 24 hours. Only successful answers are recorded: a refused request changed
//! nothing, and may be sent again with the same key.
//!
//! - [`key`]: the header, and the fingerprint of the request it came with;
//! - [`runner`]: runs the work and records its answer, or replays it;
//! - [`store`]: the records, in SQL;
//! - [`prune`]: deletes expired records, safely from any number of processes.

pub mod key;
pub mod prune;
pub mod runner;
pub mod store;

pub use key::{IdempotencyKey, IdempotencyKeyHeader, REPLAYED, fingerprint_keyed};
pub use prune::prune_expired_keys;
pub use runner::run;
