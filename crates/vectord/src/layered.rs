//! One searchable index version: a saved HNSW graph plus the segment a refresh wrote on
//! top of it (`segment.rs`). Everything that must look at both layers lives here, so the
//! bindings and the Python backend see one index.

use std::path::Path;

use lakehouse_shared::{LakehouseError, Result};

use crate::hnsw::{HnswIndex, HnswParams};
use crate::planner::{self, PlannedSearch, PlannerConfig};
use crate::segment::Segment;

pub struct LayeredIndex {
    graph: HnswIndex,
    segment: Segment,
}

impl LayeredIndex {
    /// A freshly built graph with nothing on top.
    pub fn from_graph(graph: HnswIndex) -> Self {
        let segment = Segment::empty(graph.dim());
        Self { graph, segment }
    }

    /// Open a saved graph and, if given, the segment file written over it. `keys` (the
    /// version's chunk keys) lets a mapped graph copy their vectors into the contiguous
    /// store its exact scans read (`rows.rs`).
    pub fn open(graph_path: &Path, segment: Option<&Path>, mmap: bool, params: HnswParams, keys: Option<&[u64]>) -> Result<Self> {
        let mut graph = HnswIndex::open(graph_path, mmap, params)?;
        if let Some(keys) = keys {
            graph.attach_rows(graph_path, keys)?;
        }
        let segment = match segment {
            Some(file) => Segment::open(file, graph.dim())?,
            None => Segment::empty(graph.dim()),
        };
        Ok(Self { graph, segment })
    }

    pub fn graph(&self) -> &HnswIndex {
        &self.graph
    }

    /// Rows in the segment (what a refresh has not folded into the graph yet).
    pub fn segment_rows(&self) -> usize {
        self.segment.len()
    }

    /// Searchable vectors: graph rows not hidden, plus segment rows.
    pub fn len(&self) -> usize {
        self.graph.len().saturating_sub(self.segment.hidden().len()) + self.segment.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, key: u64) -> bool {
        self.segment.vector(key).is_some() || (self.graph.contains(key) && !self.segment.hidden().contains(&key))
    }

    /// The vector `key` is searched by: the segment's when it has one, else the graph's.
    pub fn vector(&self, key: u64) -> Option<Vec<f32>> {
        if let Some(row) = self.segment.vector(key) {
            return Some(row.to_vec());
        }
        if self.segment.hidden().contains(&key) {
            return None;
        }
        self.graph.vector(key)
    }

    pub fn search(&self, query: &[f32], k: usize, allowed: Option<&[u64]>, config: &PlannerConfig) -> Result<PlannedSearch> {
        planner::search(&self.graph, &self.segment, query, k, allowed, config)
    }

    /// Write this version's segment plus these changes to `path`, leaving this version as
    /// it is (it may be serving searches). Returns (segment rows, hidden graph keys).
    pub fn write_segment(&self, path: &Path, keys: &[u64], vectors: &[f32], removed: &[u64]) -> Result<(usize, usize)> {
        let next = self.segment.changed(|key| self.graph.contains(key), keys, vectors, removed)?;
        next.save(path)?;
        Ok((next.len(), next.hidden().len()))
    }

    /// Merge the segment into the graph (which must be opened loaded, not mapped).
    pub fn fold_segment(&mut self, threads: usize) -> Result<()> {
        self.graph.fold(&self.segment, threads)?;
        self.segment = Segment::empty(self.graph.dim());
        Ok(())
    }

    /// Insert into the graph; refused while a segment is on top (its hidden keys would
    /// hide the new rows): fold it first.
    pub fn add(&self, keys: &[u64], vectors: &[f32], threads: usize) -> Result<()> {
        self.writable()?;
        self.graph.add(keys, vectors, threads)
    }

    pub fn remove(&self, keys: &[u64]) -> Result<usize> {
        self.writable()?;
        self.graph.remove(keys)
    }

    fn writable(&self) -> Result<()> {
        if self.segment.is_empty() {
            return Ok(());
        }
        Err(LakehouseError::invalid("this version has a segment on top of its graph; fold it first"))
    }
}
