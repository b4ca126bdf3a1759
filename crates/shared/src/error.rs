//! One error type for the whole core. Each variant is mapped exactly once to a Python
//! exception (in the bindings crate) and once to an HTTP status (in `lakehouse.errors`).

use serde::Serialize;

use crate::fingerprint::SchemaDiff;

pub type Result<T, E = LakehouseError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum LakehouseError {
    /// Same dataset name, different schema (ADR: idempotent register). HTTP 409.
    #[error(
        "schema conflict on dataset '{dataset}': registered fingerprint {existing_fingerprint}, incoming fingerprint {incoming_fingerprint}; {diff}"
    )]
    SchemaConflict {
        dataset: String,
        existing_fingerprint: String,
        incoming_fingerprint: String,
        diff: SchemaDiff,
    },

    /// A dataset, version or other named object does not exist. HTTP 404.
    #[error("{0}")]
    NotFound(String),

    /// A SQL statement tried to change state or reach outside the buckets. HTTP 400.
    #[error("read-only SQL surface: {0}")]
    ReadOnlyViolation(String),

    /// The caller sent something we cannot accept (bad name, bad SQL, bad value). HTTP 400.
    #[error("{0}")]
    InvalidInput(String),

    /// A bucket could not be written (or read, with no rescue copy). HTTP 503.
    #[error("bucket '{bucket}' unavailable during {operation}: {reason}")]
    BucketUnavailable {
        bucket: String,
        operation: String,
        reason: String,
    },

    /// Another process owns the data directory (single-writer lock). HTTP 423.
    #[error("data directory {path} is locked by another process (pid {holder}); talk to it over HTTP or stop it")]
    DataDirLocked { path: String, holder: String },

    /// The data source feeding a write failed midway (a dropped database connection,
    /// a producer that raised). Nothing was committed. HTTP 502.
    #[error("source failed while streaming: {0}")]
    SourceFailed(String),

    /// Anything else: a bug or an environment problem. HTTP 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl LakehouseError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    pub fn invalid(e: impl std::fmt::Display) -> Self {
        Self::InvalidInput(e.to_string())
    }

    /// Structured details for API consumers (both fingerprints and the diff on conflicts).
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            Self::SchemaConflict { dataset, existing_fingerprint, incoming_fingerprint, diff } => {
                Some(serde_json::json!({
                    "dataset": dataset,
                    "existing_fingerprint": existing_fingerprint,
                    "incoming_fingerprint": incoming_fingerprint,
                    "diff": diff,
                }))
            }
            Self::BucketUnavailable { bucket, operation, reason } => Some(serde_json::json!({
                "bucket": bucket, "operation": operation, "reason": reason,
            })),
            _ => None,
        }
    }
}

impl From<std::io::Error> for LakehouseError {
    fn from(e: std::io::Error) -> Self {
        Self::Internal(format!("I/O: {e}"))
    }
}

impl From<serde_json::Error> for LakehouseError {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("JSON: {e}"))
    }
}

impl From<arrow::error::ArrowError> for LakehouseError {
    fn from(e: arrow::error::ArrowError) -> Self {
        Self::InvalidInput(format!("Arrow: {e}"))
    }
}

/// Serialisable form of an error, used by journals that record failures.
#[derive(Debug, Serialize)]
pub struct ErrorRecord {
    pub kind: &'static str,
    pub message: String,
}

impl From<&LakehouseError> for ErrorRecord {
    fn from(e: &LakehouseError) -> Self {
        let kind = match e {
            LakehouseError::SchemaConflict { .. } => "schema_conflict",
            LakehouseError::NotFound(_) => "not_found",
            LakehouseError::ReadOnlyViolation(_) => "read_only_violation",
            LakehouseError::InvalidInput(_) => "invalid_input",
            LakehouseError::BucketUnavailable { .. } => "bucket_unavailable",
            LakehouseError::DataDirLocked { .. } => "data_dir_locked",
            LakehouseError::SourceFailed(_) => "source_failed",
            LakehouseError::Internal(_) => "internal",
        };
        Self { kind, message: e.to_string() }
    }
}
