//! The seen-hash log: SHA-256 of every ingested source, so identical bytes are a no-op.

use std::collections::HashMap;
use std::path::Path;

use lakehouse_shared::Result;
use lakehouse_shared::jsonl::JsonlFile;
use lakehouse_shared::time::now_rfc3339;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeenHash {
    pub hash: String,
    pub dataset: String,
    pub version: i64,
    pub at: String,
}

pub struct SeenLog {
    file: JsonlFile,
    by_hash: HashMap<String, SeenHash>,
}

impl SeenLog {
    pub fn open(path: &Path) -> Result<Self> {
        let (file, records) = JsonlFile::open::<SeenHash>(path)?;
        let mut by_hash = HashMap::new();
        for rec in records {
            by_hash.entry(rec.hash.clone()).or_insert(rec);
        }
        Ok(Self { file, by_hash })
    }

    pub fn get(&self, hash: &str) -> Option<&SeenHash> {
        self.by_hash.get(hash)
    }

    pub fn record(&mut self, hash: &str, dataset: &str, version: i64) -> Result<()> {
        if self.by_hash.contains_key(hash) {
            return Ok(());
        }
        let rec = SeenHash { hash: hash.into(), dataset: dataset.into(), version, at: now_rfc3339() };
        self.file.append(std::slice::from_ref(&rec))?;
        self.by_hash.insert(rec.hash.clone(), rec);
        Ok(())
    }
}
