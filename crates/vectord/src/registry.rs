//! Index versions and the active pointer. Every build or refresh registers a new
//! version; promotion flips `active` and appends to the history; rollback re-activates
//! the version that was active before. The whole state is one small JSON file replaced
//! atomically (write, fsync, rename, fsync the directory), so a crash leaves either the
//! old pointer or the new one — never a mix — and a restart reads back the same state.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use lakehouse_shared::{LakehouseError, Result};
use serde::{Deserialize, Serialize};

const STATE_FILE: &str = "registry.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexVersion {
    pub version: u64,
    pub created_at: String,
    /// Backend name ("hnsw", "lance") and its parameters, as the builder chose them.
    pub backend: String,
    pub params: serde_json::Value,
    pub rows: u64,
    /// Where the version's files live, relative to the index directory.
    pub location: String,
    /// Anything measured about it: build seconds, recall, latency.
    #[serde(default)]
    pub metrics: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Promotion {
    pub at: String,
    pub from: Option<u64>,
    pub to: u64,
    pub actor: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct RegistryState {
    active: Option<u64>,
    versions: Vec<IndexVersion>,
    history: Vec<Promotion>,
}

pub struct IndexRegistry {
    dir: PathBuf,
    state: RegistryState,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> LakehouseError {
    LakehouseError::Internal(format!("index registry {}: {e}", path.display()))
}

impl IndexRegistry {
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let path = dir.join(STATE_FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| io_error(&path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistryState::default(),
            Err(e) => return Err(io_error(&path, e)),
        };
        Ok(Self { dir: dir.to_path_buf(), state })
    }

    pub fn active(&self) -> Option<&IndexVersion> {
        let active = self.state.active?;
        self.state.versions.iter().find(|v| v.version == active)
    }

    pub fn versions(&self) -> &[IndexVersion] {
        &self.state.versions
    }

    pub fn history(&self) -> &[Promotion] {
        &self.state.history
    }

    /// The number the next registered version will get.
    pub fn next_version(&self) -> u64 {
        self.state.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1
    }

    /// Record a built version (not yet active). Its number must be `next_version()`.
    pub fn register(&mut self, version: IndexVersion) -> Result<()> {
        if version.version != self.next_version() {
            return Err(LakehouseError::invalid(format!(
                "version {} registered out of order; next is {}",
                version.version,
                self.next_version()
            )));
        }
        let mut next = self.state.clone();
        next.versions.push(version);
        self.commit(next)
    }

    /// Make `version` the one searches use.
    pub fn promote(&mut self, version: u64, actor: &str, reason: &str) -> Result<Promotion> {
        if !self.state.versions.iter().any(|v| v.version == version) {
            return Err(LakehouseError::NotFound(format!("index version {version} does not exist")));
        }
        let promotion = Promotion {
            at: lakehouse_shared::time::now_rfc3339(),
            from: self.state.active,
            to: version,
            actor: actor.to_string(),
            reason: reason.to_string(),
        };
        let mut next = self.state.clone();
        next.active = Some(version);
        next.history.push(promotion.clone());
        self.commit(next)?;
        Ok(promotion)
    }

    /// Re-activate the version that was active before the current one.
    pub fn rollback(&mut self, actor: &str) -> Result<Promotion> {
        let previous = self
            .state
            .history
            .iter()
            .rev()
            .find(|p| Some(p.to) == self.state.active)
            .and_then(|p| p.from)
            .ok_or_else(|| LakehouseError::invalid("nothing to roll back to: no earlier active version"))?;
        self.promote(previous, actor, "rollback")
    }

    /// Write `next` to disk, then adopt it: memory never runs ahead of the file.
    fn commit(&mut self, next: RegistryState) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| io_error(&path, e))?;
        let mut file = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
        file.write_all(&bytes).and_then(|_| file.sync_all()).map_err(|e| io_error(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io_error(&self.dir, e))?;
        self.state = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: u64) -> IndexVersion {
        IndexVersion {
            version: n,
            created_at: "2026-11-21T00:00:00Z".into(),
            backend: "hnsw".into(),
            params: serde_json::json!({"connectivity": 16}),
            rows: 10 * n,
            location: format!("v{n}"),
            metrics: serde_json::Value::Null,
        }
    }

    #[test]
    fn promotion_and_rollback_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = IndexRegistry::open(dir.path()).unwrap();
        registry.register(version(1)).unwrap();
        registry.promote(1, "builder", "first build").unwrap();
        registry.register(version(2)).unwrap();
        assert_eq!(registry.active().unwrap().version, 1, "registering does not activate");
        registry.promote(2, "autotune", "better recall").unwrap();
        let mut reopened = IndexRegistry::open(dir.path()).unwrap();
        assert_eq!(reopened.active().unwrap().version, 2);
        let back = reopened.rollback("ops").unwrap();
        assert_eq!((back.from, back.to), (Some(2), 1));
        let again = IndexRegistry::open(dir.path()).unwrap();
        assert_eq!(again.active().unwrap().version, 1);
        assert_eq!(again.history().len(), 3);
    }

    #[test]
    fn unknown_versions_and_empty_history_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = IndexRegistry::open(dir.path()).unwrap();
        assert!(matches!(registry.promote(7, "a", "b"), Err(LakehouseError::NotFound(_))));
        assert!(registry.rollback("a").is_err());
        assert!(registry.register(version(3)).is_err(), "versions are numbered in order");
    }
}
