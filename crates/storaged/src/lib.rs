//! Storage: where bytes live and how they get there safely.
//!
//! - [`bucket`]: named object-store roots, a primary and an optional rescue mirror.
//! - [`tables`]: Delta tables on the primary bucket (append, replace, update,
//!   delete, OPTIMIZE, time travel), mirrored to the rescue bucket after each commit.
//! - [`append_log`]: the fsync'd write-ahead log for small writes, flushed in batches.
//! - [`error_journal`]: every failed bucket operation, listable by operators.
//! - [`lock`]: the single-writer lock on a data directory.

pub mod append_log;
pub mod bucket;
pub mod error_journal;
pub mod lock;
pub mod stream_input;
pub mod tables;

pub use append_log::AppendLog;
pub use bucket::{Bucket, BucketHealth};
pub use error_journal::{BucketError, ErrorJournal};
pub use lock::DataDirLock;
pub use stream_input::BatchSource;
pub use tables::{FileLayout, TableInfo, TableStore, WriteMode, WriteOutcome};
