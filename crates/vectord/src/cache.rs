//! The embedding cache: (model, SHA-256 of the text) -> vector, so a text is never
//! embedded twice, across refreshes, indexes and restarts.
//!
//! One append-only file per model: fixed-size records `[32-byte key][dim x f32 LE]`.
//! Appends are written to the OS but not fsync'd: the cache is derived data (a record lost
//! to a power cut is simply embedded again), and an fsync per search query cost more than
//! embedding the query. A torn record at the tail (a crash mid-append) is cut off on open,
//! so the file is always a whole number of records.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use lakehouse_shared::{LakehouseError, Result};
use sha2::{Digest, Sha256};

pub type ContentKey = [u8; 32];

pub struct EmbeddingCache {
    path: PathBuf,
    dim: usize,
    model_id: String,
    vectors: HashMap<ContentKey, Box<[f32]>>,
    file: File,
}

fn io_error(path: &Path, e: std::io::Error) -> LakehouseError {
    LakehouseError::Internal(format!("embedding cache {}: {e}", path.display()))
}

impl EmbeddingCache {
    /// Open (or create) the cache of `model_id` in `dir`.
    pub fn open(dir: &Path, model_id: &str, dim: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let safe_name: String = model_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let path = dir.join(format!("{safe_name}.{dim}d.bin"));
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(|e| io_error(&path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io_error(&path, e))?;
        let record = 32 + dim * 4;
        let whole = bytes.len() / record * record;
        if whole != bytes.len() {
            file.set_len(whole as u64).map_err(|e| io_error(&path, e))?;
        }
        let vectors = bytes[..whole]
            .chunks_exact(record)
            .map(|r| {
                let key: ContentKey = r[..32].try_into().expect("32-byte key");
                let v: Box<[f32]> = r[32..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
                (key, v)
            })
            .collect();
        Ok(Self { path, dim, model_id: model_id.to_string(), vectors, file })
    }

    /// The cache key of `text` under this cache's model.
    pub fn key(&self, text: &str) -> ContentKey {
        content_key(&self.model_id, text)
    }

    pub fn get(&self, key: &ContentKey) -> Option<&[f32]> {
        self.vectors.get(key).map(|v| &v[..])
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Store new vectors (row-major, `keys.len() * dim`); already known keys are skipped.
    pub fn insert(&mut self, keys: &[ContentKey], vectors: &[f32]) -> Result<()> {
        let mut buffer = Vec::new();
        for (key, v) in keys.iter().zip(vectors.chunks_exact(self.dim)) {
            if self.vectors.contains_key(key) {
                continue;
            }
            buffer.extend_from_slice(key);
            v.iter().for_each(|x| buffer.extend_from_slice(&x.to_le_bytes()));
            self.vectors.insert(*key, v.into());
        }
        if !buffer.is_empty() {
            self.file.write_all(&buffer).map_err(|e| io_error(&self.path, e))?;
        }
        Ok(())
    }
}

/// SHA-256 over the model id and the text, separated by a NUL byte.
pub fn content_key(model_id: &str, text: &str) -> ContentKey {
    let mut hasher = Sha256::new();
    hasher.update(model_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(text.as_bytes());
    hasher.finalize().into()
}

/// What one [`CachedEmbedder::embed`] call did: how many texts came from the cache.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct EmbedStats {
    pub texts: usize,
    pub cache_hits: usize,
    pub embedded: usize,
}

impl EmbeddingCache {
    /// Vectors for `texts` (row-major, zeros where missing) and which ones were found.
    pub fn lookup(&self, texts: &[&str]) -> (Vec<f32>, Vec<bool>) {
        let mut out = vec![0f32; texts.len() * self.dim];
        let mut hits = Vec::with_capacity(texts.len());
        for (text, slot) in texts.iter().zip(out.chunks_exact_mut(self.dim)) {
            let found = self.get(&self.key(text));
            if let Some(v) = found {
                slot.copy_from_slice(v);
            }
            hits.push(found.is_some());
        }
        (out, hits)
    }

    /// Store the vectors of `texts` (row-major); known texts are skipped.
    pub fn insert_texts(&mut self, texts: &[&str], vectors: &[f32]) -> Result<()> {
        if vectors.len() != texts.len() * self.dim {
            return Err(LakehouseError::invalid("vectors do not match the texts and the dimension"));
        }
        let keys: Vec<ContentKey> = texts.iter().map(|t| self.key(t)).collect();
        self.insert(&keys, vectors)
    }
}

/// The model behind its cache, shared between threads. The lock is held to look texts up
/// and to store new vectors, never while the model runs: a query whose text is cached is
/// not queued behind another being embedded, and two misses embed in parallel. A text
/// that another thread is embedding right now is waited for, not embedded again (one
/// recruiter request fans out into several searches of the same text).
pub struct CachedEmbedder {
    model: crate::MiniLmEmbedder,
    shared: Option<Mutex<Shared>>,
}

struct Shared {
    cache: EmbeddingCache,
    in_flight: HashMap<ContentKey, Arc<InFlight>>,
}

/// The vector of a text one thread is embedding, for the threads that asked meanwhile.
#[derive(Default)]
struct InFlight {
    vector: Mutex<Option<std::result::Result<Box<[f32]>, String>>>,
    ready: Condvar,
}

impl InFlight {
    fn publish(&self, vector: std::result::Result<Box<[f32]>, String>) {
        *self.vector.lock().expect("in-flight lock") = Some(vector);
        self.ready.notify_all();
    }

    fn wait(&self) -> std::result::Result<Box<[f32]>, String> {
        let mut slot = self.vector.lock().expect("in-flight lock");
        while slot.is_none() {
            slot = self.ready.wait(slot).expect("in-flight lock");
        }
        slot.clone().expect("published")
    }
}

/// The texts this call embeds on behalf of everyone: on drop (success, error or panic)
/// they leave the in-flight table and whoever waits for them is answered.
struct Claimed<'a> {
    shared: &'a Mutex<Shared>,
    keys: Vec<ContentKey>,
    slots: Vec<Arc<InFlight>>,
    vectors: Option<std::result::Result<Vec<f32>, String>>,
    dim: usize,
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        let outcome = self.vectors.take().unwrap_or_else(|| Err("the embedding model failed".to_string()));
        {
            let mut shared = self.shared.lock().expect("embedding cache lock");
            for key in &self.keys {
                shared.in_flight.remove(key);
            }
        }
        for (i, slot) in self.slots.iter().enumerate() {
            slot.publish(match &outcome {
                Ok(v) => Ok(v[i * self.dim..(i + 1) * self.dim].into()),
                Err(e) => Err(e.clone()),
            });
        }
    }
}

impl CachedEmbedder {
    pub fn new(model: crate::MiniLmEmbedder, cache: Option<EmbeddingCache>) -> Self {
        Self { model, shared: cache.map(|cache| Mutex::new(Shared { cache, in_flight: HashMap::new() })) }
    }

    pub fn model(&self) -> &crate::MiniLmEmbedder {
        &self.model
    }

    /// Vectors for `texts` (row-major): cached ones are copied, the rest embedded once
    /// (duplicates within the call, and texts other threads are embedding, included)
    /// and stored before returning.
    pub fn embed(&self, texts: &[&str]) -> Result<(Vec<f32>, EmbedStats)> {
        let Some(shared) = &self.shared else {
            let vectors = self.model.embed(texts)?;
            return Ok((vectors, EmbedStats { texts: texts.len(), cache_hits: 0, embedded: texts.len() }));
        };
        let dim = self.model.dim();
        let keys: Vec<ContentKey> = texts.iter().map(|t| content_key(self.model.model_id(), t)).collect();
        let mut out = vec![0f32; texts.len() * dim];
        let mut missing: Vec<usize> = Vec::new(); // rows this call embeds
        let mut waiting: Vec<(usize, Arc<InFlight>)> = Vec::new(); // rows another thread embeds
        let mut first_of: HashMap<ContentKey, usize> = HashMap::new();
        let mut copies: Vec<(usize, usize)> = Vec::new(); // (row, row whose vector it repeats)
        let mut claimed = Claimed { shared, keys: Vec::new(), slots: Vec::new(), vectors: None, dim };
        {
            let mut guard = shared.lock().expect("embedding cache lock");
            let Shared { cache, in_flight } = &mut *guard;
            for (i, key) in keys.iter().enumerate() {
                if let Some(v) = cache.get(key) {
                    out[i * dim..(i + 1) * dim].copy_from_slice(v);
                } else if let Some(&first) = first_of.get(key) {
                    copies.push((i, first));
                } else if let Some(slot) = in_flight.get(key) {
                    first_of.insert(*key, i);
                    waiting.push((i, slot.clone()));
                } else {
                    first_of.insert(*key, i);
                    missing.push(i);
                    let slot = Arc::new(InFlight::default());
                    in_flight.insert(*key, slot.clone());
                    claimed.keys.push(*key);
                    claimed.slots.push(slot);
                }
            }
        }
        if !missing.is_empty() {
            let fresh_texts: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let fresh = self.model.embed(&fresh_texts);
            let fresh = match fresh {
                Ok(fresh) => fresh,
                Err(e) => {
                    claimed.vectors = Some(Err(e.to_string()));
                    return Err(e);
                }
            };
            for (&i, v) in missing.iter().zip(fresh.chunks_exact(dim)) {
                out[i * dim..(i + 1) * dim].copy_from_slice(v);
            }
            shared.lock().expect("embedding cache lock").cache.insert(&claimed.keys, &fresh)?;
            claimed.vectors = Some(Ok(fresh));
        }
        drop(claimed); // answer the waiters before waiting ourselves
        for (i, slot) in &waiting {
            let v = slot.wait().map_err(LakehouseError::Internal)?;
            out[i * dim..(i + 1) * dim].copy_from_slice(&v);
        }
        for &(i, first) in &copies {
            out.copy_within(first * dim..(first + 1) * dim, i * dim);
        }
        let stats = EmbedStats { texts: texts.len(), cache_hits: texts.len() - missing.len(), embedded: missing.len() };
        Ok((out, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_survive_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EmbeddingCache::open(dir.path(), "m", 2).unwrap();
        let (a, b) = (cache.key("a"), cache.key("b"));
        cache.insert(&[a, b], &[1.0, 0.0, 0.0, 1.0]).unwrap();
        // Simulate a crash halfway through the next record.
        let path = cache.path.clone();
        drop(cache);
        OpenOptions::new().append(true).open(&path).unwrap().write_all(&[7u8; 20]).unwrap();
        let cache = EmbeddingCache::open(dir.path(), "m", 2).unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&b), Some(&[0.0f32, 1.0][..]));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * (32 + 8));
    }

    #[test]
    fn the_same_text_under_another_model_is_another_key() {
        assert_ne!(content_key("m1", "welder"), content_key("m2", "welder"));
        assert_eq!(content_key("m1", "welder"), content_key("m1", "welder"));
    }
}
