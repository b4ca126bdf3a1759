//! Types every Lakehouse crate shares: the typed error enum, schema fingerprints and
//! the Arrow helpers that decide how data is shaped before it is stored.

pub mod arrow_helpers;
pub mod error;
pub mod fingerprint;
pub mod jsonl;
pub mod pii;
pub mod time;

pub use error::{LakehouseError, Result};
pub use fingerprint::{ColumnDiff, SchemaDiff, fingerprint, schema_diff};
