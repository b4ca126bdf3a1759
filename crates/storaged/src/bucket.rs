//! Buckets: named object-store roots. Local directories by default.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lakehouse_shared::time::now_rfc3339;
use lakehouse_shared::{LakehouseError, Result};
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;
use url::Url;

#[derive(Clone)]
pub struct Bucket {
    pub name: String,
    pub root: PathBuf,
    store: Arc<dyn ObjectStore>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BucketHealth {
    pub bucket: String,
    pub root: String,
    pub role: String,
    pub readable: bool,
    pub writable: bool,
    pub error: Option<String>,
    pub checked_at: String,
}

impl Bucket {
    pub fn local(name: &str, root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| LakehouseError::BucketUnavailable {
            bucket: name.into(),
            operation: "open".into(),
            reason: format!("{}: {e}", root.display()),
        })?;
        let root = root.canonicalize()?;
        let store = LocalFileSystem::new_with_prefix(&root).map_err(LakehouseError::internal)?;
        Ok(Self { name: name.into(), root, store: Arc::new(store) })
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// `file://` URL of a table directory in this bucket.
    pub fn table_url(&self, table: &str) -> Url {
        Url::from_directory_path(self.root.join(table)).expect("bucket roots are absolute")
    }

    /// Probe: write, read back and delete a small object.
    pub async fn health(&self, role: &str) -> BucketHealth {
        let probe = object_store::path::Path::from(format!("_health/probe-{}", std::process::id()));
        let write = self.store.put(&probe, PutPayload::from_static(b"ok")).await;
        let read = match &write {
            Ok(_) => self.store.get(&probe).await.map(|_| ()),
            Err(_) => self.store.list_with_delimiter(None).await.map(|_| ()),
        };
        let _ = self.store.delete(&probe).await;
        BucketHealth {
            bucket: self.name.clone(),
            root: self.root.display().to_string(),
            role: role.into(),
            readable: read.is_ok(),
            writable: write.is_ok(),
            error: write.err().map(|e| e.to_string()).or(read.err().map(|e| e.to_string())),
            checked_at: now_rfc3339(),
        }
    }
}
