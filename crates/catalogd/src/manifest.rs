//! The manifest: everything the catalog knows about one dataset.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow_schema::Schema;
use lakehouse_shared::fingerprint::column_signature;
use lakehouse_shared::time::now_rfc3339;
use lakehouse_shared::{LakehouseError, Result, fingerprint};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub id: String,
    pub name: String,
    pub fingerprint: String,
    /// Human-readable columns: name, canonical type, nullability.
    pub columns: Vec<ColumnInfo>,
    /// The exact Arrow schema, as a hex-encoded IPC schema message.
    pub schema_ipc: String,
    /// From the table's own metadata (Delta log statistics), never a COUNT scan.
    pub row_count: Option<u64>,
    pub size_bytes: Option<u64>,
    pub version: i64,
    pub owner: String,
    pub sensitivity: String,
    pub column_tags: BTreeMap<String, String>,
    pub lineage: Vec<Lineage>,
    pub freshness_sla_hours: Option<f64>,
    pub created_at: String,
    pub updated_at: String,
    pub embeddings_stale: bool,
    pub last_embedded_at: Option<String>,
    pub has_vector_index: bool,
    pub tombstoned: bool,
    pub tombstoned_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

/// Where a version of the data came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lineage {
    pub source_system: String,
    pub ingest_job: String,
    pub source_hash: Option<String>,
    pub actor: String,
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default = "now_rfc3339")]
    pub at: String,
}

/// Table statistics read from the storage layer's metadata.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TableStats {
    pub row_count: Option<u64>,
    pub size_bytes: Option<u64>,
    pub version: i64,
}

impl Manifest {
    pub fn new(name: &str, schema: &Schema, stats: TableStats, lineage: Lineage) -> Result<Self> {
        let now = now_rfc3339();
        let mut m = Self {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            fingerprint: String::new(),
            columns: Vec::new(),
            schema_ipc: String::new(),
            row_count: None,
            size_bytes: None,
            version: 0,
            owner: lineage.actor.clone(),
            sensitivity: "Internal".into(),
            column_tags: BTreeMap::new(),
            lineage: vec![lineage],
            freshness_sla_hours: None,
            created_at: now.clone(),
            updated_at: now,
            embeddings_stale: false,
            last_embedded_at: None,
            has_vector_index: false,
            tombstoned: false,
            tombstoned_at: None,
        };
        m.set_schema(schema)?;
        m.apply_stats(stats);
        Ok(m)
    }

    pub fn set_schema(&mut self, schema: &Schema) -> Result<()> {
        self.fingerprint = fingerprint(schema);
        self.columns = schema
            .fields()
            .iter()
            .map(|f| ColumnInfo { name: f.name().clone(), data_type: column_signature(f) })
            .collect();
        self.schema_ipc = encode_schema(schema)?;
        Ok(())
    }

    pub fn schema(&self) -> Result<Schema> {
        decode_schema(&self.schema_ipc)
    }

    pub fn apply_stats(&mut self, stats: TableStats) {
        self.row_count = stats.row_count.or(self.row_count);
        self.size_bytes = stats.size_bytes.or(self.size_bytes);
        self.version = stats.version;
        if let Some(last) = self.lineage.last_mut() {
            last.version.get_or_insert(stats.version);
        }
    }

    /// Dedupe order: a known row count beats an unknown one, then newest update wins.
    pub fn dedupe_rank(&self) -> (bool, &str, &str) {
        (self.row_count.is_some(), self.updated_at.as_str(), self.id.as_str())
    }
}

fn encode_schema(schema: &Schema) -> Result<String> {
    let mut buf = Vec::new();
    StreamWriter::try_new(&mut buf, schema)?.finish()?;
    Ok(hex::encode(buf))
}

fn decode_schema(text: &str) -> Result<Schema> {
    let bytes = hex::decode(text).map_err(|e| LakehouseError::Internal(format!("manifest schema: {e}")))?;
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    Ok(Arc::unwrap_or_clone(reader.schema()))
}
