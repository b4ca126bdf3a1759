//! Bindings for journald.

use std::path::PathBuf;
use std::sync::Mutex;

use lakehouse_journald::{EventFilter, Journal, NewEvent};
use pyo3::prelude::*;

use crate::convert::{from_py, locked, to_py};
use crate::errors::IntoPyResult;

#[pyclass(name = "Journal", module = "lakehouse._core")]
pub struct PyJournal {
    inner: Mutex<Journal>,
}

#[pymethods]
impl PyJournal {
    #[new]
    fn new(data_dir: PathBuf) -> PyResult<Self> {
        Ok(Self { inner: Mutex::new(Journal::open(&data_dir).py()?) })
    }

    /// Append `{"actor", "operation", "dataset", "details"}`; returns the stored event.
    fn append<'py>(&self, py: Python<'py>, event: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let new: NewEvent = from_py(event)?;
        let stored = locked(py, &self.inner, |j| j.append(new)).py()?;
        to_py(py, &stored)
    }

    #[pyo3(signature = (dataset=None, actor=None, since=None, until=None, operation=None, limit=None))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        dataset: Option<String>,
        actor: Option<String>,
        since: Option<String>,
        until: Option<String>,
        operation: Option<String>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter = EventFilter { dataset, actor, operation, limit, ..Default::default() }
            .parse_times(since.as_deref(), until.as_deref())
            .py()?;
        let events = locked(py, &self.inner, |j| j.query(&filter));
        to_py(py, &events)
    }
}
