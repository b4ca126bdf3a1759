//! The small exact layer on top of a saved HNSW graph.
//!
//! Re-saving a 100K-vector graph to add 34 rows costs far more than embedding them, so
//! a refresh writes only a segment: the rows added or re-embedded since the graph was
//! built, and the graph keys those rows replace or that were deleted (`hidden`). Searches
//! scan the segment exactly and skip hidden keys in the graph, so a version made of
//! graph + segment answers exactly as a rebuilt graph would (better: the new rows are
//! found by exact scan). When the segment outgrows its budget, the refresh folds it into
//! a new graph (see `HnswIndex::fold`).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use lakehouse_shared::{LakehouseError, Result};

use crate::hnsw::TopK;

const MAGIC: &[u8; 8] = b"LHSEG001";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segment {
    dim: usize,
    keys: Vec<u64>,
    /// Row-major, unit length.
    vectors: Vec<f32>,
    row_of: HashMap<u64, usize>,
    /// Graph keys that must not be returned: deleted, or superseded by a segment row.
    hidden: HashSet<u64>,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> LakehouseError {
    LakehouseError::Internal(format!("vector segment {}: {e}", path.display()))
}

impl Segment {
    pub fn empty(dim: usize) -> Self {
        Self { dim, ..Default::default() }
    }

    /// Rows in the segment.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No rows and nothing hidden: the graph alone answers.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.hidden.is_empty()
    }

    pub fn hidden(&self) -> &HashSet<u64> {
        &self.hidden
    }

    pub fn rows(&self) -> impl Iterator<Item = (u64, &[f32])> {
        self.keys.iter().copied().zip(self.vectors.chunks_exact(self.dim.max(1)))
    }

    pub fn vector(&self, key: u64) -> Option<&[f32]> {
        self.row_of.get(&key).map(|&row| &self.vectors[row * self.dim..(row + 1) * self.dim])
    }

    /// This segment after adding `keys`/`vectors` (a key already present is replaced)
    /// and deleting `removed`. `in_graph` tells which keys the graph below holds: those
    /// become hidden when deleted or replaced.
    pub fn changed(&self, in_graph: impl Fn(u64) -> bool, keys: &[u64], vectors: &[f32], removed: &[u64]) -> Result<Self> {
        if vectors.len() != keys.len() * self.dim {
            return Err(LakehouseError::invalid(format!(
                "{} keys need {} floats of dimension {}, got {}",
                keys.len(),
                keys.len() * self.dim,
                self.dim,
                vectors.len()
            )));
        }
        let dropped: HashSet<u64> = keys.iter().chain(removed).copied().collect();
        let mut next = Self::empty(self.dim);
        next.hidden = self.hidden.iter().copied().chain(dropped.iter().copied().filter(|&k| in_graph(k))).collect();
        for (key, row) in self.rows().filter(|(key, _)| !dropped.contains(key)) {
            next.put(key, row);
        }
        let removed: HashSet<u64> = removed.iter().copied().collect();
        for (key, row) in keys.iter().copied().zip(vectors.chunks_exact(self.dim.max(1))) {
            if !removed.contains(&key) {
                next.push(key, row);
            }
        }
        Ok(next)
    }

    fn push(&mut self, key: u64, row: &[f32]) {
        let mut row = row.to_vec();
        crate::normalize(&mut row);
        self.put(key, &row);
    }

    /// Insert or replace a row that is already unit length.
    fn put(&mut self, key: u64, row: &[f32]) {
        match self.row_of.get(&key) {
            Some(&at) => self.vectors[at * self.dim..(at + 1) * self.dim].copy_from_slice(row),
            None => {
                self.row_of.insert(key, self.keys.len());
                self.keys.push(key);
                self.vectors.extend_from_slice(row);
            }
        }
    }

    /// Exact top-`k` of the rows `keep` accepts. `query` must be unit length.
    pub fn scan(&self, query: &[f32], k: usize, keep: impl Fn(u64) -> bool) -> Vec<(u64, f32)> {
        let mut top = TopK::new(k);
        for (key, row) in self.rows().filter(|(key, _)| keep(*key)) {
            top.offer(key, crate::dot(query, row));
        }
        top.into_sorted()
    }

    /// Exact top-`k` among `candidates` that live in the segment.
    pub fn scan_among(&self, query: &[f32], k: usize, candidates: &[u64]) -> Vec<(u64, f32)> {
        let mut top = TopK::new(k);
        if !self.keys.is_empty() {
            for &key in candidates {
                if let Some(row) = self.vector(key) {
                    top.offer(key, crate::dot(query, row));
                }
            }
        }
        top.into_sorted()
    }

    /// Write atomically (temporary sibling, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut bytes = Vec::with_capacity(32 + self.keys.len() * (8 + 4 * self.dim) + self.hidden.len() * 8);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(self.dim as u64).to_le_bytes());
        bytes.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&(self.hidden.len() as u64).to_le_bytes());
        self.keys.iter().for_each(|k| bytes.extend_from_slice(&k.to_le_bytes()));
        self.vectors.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
        let mut hidden: Vec<u64> = self.hidden.iter().copied().collect();
        hidden.sort_unstable(); // same content, same bytes
        hidden.iter().for_each(|k| bytes.extend_from_slice(&k.to_le_bytes()));
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
        file.write_all(&bytes).and_then(|_| file.sync_all()).map_err(|e| io_error(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
    }

    pub fn open(path: &Path, dim: usize) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        let corrupt = |why: &str| io_error(path, format!("not a segment file ({why})"));
        if bytes.len() < 32 || &bytes[..8] != MAGIC {
            return Err(corrupt("bad header"));
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let (file_dim, rows, hidden) = (word(8) as usize, word(16) as usize, word(24) as usize);
        if file_dim != dim {
            return Err(corrupt(&format!("dimension {file_dim}, the graph has {dim}")));
        }
        let vectors_at = 32 + rows * 8;
        let hidden_at = vectors_at + rows * dim * 4;
        if bytes.len() != hidden_at + hidden * 8 {
            return Err(corrupt("truncated"));
        }
        let mut segment = Self::empty(dim);
        let floats: Vec<f32> =
            bytes[vectors_at..hidden_at].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        for (i, row) in floats.chunks_exact(dim.max(1)).enumerate().take(rows) {
            segment.put(word(32 + i * 8), row);
        }
        segment.hidden = (0..hidden).map(|i| word(hidden_at + i * 8)).collect();
        Ok(segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hnsw::tests::unit_vectors;

    #[test]
    fn changes_replace_rows_and_hide_superseded_graph_keys() {
        let dim = 8;
        let v = unit_vectors(4, dim, 9);
        let in_graph = |k: u64| k < 100;
        let first = Segment::empty(dim).changed(in_graph, &[5, 200], &v[..2 * dim], &[7]).unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first.hidden(), &HashSet::from([5, 7]));
        // re-embedding 200 replaces its row; removing 5 drops the segment row, keeps it hidden
        let second = first.changed(in_graph, &[200], &v[2 * dim..3 * dim], &[5]).unwrap();
        assert_eq!(second.len(), 1);
        assert!(crate::dot(second.vector(200).unwrap(), &v[2 * dim..3 * dim]) > 0.99999, "200 carries its new vector");
        assert_eq!(second.hidden(), &HashSet::from([5, 7]));
    }

    #[test]
    fn saved_segment_reopens_identical_and_rejects_truncation() {
        let dim = 8;
        let v = unit_vectors(3, dim, 4);
        let segment = Segment::empty(dim).changed(|_| true, &[1, 2, 3], &v, &[9]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment.bin");
        segment.save(&path).unwrap();
        assert_eq!(Segment::open(&path, dim).unwrap(), segment);
        assert!(Segment::open(&path, dim * 2).is_err(), "a dimension mismatch must be refused");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(Segment::open(&path, dim).is_err(), "a torn file must be refused, not half-read");
    }

    #[test]
    fn scan_ranks_exactly_and_honours_the_filter() {
        let dim = 16;
        let v = unit_vectors(50, dim, 2);
        let keys: Vec<u64> = (0..50).collect();
        let segment = Segment::empty(dim).changed(|_| false, &keys, &v, &[]).unwrap();
        let query = &v[10 * dim..11 * dim];
        assert_eq!(segment.scan(query, 1, |_| true)[0].0, 10);
        assert!(segment.scan(query, 5, |k| k % 2 == 1).iter().all(|(k, _)| k % 2 == 1));
        assert_eq!(segment.scan_among(query, 3, &[10, 10, 11, 999]).len(), 2, "duplicates and unknown keys count once / not at all");
    }
}
