//! Conversions between Rust values and Python objects, and the shared runtime.

use std::sync::OnceLock;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ffi_stream::ArrowArrayStreamReader;
use arrow_pyarrow::{FromPyArrow, IntoPyArrow, PyArrowType, Table};
use pyo3::prelude::*;
use pyo3::types::PyModule;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::errors::IntoPyResult;

/// One tokio runtime for the process; blocking calls run on it with the GIL released.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("lakehouse-core").build().expect("tokio runtime")
    })
}

/// Run a future to completion without holding the GIL.
pub fn block_on<F: std::future::Future + Send>(py: Python<'_>, fut: F) -> F::Output
where
    F::Output: Send,
{
    py.detach(|| runtime().block_on(fut))
}

pub fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    PyModule::import(py, "json")?.call_method1("loads", (text,))
}

/// Any serialisable Rust value as plain Python data (dicts, lists, str, int, ...).
pub fn to_py<'py, T: Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    json_to_py(py, &json)
}

/// Plain Python data as a Rust value.
pub fn from_py<T: DeserializeOwned>(obj: &Bound<'_, PyAny>) -> PyResult<T> {
    let text: String = PyModule::import(obj.py(), "json")?.call_method1("dumps", (obj, ))?.extract()?;
    serde_json::from_str(&text).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

/// Import any Arrow stream producer (pyarrow.Table, RecordBatchReader, ...) via the
/// C stream interface: buffers are shared, not copied.
pub fn table_from_py(obj: &Bound<'_, PyAny>) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
    let table = Table::from_pyarrow_bound(obj)?;
    let (batches, schema) = table.into_inner();
    Ok((schema, batches))
}

/// Import any Arrow stream producer as a lazy batch source (nothing is read yet).
pub fn stream_from_py(obj: &Bound<'_, PyAny>) -> PyResult<(SchemaRef, lakehouse_storaged::BatchSource)> {
    let reader = ArrowArrayStreamReader::from_pyarrow_bound(obj)?;
    let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
    Ok((schema, Box::new(reader)))
}

pub fn table_to_py<'py>(py: Python<'py>, schema: SchemaRef, batches: Vec<RecordBatch>) -> PyResult<Bound<'py, PyAny>> {
    let table = Table::try_new(batches, schema).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    table.into_pyarrow(py)
}

#[pyfunction]
pub fn fingerprint(schema: PyArrowType<Schema>) -> String {
    lakehouse_shared::fingerprint(&schema.0)
}

/// The schema a table with this schema is stored with.
#[pyfunction]
pub fn storage_schema(schema: PyArrowType<Schema>) -> PyResult<PyArrowType<Schema>> {
    Ok(PyArrowType(lakehouse_shared::arrow_helpers::storage_schema(&schema.0).py()?))
}

#[pyfunction]
pub fn schema_diff<'py>(py: Python<'py>, existing: PyArrowType<Schema>, incoming: PyArrowType<Schema>) -> PyResult<Bound<'py, PyAny>> {
    to_py(py, &lakehouse_shared::schema_diff(&existing.0, &incoming.0))
}

/// SHA-256 of an Arrow table's IPC stream (identical data -> identical hash).
#[pyfunction]
pub fn table_hash(py: Python<'_>, table: &Bound<'_, PyAny>) -> PyResult<String> {
    let (schema, batches) = table_from_py(table)?;
    py.detach(|| lakehouse_shared::arrow_helpers::table_hash(&schema, &batches)).py()
}


/// Tag the columns of a sample (pyarrow Table or RecordBatch) as PII / PHI / Financial.
#[pyfunction]
pub fn pii_scan<'py>(py: Python<'py>, sample: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let (schema, batches) = table_from_py(sample)?;
    let batch = arrow::compute::concat_batches(&schema, &batches).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let report = py.detach(|| lakehouse_shared::pii::scan(&batch));
    let mut value = serde_json::to_value(&report).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    value["column_labels"] = serde_json::to_value(report.column_labels()).unwrap_or_default();
    json_to_py(py, &value)
}

/// Run `f` on the value behind `mutex` with the GIL released: the lock is never awaited
/// while holding the GIL, and callers convert the result to Python only after it is
/// dropped. Holding a lock while building Python objects can deadlock: Python may hand
/// the GIL to another thread mid-conversion, and if that thread then waits for the same
/// lock while holding the GIL, neither moves. Every lock in the bindings goes through here.
pub fn locked<T: Send, R: Send>(py: Python<'_>, mutex: &std::sync::Mutex<T>, f: impl FnOnce(&mut T) -> R + Send) -> R {
    py.detach(|| f(&mut mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)))
}
