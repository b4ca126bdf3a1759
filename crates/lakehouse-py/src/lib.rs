//! `lakehouse._core`: the pyo3 bindings.
//!
//! This crate converts types and releases the GIL; it holds no logic. Each class
//! wraps one crate: `Storage` (storaged), `Catalog` (catalogd), `Journal`
//! (journald), `QueryEngine` (queryd), `AppendLog` (storaged), `DataDirLock`,
//! `Embedder` / `HnswIndex` / `IndexRegistry` (vectord).

mod catalog;
mod convert;
mod errors;
mod journal;
mod query;
mod storage;
mod vectors;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<storage::PyDataDirLock>()?;
    m.add_class::<storage::PyStorage>()?;
    m.add_class::<storage::PyAppendLog>()?;
    m.add_class::<catalog::PyCatalog>()?;
    m.add_class::<journal::PyJournal>()?;
    m.add_class::<query::PyQueryEngine>()?;
    m.add_class::<vectors::PyEmbedder>()?;
    m.add_class::<vectors::PyHnswIndex>()?;
    m.add_class::<vectors::PyIndexRegistry>()?;
    m.add_class::<vectors::PyPlaybookMemory>()?;
    m.add_class::<vectors::PyBoosts>()?;
    m.add_class::<vectors::PyEmbeddingCache>()?;
    m.add_function(wrap_pyfunction!(convert::fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(convert::storage_schema, m)?)?;
    m.add_function(wrap_pyfunction!(convert::schema_diff, m)?)?;
    m.add_function(wrap_pyfunction!(convert::table_hash, m)?)?;
    m.add_function(wrap_pyfunction!(convert::pii_scan, m)?)?;
    m.add_function(wrap_pyfunction!(vectors::chunk_keys, m)?)?;
    m.add_function(wrap_pyfunction!(vectors::first_chunk_keys, m)?)?;
    m.add_function(wrap_pyfunction!(vectors::chunk_documents, m)?)?;
    Ok(())
}
