//! Bindings for catalogd.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use arrow::datatypes::Schema;
use arrow_pyarrow::PyArrowType;
use lakehouse_catalogd::{Catalog, Lineage, Manifest, TableStats};
use pyo3::prelude::*;

use crate::convert::{from_py, locked, to_py};
use crate::errors::IntoPyResult;

#[pyclass(name = "Catalog", module = "lakehouse._core")]
pub struct PyCatalog {
    inner: Mutex<Catalog>,
}

/// A manifest as Python data, without the binary schema blob.
fn manifest_py<'py>(py: Python<'py>, m: &Manifest) -> PyResult<Bound<'py, PyAny>> {
    let mut value = serde_json::to_value(m).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("schema_ipc");
    }
    crate::convert::json_to_py(py, &value)
}

fn optional_manifest<'py>(py: Python<'py>, m: Option<&Manifest>) -> PyResult<Option<Bound<'py, PyAny>>> {
    m.map(|m| manifest_py(py, m)).transpose()
}

impl PyCatalog {
    /// Run `f` on the catalog through [`locked`]: never awaited with the GIL held, and
    /// results become Python objects only after the lock is dropped.
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Catalog) -> T + Send) -> T {
        locked(py, &self.inner, f)
    }
}

#[pymethods]
impl PyCatalog {
    #[new]
    fn new(data_dir: PathBuf) -> PyResult<Self> {
        Ok(Self { inner: Mutex::new(Catalog::open(&data_dir).py()?) })
    }

    fn get<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let m = self.with(py, |c| c.get(name).cloned()).py()?;
        manifest_py(py, &m)
    }

    fn get_live<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let m = self.with(py, |c| c.get_live(name).cloned());
        optional_manifest(py, m.as_ref())
    }

    /// Raise `SchemaConflict` if `schema` differs from the registered one; return the
    /// live manifest (or None for a new name). Writes nothing.
    fn check<'py>(&self, py: Python<'py>, name: &str, schema: PyArrowType<Schema>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let m = self.with(py, |c| c.check(name, &schema.0).map(|m| m.cloned())).py()?;
        optional_manifest(py, m.as_ref())
    }

    #[pyo3(signature = (include_tombstoned=false))]
    fn list<'py>(&self, py: Python<'py>, include_tombstoned: bool) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let all: Vec<Manifest> = self.with(py, |c| c.list(include_tombstoned).into_iter().cloned().collect());
        all.iter().map(|m| manifest_py(py, m)).collect()
    }

    #[pyo3(signature = (include_tombstoned=false))]
    fn names(&self, py: Python<'_>, include_tombstoned: bool) -> Vec<String> {
        self.with(py, |c| c.list(include_tombstoned).into_iter().map(|m| m.name.clone()).collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn register<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        schema: PyArrowType<Schema>,
        row_count: u64,
        version: i64,
        size_bytes: u64,
        lineage: &Bound<'py, PyAny>,
        replace: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let lineage: Lineage = from_py(lineage)?;
        let stats = TableStats { row_count: Some(row_count), size_bytes: Some(size_bytes), version };
        let m = self.with(py, |c| c.register(name, &schema.0, stats, lineage, replace)).py()?;
        manifest_py(py, &m)
    }

    fn update_stats<'py>(&self, py: Python<'py>, name: &str, row_count: u64, version: i64, size_bytes: u64) -> PyResult<Bound<'py, PyAny>> {
        let stats = TableStats { row_count: Some(row_count), size_bytes: Some(size_bytes), version };
        let m = self.with(py, |c| c.update_stats(name, stats)).py()?;
        manifest_py(py, &m)
    }

    fn tombstone<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let m = self.with(py, |c| c.tombstone(name)).py()?;
        manifest_py(py, &m)
    }

    fn restore<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let m = self.with(py, |c| c.restore(name)).py()?;
        manifest_py(py, &m)
    }

    fn dedupe<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let report = self.with(py, |c| c.dedupe()).py()?;
        to_py(py, &report)
    }

    fn mark_embeddings_stale<'py>(&self, py: Python<'py>, name: &str, stale: bool) -> PyResult<Bound<'py, PyAny>> {
        let m = self.with(py, |c| c.mark_embeddings_stale(name, stale)).py()?;
        manifest_py(py, &m)
    }

    fn record_embedded<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let m = self.with(py, |c| c.record_embedded(name)).py()?;
        manifest_py(py, &m)
    }

    fn set_tags<'py>(&self, py: Python<'py>, name: &str, sensitivity: &str, column_tags: BTreeMap<String, String>) -> PyResult<Bound<'py, PyAny>> {
        let m = self.with(py, |c| c.set_tags(name, sensitivity, column_tags)).py()?;
        manifest_py(py, &m)
    }

    fn seen_hash<'py>(&self, py: Python<'py>, hash: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let seen = self.with(py, |c| c.seen_hash(hash).cloned());
        seen.map(|s| to_py(py, &s)).transpose()
    }

    fn record_hash(&self, py: Python<'_>, hash: &str, dataset: &str, version: i64) -> PyResult<()> {
        self.with(py, |c| c.record_hash(hash, dataset, version)).py()
    }
}
