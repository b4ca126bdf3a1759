//! Failed bucket operations, journaled so operators can list them
//! (`GET /storage/errors`). Kept in the data directory's metadata area, not in the
//! bucket that failed.

use std::path::Path;
use std::sync::Mutex;

use lakehouse_shared::Result;
use lakehouse_shared::jsonl::JsonlFile;
use lakehouse_shared::time::now_rfc3339;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketError {
    pub at: String,
    pub bucket: String,
    pub operation: String,
    pub target: String,
    pub error: String,
}

pub struct ErrorJournal {
    inner: Mutex<(JsonlFile, Vec<BucketError>)>,
}

impl ErrorJournal {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let (file, records) = JsonlFile::open(&data_dir.join("_errors").join("bucket_errors.jsonl"))?;
        Ok(Self { inner: Mutex::new((file, records)) })
    }

    pub fn record(&self, bucket: &str, operation: &str, target: &str, error: &str) -> BucketError {
        let rec = BucketError {
            at: now_rfc3339(),
            bucket: bucket.into(),
            operation: operation.into(),
            target: target.into(),
            error: error.into(),
        };
        let mut inner = self.inner.lock().expect("error journal lock");
        // If even the local journal cannot be written there is nowhere better to
        // report it; keep it in memory so it is still listable.
        let _ = inner.0.append(std::slice::from_ref(&rec));
        inner.1.push(rec.clone());
        rec
    }

    /// Newest last; `limit` keeps the newest `limit`.
    pub fn list(&self, limit: Option<usize>) -> Vec<BucketError> {
        let inner = self.inner.lock().expect("error journal lock");
        let skip = limit.map_or(0, |l| inner.1.len().saturating_sub(l));
        inner.1[skip..].to_vec()
    }
}
