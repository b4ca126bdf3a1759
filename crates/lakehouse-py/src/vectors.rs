//! Bindings for vectord. Vectors and keys cross as little-endian bytes (`numpy.tobytes()`
//! / `numpy.frombuffer`): one memcpy, no per-element Python objects, and no dependency on
//! numpy's C API from the abi3 module.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::array::{make_array, Array, ArrayData, ArrayRef, AsArray, Int32Array, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow_pyarrow::PyArrowType;
use pyo3::exceptions::PyValueError;

use lakehouse_shared::LakehouseError;
use lakehouse_vectord::playbook::{BoostQuery, BoostResult, CompactionPolicy, NewPlaybook, WorkerBoost};
use lakehouse_vectord::{CachedEmbedder, EmbeddingCache, HnswIndex, HnswParams, IndexRegistry, IndexVersion, LayeredIndex, MiniLmEmbedder, PlannerConfig, PlaybookMemory, Precision};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::convert::{from_py, locked, to_py};
use crate::errors::IntoPyResult;

fn floats(bytes: &[u8]) -> PyResult<Vec<f32>> {
    if bytes.len() % 4 != 0 {
        return Err(crate::errors::to_py(LakehouseError::invalid("float32 buffer length is not a multiple of 4")));
    }
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
}

fn keys(bytes: &[u8]) -> PyResult<Vec<u64>> {
    if bytes.len() % 8 != 0 {
        return Err(crate::errors::to_py(LakehouseError::invalid("uint64 buffer length is not a multiple of 8")));
    }
    Ok(bytes.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().unwrap())).collect())
}

fn float_bytes<'py>(py: Python<'py>, values: &[f32]) -> Bound<'py, PyBytes> {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    PyBytes::new(py, &raw)
}

#[pyclass(name = "Embedder", module = "lakehouse._core")]
pub struct PyEmbedder {
    inner: CachedEmbedder,
}

#[pymethods]
impl PyEmbedder {
    /// Load the model from `model_dir`; with `cache_dir`, texts are never embedded twice.
    /// `precision`: "auto" (the fastest this CPU runs), "f32", "f16", "bf16" or "i16".
    #[new]
    #[pyo3(signature = (model_dir, model_id, cache_dir=None, precision="auto"))]
    fn new(py: Python<'_>, model_dir: PathBuf, model_id: String, cache_dir: Option<PathBuf>, precision: &str) -> PyResult<Self> {
        let precision: Precision = precision.parse().map_err(|e: String| crate::errors::to_py(LakehouseError::invalid(e)))?;
        py.detach(|| {
            let model = MiniLmEmbedder::load(&model_dir, &model_id, precision)?;
            let cache = cache_dir.map(|dir| EmbeddingCache::open(&dir, &model_id, model.dim())).transpose()?;
            Ok::<_, LakehouseError>(Self { inner: CachedEmbedder::new(model, cache) })
        })
        .py()
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.model().dim()
    }

    #[getter]
    fn model_id(&self) -> &str {
        self.inner.model().model_id()
    }

    /// The arithmetic of queries and small batches: "f32", "f16", "bf16" or "i16".
    #[getter]
    fn precision(&self) -> &'static str {
        self.inner.model().precision().as_str()
    }

    /// The arithmetic of large batches (under "auto", whichever ran faster here).
    #[getter]
    fn batch_precision(&self) -> &'static str {
        self.inner.model().batch_precision().as_str()
    }

    /// Returns (float32 bytes of len(texts) x dim, stats dict).
    fn embed<'py>(&self, py: Python<'py>, texts: Vec<String>) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyAny>)> {
        let (vectors, stats) = py
            .detach(|| {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                self.inner.embed(&refs)
            })
            .py()?;
        Ok((float_bytes(py, &vectors), to_py(py, &stats)?))
    }
}

/// One index version: the saved graph plus the segment a refresh wrote on top of it.
#[pyclass(name = "HnswIndex", module = "lakehouse._core")]
pub struct PyHnswIndex {
    inner: LayeredIndex,
}

#[pymethods]
impl PyHnswIndex {
    #[staticmethod]
    fn build(py: Python<'_>, dim: usize, keys_le: &[u8], vectors_le: &[u8], params: &Bound<'_, PyAny>, threads: usize) -> PyResult<Self> {
        let params: HnswParams = from_py(params)?;
        let (keys, vectors) = (keys(keys_le)?, floats(vectors_le)?);
        let graph = py.detach(|| HnswIndex::build(dim, params, &keys, &vectors, threads)).py()?;
        Ok(Self { inner: LayeredIndex::from_graph(graph) })
    }

    /// The HNSW settings as the core reads them, defaults filled in; a ValueError names
    /// what it cannot read (so callers refuse bad settings before any work).
    #[staticmethod]
    fn read_params<'py>(py: Python<'py>, params: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let params: HnswParams = from_py(params)?;
        to_py(py, &params)
    }

    /// Open a saved graph; `segment` is the file of rows a refresh put on top of it;
    /// `keys_le` (the version's keys), for a mapped graph, the vectors its exact scans keep
    /// in one matrix.
    #[staticmethod]
    #[pyo3(signature = (path, mmap, params, segment=None, keys_le=None))]
    fn open(py: Python<'_>, path: PathBuf, mmap: bool, params: &Bound<'_, PyAny>, segment: Option<PathBuf>, keys_le: Option<&[u8]>) -> PyResult<Self> {
        let params: HnswParams = from_py(params)?;
        let keys: Option<Vec<u64>> = keys_le.map(keys).transpose()?;
        let inner = py.detach(|| LayeredIndex::open(&path, segment.as_deref(), mmap, params, keys.as_deref())).py()?;
        Ok(Self { inner })
    }

    /// Save the graph (the segment, if any, is saved by `write_segment`).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.inner.graph().save(&path)).py()
    }

    /// Write this version's segment plus these changes to `path`; returns (segment rows,
    /// hidden graph keys).
    fn write_segment(&self, py: Python<'_>, path: PathBuf, keys_le: &[u8], vectors_le: &[u8], removed_le: &[u8]) -> PyResult<(usize, usize)> {
        let (keys, vectors, removed) = (keys(keys_le)?, floats(vectors_le)?, keys(removed_le)?);
        py.detach(|| self.inner.write_segment(&path, &keys, &vectors, &removed)).py()
    }

    /// Merge the segment into the graph (the graph must be opened loaded, not mapped).
    fn fold_segment(&mut self, py: Python<'_>, threads: usize) -> PyResult<()> {
        let inner = &mut self.inner;
        py.detach(|| inner.fold_segment(threads)).py()
    }

    #[getter]
    fn segment_rows(&self) -> usize {
        self.inner.segment_rows()
    }

    /// Vectors the exact scans read from the contiguous copy (0: they ask usearch per key).
    #[getter]
    fn rows_held(&self) -> usize {
        self.inner.graph().rows_held()
    }

    /// Whose traversal answers searches: "copy" (the core's own copy of a mapped f32
    /// graph, ADR-034), "copying" (usearch, while that copy is gathered in the background)
    /// or "usearch".
    #[getter]
    fn traversal(&self) -> &'static str {
        let graph = self.inner.graph();
        if graph.traverses_copy() {
            "copy"
        } else if graph.copying_graph() {
            "copying"
        } else {
            "usearch"
        }
    }

    /// Block until the graph copy gathered in the background is in (at once without one).
    fn wait_for_graph_copy(&self, py: Python<'_>) {
        let graph = self.inner.graph();
        py.detach(|| graph.wait_for_graph_copy());
    }

    /// The SIMD kernels the engine uses on this CPU, for diagnostics and benchmarks.
    #[getter]
    fn simd(&self) -> String {
        self.inner.graph().simd()
    }

    fn add(&self, py: Python<'_>, keys_le: &[u8], vectors_le: &[u8], threads: usize) -> PyResult<()> {
        let (keys, vectors) = (keys(keys_le)?, floats(vectors_le)?);
        py.detach(|| self.inner.add(&keys, &vectors, threads)).py()
    }

    fn remove(&self, py: Python<'_>, keys_le: &[u8]) -> PyResult<usize> {
        let keys = keys(keys_le)?;
        py.detach(|| self.inner.remove(&keys)).py()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.graph().dim()
    }

    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.graph().params())
    }

    fn contains(&self, key: u64) -> bool {
        self.inner.contains(key)
    }

    fn vector<'py>(&self, py: Python<'py>, key: u64) -> Option<Bound<'py, PyBytes>> {
        self.inner.vector(key).map(|v| float_bytes(py, &v))
    }

    /// Planned top-k search: (keys uint64 LE bytes, scores float32 LE bytes, path,
    /// candidates, shortfall). Plain bytes and scalars: this is the per-query hot path.
    #[pyo3(signature = (query_le, k, allowed_le=None, planner=None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        query_le: &[u8],
        k: usize,
        allowed_le: Option<&[u8]>,
        planner: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, &'static str, usize, usize)> {
        let query = floats(query_le)?;
        let allowed: Option<Vec<u64>> = allowed_le.map(keys).transpose()?;
        let config: PlannerConfig = match planner {
            Some(p) if !p.is_none() => from_py(p)?,
            _ => PlannerConfig::default(),
        };
        let planned = py.detach(|| self.inner.search(&query, k, allowed.as_deref(), &config)).py()?;
        let keys: Vec<u8> = planned.hits.iter().flat_map(|(key, _)| key.to_le_bytes()).collect();
        let scores: Vec<f32> = planned.hits.iter().map(|(_, score)| *score).collect();
        Ok((PyBytes::new(py, &keys), float_bytes(py, &scores), planned.path.as_str(), planned.candidates, planned.shortfall))
    }
}

#[pyclass(name = "IndexRegistry", module = "lakehouse._core")]
pub struct PyIndexRegistry {
    inner: Mutex<IndexRegistry>,
}

#[pymethods]
impl PyIndexRegistry {
    #[new]
    fn new(dir: PathBuf) -> PyResult<Self> {
        Ok(Self { inner: Mutex::new(IndexRegistry::open(&dir).py()?) })
    }

    fn active<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = locked(py, &self.inner, |r| r.active().cloned());
        to_py(py, &value)
    }

    fn versions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = locked(py, &self.inner, |r| r.versions().to_vec());
        to_py(py, &value)
    }

    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = locked(py, &self.inner, |r| r.history().to_vec());
        to_py(py, &value)
    }

    fn next_version(&self, py: Python<'_>) -> u64 {
        locked(py, &self.inner, |r| r.next_version())
    }

    fn register(&self, py: Python<'_>, version: &Bound<'_, PyAny>) -> PyResult<()> {
        let version: IndexVersion = from_py(version)?;
        locked(py, &self.inner, |r| r.register(version)).py()
    }

    fn promote<'py>(&self, py: Python<'py>, version: u64, actor: &str, reason: &str) -> PyResult<Bound<'py, PyAny>> {
        let promotion = locked(py, &self.inner, |r| r.promote(version, actor, reason)).py()?;
        to_py(py, &promotion)
    }

    fn rollback<'py>(&self, py: Python<'py>, actor: &str) -> PyResult<Bound<'py, PyAny>> {
        let promotion = locked(py, &self.inner, |r| r.rollback(actor)).py()?;
        to_py(py, &promotion)
    }
}

/// Stable keys of chunk ids, as uint64 little-endian bytes.
#[pyfunction]
pub fn chunk_keys<'py>(py: Python<'py>, chunk_ids: Vec<String>) -> Bound<'py, PyBytes> {
    let raw: Vec<u8> = py.detach(|| chunk_ids.iter().flat_map(|id| lakehouse_vectord::chunk::chunk_key(id).to_le_bytes()).collect());
    PyBytes::new(py, &raw)
}

/// Keys of the first chunk of each document id in an Arrow string array (uint64 LE
/// bytes; a null id maps to key 0, which no chunk has): the hybrid path's candidate
/// keys, without a Python string per candidate.
#[pyfunction]
pub fn first_chunk_keys<'py>(py: Python<'py>, doc_ids: PyArrowType<ArrayData>) -> PyResult<Bound<'py, PyBytes>> {
    let doc_ids = as_strings(doc_ids.0)?;
    let raw: Vec<u8> = py.detach(|| {
        doc_ids.iter().flat_map(|id| id.map_or(0, lakehouse_vectord::chunk::first_chunk_key).to_le_bytes()).collect()
    });
    Ok(PyBytes::new(py, &raw))
}

/// Any Arrow string-like array (utf8, large utf8, utf8 view, dictionary...) as utf8.
fn as_strings(data: ArrayData) -> PyResult<StringArray> {
    let array = cast(&make_array(data), &DataType::Utf8).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(array.as_string::<i32>().clone())
}

/// Chunk a document column pair (Arrow string arrays of equal length) into a record
/// batch: doc_row (uint32, the document's position), chunk_no, text, key, content_hash.
#[pyfunction]
pub fn chunk_documents(
    py: Python<'_>,
    doc_ids: PyArrowType<ArrayData>,
    texts: PyArrowType<ArrayData>,
    max_words: usize,
    overlap: usize,
) -> PyResult<PyArrowType<RecordBatch>> {
    let (doc_ids, texts) = (as_strings(doc_ids.0)?, as_strings(texts.0)?);
    if doc_ids.len() != texts.len() {
        return Err(PyValueError::new_err(format!("{} doc ids but {} texts", doc_ids.len(), texts.len())));
    }
    let chunks = py.detach(|| lakehouse_vectord::chunk::chunk_documents(doc_ids.iter().zip(texts.iter()), max_words, overlap));
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("doc_row", Arc::new(UInt32Array::from_iter_values(chunks.doc_row.iter().map(|&r| r as u32)))),
        ("chunk_no", Arc::new(Int32Array::from(chunks.chunk_no))),
        ("text", Arc::new(StringArray::from(chunks.text))),
        ("key", Arc::new(UInt64Array::from(chunks.key))),
        ("content_hash", Arc::new(StringArray::from(chunks.content_hash))),
    ];
    RecordBatch::try_from_iter(columns).map(PyArrowType).map_err(|e| PyValueError::new_err(e.to_string()))
}

#[pyclass(name = "PlaybookMemory", module = "lakehouse._core")]
pub struct PyPlaybookMemory {
    inner: Mutex<PlaybookMemory>,
}

#[pymethods]
impl PyPlaybookMemory {
    #[new]
    fn new(dir: PathBuf, dim: usize) -> PyResult<Self> {
        Ok(Self { inner: Mutex::new(PlaybookMemory::open(&dir, dim).py()?) })
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        locked(py, &self.inner, |m| m.len())
    }

    /// Returns (op: "ADD" | "UPDATE" | "NOOP", playbook dict).
    fn seed<'py>(&self, py: Python<'py>, playbook: &Bound<'py, PyAny>, embedding_le: &[u8]) -> PyResult<(String, Bound<'py, PyAny>)> {
        let new: NewPlaybook = from_py(playbook)?;
        let embedding = floats(embedding_le)?;
        let (op, stored) = locked(py, &self.inner, |m| m.seed(new, &embedding)).py()?;
        Ok((to_py(py, &op)?.extract()?, to_py(py, &stored)?))
    }

    fn delete(&self, py: Python<'_>, id: &str) -> PyResult<String> {
        locked(py, &self.inner, |m| m.delete(id)).py()?;
        Ok("DELETE".into())
    }

    fn mark_failed(&self, py: Python<'_>, city: &str, state: &str, worker_id: &str, name: &str) -> PyResult<u32> {
        locked(py, &self.inner, |m| m.mark_failed(city, state, worker_id, name)).py()
    }

    /// The boosts of one query, held in the core (see `Boosts`). The candidate worker ids
    /// come beside the request as an Arrow string array (they can be tens of thousands:
    /// read in place, no per-id Python object or JSON).
    #[pyo3(signature = (query_le, request, candidates=None))]
    fn boost(
        &self,
        py: Python<'_>,
        query_le: &[u8],
        request: &Bound<'_, PyAny>,
        candidates: Option<PyArrowType<ArrayData>>,
    ) -> PyResult<PyBoosts> {
        let query = floats(query_le)?;
        let request: BoostQuery = from_py(request)?;
        let candidates = candidates.map(|c| as_strings(c.0)).transpose()?;
        let result = locked(py, &self.inner, |m| {
            let ids: Option<Vec<&str>> = candidates.as_ref().map(|c| c.iter().flatten().collect());
            m.boost(&query, &request, ids.as_deref())
        })
        .py()?;
        Ok(PyBoosts { result })
    }

    #[pyo3(signature = (query_le, k, city=None, state=None, role=None))]
    fn similar<'py>(
        &self,
        py: Python<'py>,
        query_le: &[u8],
        k: usize,
        city: Option<String>,
        state: Option<String>,
        role: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let query = floats(query_le)?;
        let found = locked(py, &self.inner, |m| m.similar(&query, k, city.as_deref(), state.as_deref(), role.as_deref()));
        to_py(py, &found)
    }

    fn entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let entries = locked(py, &self.inner, |m| m.entries().to_vec());
        to_py(py, &entries)
    }

    fn failures<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let rows: Vec<_> =
            locked(py, &self.inner, |m| m.failures().iter().map(|(k, n)| serde_json::json!({"worker": k, "failures": n})).collect());
        to_py(py, &rows)
    }

    fn compact<'py>(&self, py: Python<'py>, policy: &Bound<'py, PyAny>, today: &str) -> PyResult<Bound<'py, PyAny>> {
        let policy: CompactionPolicy = from_py(policy)?;
        let report = py.detach(|| self.inner.lock().expect("playbook lock").compact(&policy, today)).py()?;
        to_py(py, &report)
    }
}

/// One query's boosts. Ranking reads `by_worker()` (a dict of floats); the citations, the
/// bulk of the answer, cross into Python only for the workers `explain` is asked about.
#[pyclass(name = "Boosts", module = "lakehouse._core", frozen)]
pub struct PyBoosts {
    result: BoostResult,
}

#[pymethods]
impl PyBoosts {
    /// The `playbook_boost: ...` diagnostic line.
    #[getter]
    fn line(&self) -> &str {
        &self.result.line
    }

    #[getter]
    fn diagnostics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.result.diagnostics)
    }

    /// worker id -> boost, one per worker.
    fn by_worker<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for w in self.result.best_per_worker() {
            out.set_item(&w.key.worker_id, w.boost)?;
        }
        Ok(out)
    }

    /// The full records (key, boost, failures, citations) of these workers, those boosted.
    fn explain<'py>(&self, py: Python<'py>, worker_ids: Vec<String>) -> PyResult<Bound<'py, PyAny>> {
        let wanted: std::collections::HashSet<&str> = worker_ids.iter().map(String::as_str).collect();
        let records: Vec<&WorkerBoost> = self.result.best_per_worker().filter(|w| wanted.contains(w.key.worker_id.as_str())).collect();
        to_py(py, &records)
    }
}

/// The core's (model, content hash) cache for embedders that run outside the core
/// (Ollama): the same files, so a text embedded once is never embedded again.
#[pyclass(name = "EmbeddingCache", module = "lakehouse._core")]
pub struct PyEmbeddingCache {
    inner: Mutex<EmbeddingCache>,
}

#[pymethods]
impl PyEmbeddingCache {
    #[new]
    fn new(dir: PathBuf, model_id: &str, dim: usize) -> PyResult<Self> {
        Ok(Self { inner: Mutex::new(EmbeddingCache::open(&dir, model_id, dim).py()?) })
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        locked(py, &self.inner, |c| c.len())
    }

    /// (float32 bytes of len(texts) x dim with zeros where missing, hit flags).
    fn lookup<'py>(&self, py: Python<'py>, texts: Vec<String>) -> (Bound<'py, PyBytes>, Vec<bool>) {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (vectors, hits) = locked(py, &self.inner, |c| c.lookup(&refs));
        (float_bytes(py, &vectors), hits)
    }

    /// Store vectors (len(texts) x dim float32 bytes) durably; known texts are skipped.
    fn insert(&self, py: Python<'_>, texts: Vec<String>, vectors_le: &[u8]) -> PyResult<()> {
        let vectors = floats(vectors_le)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        locked(py, &self.inner, |c| c.insert_texts(&refs, &vectors)).py()
    }
}
