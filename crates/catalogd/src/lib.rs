//! The catalog: the metadata authority for datasets.
//!
//! One JSON manifest per dataset under `<data_dir>/_catalog/manifests/<id>.json`,
//! written atomically (temp file, fsync, rename), plus a seen-hash log that makes
//! re-ingesting identical bytes a no-op. Registration is idempotent on
//! (name, schema fingerprint); the same name with another fingerprint is a
//! `SchemaConflict` naming both fingerprints and the column diff.

mod manifest;
mod persist;
mod seen;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_schema::Schema;
use lakehouse_shared::time::now_rfc3339;
use lakehouse_shared::{LakehouseError, Result, fingerprint, schema_diff};
use serde::Serialize;

pub use manifest::{Lineage, Manifest, TableStats};
pub use seen::SeenHash;

pub struct Catalog {
    dir: PathBuf,
    manifests: BTreeMap<String, Manifest>, // by manifest id
    seen: seen::SeenLog,
}

/// What `dedupe` did: per duplicated name, the winner and the manifests removed.
#[derive(Debug, Serialize, Default)]
pub struct DedupeReport {
    pub groups: Vec<DedupeGroup>,
    pub removed: usize,
}

#[derive(Debug, Serialize)]
pub struct DedupeGroup {
    pub name: String,
    pub winner: String,
    pub removed: Vec<String>,
}

impl Catalog {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("_catalog");
        let manifests = persist::load_all(&dir.join("manifests"))?;
        let seen = seen::SeenLog::open(&dir.join("seen_hashes.jsonl"))?;
        Ok(Self { dir, manifests, seen })
    }

    /// The live manifest for `name`; if duplicates exist (see `dedupe`), the one
    /// dedupe would keep.
    pub fn get_live(&self, name: &str) -> Option<&Manifest> {
        self.candidates(name).filter(|m| !m.tombstoned).max_by(|a, b| a.dedupe_rank().cmp(&b.dedupe_rank()))
    }

    /// The manifest for `name`, live or tombstoned.
    pub fn get(&self, name: &str) -> Result<&Manifest> {
        self.get_live(name)
            .or_else(|| self.candidates(name).max_by(|a, b| a.dedupe_rank().cmp(&b.dedupe_rank())))
            .ok_or_else(|| LakehouseError::NotFound(format!("dataset '{name}' is not in the catalog")))
    }

    fn candidates(&self, name: &str) -> impl Iterator<Item = &Manifest> + use<'_> {
        let name = name.to_string();
        self.manifests.values().filter(move |m| m.name == name)
    }

    /// One manifest per name (the winner), sorted by name.
    pub fn list(&self, include_tombstoned: bool) -> Vec<&Manifest> {
        let mut names: Vec<&str> = self.manifests.values().map(|m| m.name.as_str()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|n| self.get(n).ok())
            .filter(|m| include_tombstoned || !m.tombstoned)
            .collect()
    }

    pub fn live_names(&self) -> Vec<String> {
        self.list(false).into_iter().map(|m| m.name.clone()).collect()
    }

    /// Would registering `schema` under `name` be accepted? Returns the live manifest
    /// if one exists. Called before any bytes are written, so a conflict writes nothing.
    pub fn check(&self, name: &str, schema: &Schema) -> Result<Option<&Manifest>> {
        let Some(existing) = self.get_live(name) else {
            if self.candidates(name).next().is_some() {
                return Err(LakehouseError::InvalidInput(format!(
                    "dataset '{name}' is tombstoned: restore it first or ingest under another name"
                )));
            }
            return Ok(None);
        };
        let incoming = fingerprint(schema);
        if incoming != existing.fingerprint {
            let current = existing.schema()?;
            return Err(LakehouseError::SchemaConflict {
                dataset: name.to_string(),
                existing_fingerprint: existing.fingerprint.clone(),
                incoming_fingerprint: incoming,
                diff: schema_diff(&current, schema),
            });
        }
        Ok(Some(existing))
    }

    /// Idempotent register (see crate docs). `replace` accepts a new schema for an
    /// existing name: the caller has atomically replaced the table's content.
    pub fn register(&mut self, name: &str, schema: &Schema, stats: TableStats, lineage: Lineage, replace: bool) -> Result<Manifest> {
        let existing_id = if replace {
            self.get_live(name).map(|m| m.id.clone())
        } else {
            self.check(name, schema)?.map(|m| m.id.clone())
        };
        let manifest = match existing_id {
            Some(id) => {
                let m = self.manifests.get_mut(&id).expect("id came from the map");
                if replace {
                    m.set_schema(schema)?;
                }
                m.apply_stats(stats);
                m.lineage.push(lineage);
                m.updated_at = now_rfc3339();
                m.clone()
            }
            None => Manifest::new(name, schema, stats, lineage)?,
        };
        self.save(manifest)
    }

    /// Record new table statistics; unchanged statistics leave the manifest untouched
    /// (so reopening a data directory changes nothing).
    pub fn update_stats(&mut self, name: &str, stats: TableStats) -> Result<Manifest> {
        let current = self.get_live(name).ok_or_else(|| LakehouseError::NotFound(format!("dataset '{name}' does not exist or is tombstoned")))?;
        if current.row_count == stats.row_count && current.version == stats.version && current.size_bytes == stats.size_bytes {
            return Ok(current.clone());
        }
        self.modify(name, |m| m.apply_stats(stats))
    }

    pub fn tombstone(&mut self, name: &str) -> Result<Manifest> {
        let id = self.live_id(name)?;
        self.modify_id(&id, |m| {
            m.tombstoned = true;
            m.tombstoned_at = Some(now_rfc3339());
        })
    }

    pub fn restore(&mut self, name: &str) -> Result<Manifest> {
        if self.get_live(name).is_some() {
            return Err(LakehouseError::InvalidInput(format!("dataset '{name}' is not tombstoned")));
        }
        let id = self.get(name)?.id.clone();
        self.modify_id(&id, |m| {
            m.tombstoned = false;
            m.tombstoned_at = None;
        })
    }

    pub fn mark_embeddings_stale(&mut self, name: &str, stale: bool) -> Result<Manifest> {
        self.modify(name, |m| m.embeddings_stale = stale)
    }

    pub fn record_embedded(&mut self, name: &str) -> Result<Manifest> {
        self.modify(name, |m| {
            m.embeddings_stale = false;
            m.has_vector_index = true;
            m.last_embedded_at = Some(now_rfc3339());
        })
    }

    /// Set sensitivity and per-column tags (PII tagging fills these).
    pub fn set_tags(&mut self, name: &str, sensitivity: &str, column_tags: BTreeMap<String, String>) -> Result<Manifest> {
        self.modify(name, |m| {
            m.sensitivity = sensitivity.to_string();
            m.column_tags = column_tags;
        })
    }

    /// Collapse manifests that share a name: keep the one with a known row count,
    /// then the newest `updated_at`; delete the others. Running it again is a no-op.
    pub fn dedupe(&mut self) -> Result<DedupeReport> {
        let mut by_name: BTreeMap<String, Vec<&Manifest>> = BTreeMap::new();
        for m in self.manifests.values() {
            by_name.entry(m.name.clone()).or_default().push(m);
        }
        let mut report = DedupeReport::default();
        for (name, mut group) in by_name.into_iter().filter(|(_, g)| g.len() > 1) {
            group.sort_by(|a, b| b.dedupe_rank().cmp(&a.dedupe_rank()));
            let removed = group[1..].iter().map(|m| m.id.clone()).collect::<Vec<_>>();
            report.groups.push(DedupeGroup { name, winner: group[0].id.clone(), removed });
        }
        for group in &report.groups {
            for id in &group.removed {
                persist::remove(&self.manifest_dir(), id)?;
                self.manifests.remove(id);
                report.removed += 1;
            }
        }
        Ok(report)
    }

    pub fn seen_hash(&self, hash: &str) -> Option<&SeenHash> {
        self.seen.get(hash)
    }

    pub fn record_hash(&mut self, hash: &str, dataset: &str, version: i64) -> Result<()> {
        self.seen.record(hash, dataset, version)
    }

    /// Insert a manifest exactly as given (used to import catalogs and by tests that
    /// need duplicates, which normal registration never creates).
    pub fn import(&mut self, manifest: Manifest) -> Result<Manifest> {
        self.save(manifest)
    }

    fn live_id(&self, name: &str) -> Result<String> {
        self.get_live(name)
            .map(|m| m.id.clone())
            .ok_or_else(|| LakehouseError::NotFound(format!("dataset '{name}' does not exist or is tombstoned")))
    }

    fn modify(&mut self, name: &str, change: impl FnOnce(&mut Manifest)) -> Result<Manifest> {
        let id = self.live_id(name)?;
        self.modify_id(&id, change)
    }

    fn modify_id(&mut self, id: &str, change: impl FnOnce(&mut Manifest)) -> Result<Manifest> {
        let mut m = self.manifests.get(id).cloned().expect("caller resolved the id");
        change(&mut m);
        m.updated_at = now_rfc3339();
        self.save(m)
    }

    fn manifest_dir(&self) -> PathBuf {
        self.dir.join("manifests")
    }

    fn save(&mut self, manifest: Manifest) -> Result<Manifest> {
        persist::write_atomic(&self.manifest_dir(), &manifest)?;
        self.manifests.insert(manifest.id.clone(), manifest.clone());
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests;
