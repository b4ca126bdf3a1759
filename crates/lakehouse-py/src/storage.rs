//! Bindings for storaged: the data-dir lock, Delta tables, the append log.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lakehouse_storaged::{AppendLog, DataDirLock, FileLayout, TableStore, WriteMode};
use pyo3::prelude::*;

use crate::convert::{block_on, stream_from_py, to_py};
use crate::errors::IntoPyResult;

#[pyclass(name = "DataDirLock", module = "lakehouse._core")]
pub struct PyDataDirLock {
    inner: Mutex<DataDirLock>,
}

#[pymethods]
impl PyDataDirLock {
    #[new]
    fn new(data_dir: PathBuf) -> PyResult<Self> {
        Ok(Self { inner: Mutex::new(DataDirLock::acquire(&data_dir).py()?) })
    }

    fn release(&self) {
        self.inner.lock().expect("lock").release();
    }
}

#[pyclass(name = "Storage", module = "lakehouse._core")]
pub struct PyStorage {
    pub inner: Arc<TableStore>,
}

#[pymethods]
impl PyStorage {
    #[new]
    #[pyo3(signature = (data_dir, rescue_dir=None, row_group_rows=None))]
    fn new(data_dir: PathBuf, rescue_dir: Option<PathBuf>, row_group_rows: Option<usize>) -> PyResult<Self> {
        let mut layout = FileLayout::default();
        if let Some(rows) = row_group_rows {
            layout.row_group_rows = rows;
        }
        Ok(Self { inner: Arc::new(TableStore::open(&data_dir, rescue_dir.as_deref(), layout).py()?) })
    }

    /// Write any Arrow stream (pyarrow Table, RecordBatchReader, ...) as one commit,
    /// pulling batches as it goes; mode is "append" or "overwrite".
    fn write<'py>(
        &self,
        py: Python<'py>,
        name: String,
        data: &Bound<'py, PyAny>,
        mode: &str,
        metadata: HashMap<String, String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (schema, source) = stream_from_py(data)?;
        let mode: WriteMode = mode.parse().py()?;
        let store = self.inner.clone();
        let outcome = block_on(py, async move { store.write(&name, source, schema, mode, metadata, None).await }).py()?;
        to_py(py, &outcome)
    }

    fn table_info<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let store = self.inner.clone();
        let info = block_on(py, async move { store.info(&name).await }).py()?;
        to_py(py, &info)
    }

    fn history<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let store = self.inner.clone();
        let history = block_on(py, async move { store.history(&name).await }).py()?;
        to_py(py, &history)
    }

    fn optimize<'py>(&self, py: Python<'py>, name: String, target_size: u64) -> PyResult<Bound<'py, PyAny>> {
        let store = self.inner.clone();
        let report = block_on(py, async move { store.optimize(&name, target_size).await }).py()?;
        to_py(py, &report)
    }

    /// Update rows matching a SQL predicate; `assignments` maps column -> SQL expression.
    fn update<'py>(&self, py: Python<'py>, name: String, predicate: String, assignments: HashMap<String, String>) -> PyResult<Bound<'py, PyAny>> {
        let store = self.inner.clone();
        let pairs: Vec<(String, String)> = assignments.into_iter().collect();
        let change = block_on(py, async move { store.update(&name, &predicate, &pairs).await }).py()?;
        to_py(py, &change)
    }

    fn delete<'py>(&self, py: Python<'py>, name: String, predicate: String) -> PyResult<Bound<'py, PyAny>> {
        let store = self.inner.clone();
        let change = block_on(py, async move { store.delete(&name, &predicate).await }).py()?;
        to_py(py, &change)
    }

    #[pyo3(signature = (limit=None))]
    fn errors<'py>(&self, py: Python<'py>, limit: Option<usize>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.errors(limit))
    }

    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let store = self.inner.clone();
        let health = block_on(py, async move { store.health().await });
        to_py(py, &health)
    }

    /// Drop cached table handles so the next read goes to storage.
    #[pyo3(signature = (name=None))]
    fn forget(&self, name: Option<String>) {
        self.inner.forget(name.as_deref());
    }
}

#[pyclass(name = "AppendLog", module = "lakehouse._core")]
pub struct PyAppendLog {
    inner: Arc<tokio::sync::Mutex<AppendLog>>,
}

#[pymethods]
impl PyAppendLog {
    #[new]
    fn new(data_dir: PathBuf) -> PyResult<Self> {
        Ok(Self { inner: Arc::new(tokio::sync::Mutex::new(AppendLog::open(&data_dir).py()?)) })
    }

    /// Durably log JSON rows; returns the sequence number once fsync'd.
    fn append(&self, py: Python<'_>, storage: &PyStorage, dataset: String, rows: Vec<String>) -> PyResult<i64> {
        let (log, store) = (self.inner.clone(), storage.inner.clone());
        block_on(py, async move { log.lock().await.append(&store, &dataset, rows).await }).py()
    }

    fn pending_rows(&self, py: Python<'_>, dataset: String) -> usize {
        let log = self.inner.clone();
        block_on(py, async move { log.lock().await.pending_rows(&dataset) })
    }

    #[pyo3(signature = (storage, dataset=None))]
    fn flush<'py>(&self, py: Python<'py>, storage: &PyStorage, dataset: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let (log, store) = (self.inner.clone(), storage.inner.clone());
        let flushed = block_on(py, async move { log.lock().await.flush(&store, dataset.as_deref()).await }).py()?;
        to_py(py, &flushed)
    }

    fn replay<'py>(&self, py: Python<'py>, storage: &PyStorage) -> PyResult<Bound<'py, PyAny>> {
        let (log, store) = (self.inner.clone(), storage.inner.clone());
        let flushed = block_on(py, async move { log.lock().await.replay(&store).await }).py()?;
        to_py(py, &flushed)
    }
}
