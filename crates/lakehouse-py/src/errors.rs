//! The one mapping from `LakehouseError` variants to Python exception classes.

use lakehouse_shared::LakehouseError as CoreError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use crate::convert::json_to_py;

create_exception!(lakehouse._core, LakehouseError, PyException, "Base class of every Lakehouse error.");
create_exception!(lakehouse._core, SchemaConflict, LakehouseError, "Same dataset name, different schema fingerprint (HTTP 409).");
create_exception!(lakehouse._core, NotFound, LakehouseError, "No such dataset, version or object (HTTP 404).");
create_exception!(lakehouse._core, ReadOnlyViolation, LakehouseError, "SQL tried to change state or read files (HTTP 400).");
create_exception!(lakehouse._core, InvalidInput, LakehouseError, "The request or data cannot be accepted (HTTP 400).");
create_exception!(lakehouse._core, BucketUnavailable, LakehouseError, "A storage bucket failed (HTTP 503).");
create_exception!(lakehouse._core, DataDirLocked, LakehouseError, "Another process owns the data directory (HTTP 423).");
create_exception!(lakehouse._core, SourceUnavailable, LakehouseError, "The source feeding an ingest failed; nothing was written (HTTP 502).");

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("LakehouseError", py.get_type::<LakehouseError>())?;
    m.add("SchemaConflict", py.get_type::<SchemaConflict>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("ReadOnlyViolation", py.get_type::<ReadOnlyViolation>())?;
    m.add("InvalidInput", py.get_type::<InvalidInput>())?;
    m.add("BucketUnavailable", py.get_type::<BucketUnavailable>())?;
    m.add("DataDirLocked", py.get_type::<DataDirLocked>())?;
    m.add("SourceUnavailable", py.get_type::<SourceUnavailable>())?;
    Ok(())
}

/// Convert a core error; structured details ride along as the exception's second arg.
pub fn to_py(e: CoreError) -> PyErr {
    Python::attach(|py| {
        let class = exception_class(py, &e);
        let message = e.to_string();
        match e.details().and_then(|d| json_to_py(py, &d).ok()) {
            Some(details) => PyErr::from_type(class, (message, details.unbind())),
            None => PyErr::from_type(class, (message,)),
        }
    })
}

fn exception_class<'py>(py: Python<'py>, e: &CoreError) -> Bound<'py, pyo3::types::PyType> {
    match e {
        CoreError::SchemaConflict { .. } => py.get_type::<SchemaConflict>(),
        CoreError::NotFound(_) => py.get_type::<NotFound>(),
        CoreError::ReadOnlyViolation(_) => py.get_type::<ReadOnlyViolation>(),
        CoreError::InvalidInput(_) => py.get_type::<InvalidInput>(),
        CoreError::BucketUnavailable { .. } => py.get_type::<BucketUnavailable>(),
        CoreError::DataDirLocked { .. } => py.get_type::<DataDirLocked>(),
        CoreError::SourceFailed(_) => py.get_type::<SourceUnavailable>(),
        CoreError::Internal(_) => py.get_type::<LakehouseError>(),
    }
}

pub trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for lakehouse_shared::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
