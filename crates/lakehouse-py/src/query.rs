//! Bindings for queryd: results come back as `pyarrow.Table` over the C data interface.

use std::sync::Arc;

use lakehouse_queryd::{HotCacheConfig, QueryEngine};
use lakehouse_shared::time::parse_instant;
use pyo3::prelude::*;

use crate::convert::{block_on, table_to_py, to_py};
use crate::errors::IntoPyResult;
use crate::storage::PyStorage;

#[pyclass(name = "QueryEngine", module = "lakehouse._core")]
pub struct PyQueryEngine {
    inner: Arc<QueryEngine>,
}

#[pymethods]
impl PyQueryEngine {
    #[new]
    fn new(storage: &PyStorage, max_table_bytes: u64, budget_bytes: u64, min_hits: u32, target_partitions: usize) -> Self {
        let cache = HotCacheConfig { max_table_bytes, budget_bytes, min_hits };
        Self { inner: Arc::new(QueryEngine::new(storage.inner.clone(), cache, target_partitions)) }
    }

    fn sync(&self, py: Python<'_>, live: Vec<String>) -> PyResult<()> {
        let engine = self.inner.clone();
        block_on(py, async move { engine.sync(&live).await }).py()
    }

    fn refresh(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let engine = self.inner.clone();
        block_on(py, async move { engine.refresh(&name).await }).py()
    }

    fn deregister(&self, name: &str) -> PyResult<()> {
        self.inner.deregister(name).py()
    }

    /// (pyarrow.Table, whether the query read a table from the rescue bucket): the flag
    /// travels with its own result, so concurrent queries never see each other's.
    fn sql<'py>(&self, py: Python<'py>, sql: String) -> PyResult<(Bound<'py, PyAny>, bool)> {
        let engine = self.inner.clone();
        let result = block_on(py, async move { engine.sql(&sql).await }).py()?;
        Ok((table_to_py(py, result.schema, result.batches)?, result.rescue_used))
    }

    #[pyo3(signature = (sql, dataset, version=None, timestamp=None))]
    fn sql_as_of<'py>(&self, py: Python<'py>, sql: String, dataset: String, version: Option<i64>, timestamp: Option<String>) -> PyResult<(Bound<'py, PyAny>, bool)> {
        let at = timestamp.as_deref().map(parse_instant).transpose().py()?;
        let engine = self.inner.clone();
        let result = block_on(py, async move { engine.sql_as_of(&sql, &dataset, version, at).await }).py()?;
        Ok((table_to_py(py, result.schema, result.batches)?, result.rescue_used))
    }

    /// `(table, rescue flag)` of `sql` over the rows of `dataset` appended since
    /// `version`, or None when later commits did more than append.
    fn sql_appended_since<'py>(&self, py: Python<'py>, sql: String, dataset: String, version: i64) -> PyResult<Option<(Bound<'py, PyAny>, bool)>> {
        let engine = self.inner.clone();
        let result = block_on(py, async move { engine.sql_appended_since(&sql, &dataset, version).await }).py()?;
        result.map(|r| Ok((table_to_py(py, r.schema, r.batches)?, r.rescue_used))).transpose()
    }

    /// `(table, rescue flag)`: the rows of `dataset` whose `key_column`, as text, is one
    /// of `keys`, in the order of the keys, with only `columns` (all when empty), and
    /// whose text columns in `equal` hold one of the values paired with them.
    #[pyo3(signature = (dataset, key_column, keys, columns=Vec::new(), equal=Vec::new()))]
    fn lookup<'py>(&self, py: Python<'py>, dataset: String, key_column: String, keys: Vec<String>, columns: Vec<String>,
                   equal: Vec<(String, Vec<String>)>) -> PyResult<(Bound<'py, PyAny>, bool)> {
        let engine = self.inner.clone();
        let result = block_on(py, async move { engine.lookup(&dataset, &key_column, &keys, &columns, &equal).await }).py()?;
        Ok((table_to_py(py, result.schema, result.batches)?, result.rescue_used))
    }

    fn last_rescue_used(&self) -> bool {
        self.inner.last_rescue_used()
    }

    fn cache_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.cache_stats())
    }
}
