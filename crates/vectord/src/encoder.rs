//! The BERT encoder forward pass (all-MiniLM-L6-v2: 6 layers, 384 wide, 12 heads),
//! shaped for a small CPU.
//!
//! candle loads the weights (safetensors) and its GEMM engine, the `gemm` crate, does
//! every matrix product. Everything between the products runs here, fused and parallel:
//! candle's generic BERT runs bias adds, softmax, GELU and LayerNorm on one thread and
//! computes attention as one small GEMM call per (text, head), which on two cores cost
//! about as much as the products themselves. Two further savings:
//! - **No padding.** The tokens of a batch are packed into one matrix (one row per real
//!   token); only attention needs to know where a text starts, so nothing is spent on
//!   padded positions and batches need not be length-sorted.
//! - **One product for Q, K and V** (their weights stacked), so the GEMM sees a wider
//!   matrix and packs the input once.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use gemm::Parallelism;

use crate::bf16::PackedWeights;
use crate::f16_weights::HalfWeights;
use crate::int16::Int16Weights;
use crate::parallel;
use rayon::prelude::*;

/// Token rows per parallel task in the row-wise kernels (LayerNorm).
const ROWS_PER_TASK: usize = 64;

/// The encoder settings read from the model's `config.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct EncoderConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    /// Only "gelu" (erf) is implemented: the activation all-MiniLM-L6-v2 uses.
    #[serde(default = "default_activation")]
    pub hidden_act: String,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn default_eps() -> f64 {
    1e-12
}

fn default_activation() -> String {
    "gelu".into()
}

/// The arithmetic of the matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// bf16 where the CPU has AVX512-BF16, else 16-bit integers where it has AVX2, else
    /// f32.
    #[default]
    Auto,
    /// f32 throughout (bit-for-bit the reference arithmetic, half the speed).
    F32,
    /// f16 weights, f32 activations and sums ([`crate::f16_weights`]); refused on a CPU
    /// without AVX2, FMA and F16C.
    F16,
    /// bf16 products with f32 sums ([`crate::bf16`]); refused on a CPU without AVX512-BF16.
    Bf16,
    /// Weights and activations rounded to 11-bit integers, exact i32 sums
    /// ([`crate::int16`]); refused on a CPU without AVX2 and FMA.
    I16,
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "f16" => Ok(Self::F16),
            "i16" => Ok(Self::I16),
            other => Err(format!("unknown embedding precision {other:?}: use auto, f32, f16, bf16 or i16")),
        }
    }
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
            Self::I16 => "i16",
        }
    }

    /// What `self` means on this CPU (never `Auto`).
    pub fn resolve(self) -> candle_core::Result<Self> {
        match self {
            Self::Auto if crate::bf16::available() => Ok(Self::Bf16),
            Self::Auto if crate::int16::available() => Ok(Self::I16),
            Self::Auto => Ok(Self::F32),
            Self::Bf16 if !crate::bf16::available() => candle_core::bail!("bf16 precision needs a CPU with AVX512-BF16"),
            Self::F16 if !crate::f16_weights::available() => candle_core::bail!("f16 precision needs a CPU with AVX2, FMA and F16C"),
            Self::I16 if !crate::int16::available() => candle_core::bail!("i16 precision needs a CPU with AVX2 and FMA"),
            other => Ok(other),
        }
    }
}

/// y = x · Wᵀ + b, W stored (out, in) as PyTorch writes it; with bf16 precision the
/// weights are kept packed for [`crate::bf16`], with f16 for [`crate::f16_weights`] (and
/// the f32 copy dropped).
struct Dense {
    weight: Vec<f32>,
    packed: Option<Packed>,
    /// Products of more than [`FEW_ROWS`] rows use `packed` too (else the f32 `weight`).
    packed_batches: bool,
    bias: Vec<f32>,
    input: usize,
    output: usize,
}

/// Weights packed once, at load, for a product kernel of our own.
enum Packed {
    Bf16(PackedWeights),
    F16(HalfWeights),
    I16(Int16Weights),
}

impl Packed {
    /// `out += x · Wᵀ` in this packing's arithmetic.
    fn multiply_add(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        match self {
            Self::Bf16(packed) => packed.multiply_add(x, rows, out),
            Self::F16(packed) => packed.multiply_add(x, rows, out),
            Self::I16(packed) => packed.multiply_add(x, rows, out),
        }
    }
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    qkv: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

pub struct Encoder {
    config: EncoderConfig,
    precision: Precision,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

fn flat(t: Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

impl Dense {
    fn load(vb: VarBuilder, input: usize, output: usize) -> candle_core::Result<Self> {
        let (weight, bias) = (flat(vb.get((output, input), "weight")?)?, flat(vb.get(output, "bias")?)?);
        Ok(Self { weight, packed: None, packed_batches: true, bias, input, output })
    }

    /// Switch to a packed path when asked and the shape allows it; `keep_f32` keeps the
    /// f32 weights beside it (for batches, see [`Encoder::choose_batch_path`]).
    fn with_precision(mut self, precision: Precision, keep_f32: bool) -> Self {
        self.packed = match precision {
            Precision::Bf16 => PackedWeights::pack(&self.weight, self.input, self.output).map(Packed::Bf16),
            Precision::F16 => HalfWeights::pack(&self.weight, self.input, self.output).map(Packed::F16),
            Precision::I16 => Int16Weights::pack(&self.weight, self.input, self.output).map(Packed::I16),
            Precision::F32 | Precision::Auto => None,
        };
        if self.packed.is_some() && !keep_f32 {
            self.weight = Vec::new();
        }
        self
    }

    /// Use the packed weights for batches too (`true`), or the f32 ones; in the latter
    /// case they must have been kept.
    fn set_packed_batches(&mut self, packed: bool) {
        self.packed_batches = packed || self.weight.is_empty();
    }

    /// Q, K and V stacked into one (3·out, in) product.
    fn stacked(parts: [Dense; 3]) -> Self {
        let (input, output) = (parts[0].input, parts.iter().map(|p| p.output).sum());
        let weight = parts.iter().flat_map(|p| p.weight.iter().copied()).collect();
        let bias = parts.iter().flat_map(|p| p.bias.iter().copied()).collect();
        Self { weight, packed: None, packed_batches: true, bias, input, output }
    }

    /// `rows` x `output`, from `x` (`rows` x `input`, row-major).
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out: Vec<f32> = Vec::with_capacity(rows * self.output);
        for _ in 0..rows {
            out.extend_from_slice(&self.bias);
        }
        if let Some(packed) = &self.packed {
            if rows <= FEW_ROWS || self.packed_batches {
                packed.multiply_add(x, rows, &mut out);
                return out;
            }
        }
        if rows <= FEW_ROWS {
            few_rows_product(x, rows, &self.weight, self.input, self.output, &mut out);
            return out;
        }
        let threads = candle_core::utils::get_num_threads();
        let parallelism = if threads > 1 && !parallel::one_core() { Parallelism::Rayon(threads) } else { Parallelism::None };
        // SAFETY: every pointer/stride pair describes a live buffer of the stated shape:
        // out is rows x output (row stride output), x is rows x input (row stride input),
        // and Wᵀ is read from W (output x input) by swapping its strides.
        unsafe {
            gemm::gemm(
                rows,
                self.output,
                self.input,
                out.as_mut_ptr(),
                1,
                self.output as isize,
                true, // out starts as the bias rows: out = 1·out + 1·(x·Wᵀ)
                x.as_ptr(),
                1,
                self.input as isize,
                self.weight.as_ptr(),
                self.input as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
        out
    }
}

/// Up to this many token rows (one short query is ~10), a product streams W's rows once
/// and dots each with every token row ([`few_rows_product`]); past it, gemm's blocked
/// kernels win. gemm reads W (stored output x input) as Wᵀ with a column stride, which
/// for a handful of rows it does not pack, and its kernel then broadcasts weights one by
/// one: 12 ms for one query on a 2-core AVX2 machine.
const FEW_ROWS: usize = 32;

/// Output columns per task in [`few_rows_product`].
const COLUMNS_PER_TASK: usize = 96;

/// `out += x · Wᵀ` for a few rows of `x`: each task takes a run of outputs (rows of W,
/// contiguous) and dots each with every row of `x`, four rows at a time so the SIMD
/// registers hold four independent sums (a single sum would wait on each multiply-add).
fn few_rows_product(x: &[f32], rows: usize, weight: &[f32], input: usize, output: usize, out: &mut [f32]) {
    let columns: Vec<(usize, Vec<f32>)> = (0..output)
        .step_by(COLUMNS_PER_TASK)
        .collect::<Vec<_>>()
        .into_par_iter()
        .with_min_len(parallel::min_len())
        .map(|first| {
            let last = (first + COLUMNS_PER_TASK).min(output);
            (first, dot_weight_rows(x, rows, &weight[first * input..last * input], input))
        })
        .collect();
    for (first, part) in columns {
        let width = part.len() / rows;
        for r in 0..rows {
            let target = &mut out[r * output + first..r * output + first + width];
            target.iter_mut().zip(&part[r * width..(r + 1) * width]).for_each(|(o, v)| *o += v);
        }
    }
}

simd_dispatch!(fn dot_weight_rows(x: &[f32], rows: usize, weights: &[f32], input: usize) -> Vec<f32> => dot_weight_rows_portable);

/// `rows` x (weights rows) dot products, row-major by token row.
#[inline(always)]
fn dot_weight_rows_portable(x: &[f32], rows: usize, weights: &[f32], input: usize) -> Vec<f32> {
    let width = weights.len() / input;
    let mut part = vec![0f32; rows * width];
    for (o, w) in weights.chunks_exact(input).enumerate() {
        let mut r = 0;
        while r + 4 <= rows {
            let sums = dot4(&x[r * input..(r + 4) * input], w);
            for (i, sum) in sums.into_iter().enumerate() {
                part[(r + i) * width + o] = sum;
            }
            r += 4;
        }
        for r in r..rows {
            part[r * width + o] = crate::dot(&x[r * input..(r + 1) * input], w);
        }
    }
    part
}

/// The dot products of four consecutive rows of `x4` with `w`: sixteen lanes per row, so
/// eight independent AVX2 sums (or four AVX-512 ones) keep both FMA units busy. Zipped
/// exact chunks, so the loop has no bounds checks to stop it vectorising.
#[inline(always)]
fn dot4(x4: &[f32], w: &[f32]) -> [f32; 4] {
    const L: usize = 16;
    let n = w.len();
    let (x0, rest) = x4.split_at(n);
    let (x1, rest) = rest.split_at(n);
    let (x2, x3) = rest.split_at(n);
    let (mut s0, mut s1, mut s2, mut s3) = ([0f32; L], [0f32; L], [0f32; L], [0f32; L]);
    let chunks = w.chunks_exact(L).zip(x0.chunks_exact(L)).zip(x1.chunks_exact(L)).zip(x2.chunks_exact(L)).zip(x3.chunks_exact(L));
    for ((((wk, a), b), c), d) in chunks {
        for l in 0..L {
            s0[l] += a[l] * wk[l];
            s1[l] += b[l] * wk[l];
            s2[l] += c[l] * wk[l];
            s3[l] += d[l] * wk[l];
        }
    }
    let whole = n - n % L;
    let tail = |x: &[f32]| -> f32 { x[whole..].iter().zip(&w[whole..]).map(|(a, b)| a * b).sum() };
    [
        s0.iter().sum::<f32>() + tail(x0),
        s1.iter().sum::<f32>() + tail(x1),
        s2.iter().sum::<f32>() + tail(x2),
        s3.iter().sum::<f32>() + tail(x3),
    ]
}

impl Norm {
    fn load(vb: VarBuilder, size: usize) -> candle_core::Result<Self> {
        Ok(Self { gamma: flat(vb.get(size, "weight")?)?, beta: flat(vb.get(size, "bias")?)? })
    }

    /// x = LayerNorm(x + residual), row by row, in place.
    fn add_and_normalize(&self, x: &mut [f32], residual: &[f32], eps: f32) {
        let width = self.gamma.len();
        // Blocks of rows, not single rows: one 384-wide row is too little work per task.
        let block = width * ROWS_PER_TASK;
        x.par_chunks_mut(block)
            .zip(residual.par_chunks(block))
            .with_min_len(parallel::min_len())
            .for_each(|(rows, residuals)| add_and_normalize_rows(rows, residuals, &self.gamma, &self.beta, eps));
    }

    /// x = LayerNorm(x), row by row, in place.
    fn normalize(&self, x: &mut [f32], eps: f32) {
        x.par_chunks_mut(self.gamma.len() * ROWS_PER_TASK).with_min_len(parallel::min_len()).for_each(|rows| normalize_rows(rows, &self.gamma, &self.beta, eps));
    }
}

simd_dispatch!(fn add_and_normalize_rows(rows: &mut [f32], residuals: &[f32], gamma: &[f32], beta: &[f32], eps: f32) => add_and_normalize_portable);
simd_dispatch!(fn normalize_rows(rows: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) => normalize_rows_portable);

#[inline(always)]
fn add_and_normalize_portable(rows: &mut [f32], residuals: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    rows.iter_mut().zip(residuals).for_each(|(v, r)| *v += r);
    normalize_rows_portable(rows, gamma, beta, eps);
}

#[inline(always)]
fn normalize_rows_portable(rows: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let width = gamma.len();
    for row in rows.chunks_mut(width) {
        let n = width as f32;
        let mean = crate::sum(row) / n;
        row.iter_mut().for_each(|v| *v -= mean);
        let variance = crate::dot(row, row) / n;
        let scale = 1.0 / (variance + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = *v * scale * g + b;
        }
    }
}

/// GELU with erf (what BERT was trained with, not the tanh shortcut), in place, on all
/// cores.
fn gelu(x: &mut [f32]) {
    x.par_chunks_mut(4096).with_min_len(parallel::min_len()).for_each(gelu_chunk);
}

simd_dispatch!(fn gelu_chunk(chunk: &mut [f32]) => gelu_portable);

#[inline(always)]
fn gelu_portable(chunk: &mut [f32]) {
    for v in chunk {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// erf as a rational function of x on [-4, 4] (beyond, erf is ±1 in f32): no branches and
/// no exp, so the loop vectorises. A libm call per activation was a fifth of the whole
/// forward pass. The coefficients are the single-precision fit Eigen and XLA use; the
/// test below holds it to 1e-6 of a reference erf.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = ((((((-2.726_142_3e-10_f32 * x2 + 2.770_681_4e-8) * x2 - 2.101_024e-6) * x2 - 5.692_506_4e-5) * x2
        - 7.349_906_3e-4)
        * x2
        - 2.954_6e-3)
        * x2
        - 1.609_603_3e-2)
        * x;
    let q = (((-1.456_607_2e-5_f32 * x2 - 2.133_740_6e-4) * x2 - 1.682_827e-3) * x2 - 7.373_329e-3) * x2 - 1.426_473_9e-2;
    p / q
}

impl Encoder {
    pub fn load(vb: VarBuilder, config: &EncoderConfig, precision: Precision) -> candle_core::Result<Self> {
        if config.hidden_act != "gelu" {
            candle_core::bail!("activation {:?} is not supported (only gelu)", config.hidden_act);
        }
        let requested = precision;
        let precision = precision.resolve()?;
        // `Auto` with a packed path measures which weights batches run faster on (below).
        let calibrate = requested == Precision::Auto && precision != Precision::F32;
        let dense = |vb: VarBuilder, input, output| Dense::load(vb, input, output).map(|d| d.with_precision(precision, calibrate));
        let (hidden, inter) = (config.hidden_size, config.intermediate_size);
        let emb = vb.pp("embeddings");
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let layer = vb.pp(format!("encoder.layer.{i}"));
            let attention = layer.pp("attention");
            let own = attention.pp("self");
            layers.push(Layer {
                qkv: Dense::stacked([
                    Dense::load(own.pp("query"), hidden, hidden)?,
                    Dense::load(own.pp("key"), hidden, hidden)?,
                    Dense::load(own.pp("value"), hidden, hidden)?,
                ])
                .with_precision(precision, calibrate),
                attention_out: dense(attention.pp("output").pp("dense"), hidden, hidden)?,
                attention_norm: Norm::load(attention.pp("output").pp("LayerNorm"), hidden)?,
                intermediate: dense(layer.pp("intermediate").pp("dense"), hidden, inter)?,
                output: dense(layer.pp("output").pp("dense"), inter, hidden)?,
                output_norm: Norm::load(layer.pp("output").pp("LayerNorm"), hidden)?,
            });
        }
        let mut encoder = Self {
            word: flat(emb.get((config.vocab_size, hidden), "word_embeddings.weight")?)?,
            position: flat(emb.get((config.max_position_embeddings, hidden), "position_embeddings.weight")?)?,
            token_type: flat(emb.get((2, hidden), "token_type_embeddings.weight")?)?[..hidden].to_vec(),
            embedding_norm: Norm::load(emb.pp("LayerNorm"), hidden)?,
            layers,
            config: config.clone(),
            precision,
        };
        if calibrate {
            encoder.choose_batch_path();
        }
        Ok(encoder)
    }

    /// Which weights large batches run on. The packed kernels always win on a query (a
    /// few rows: the f32 weights do not stay in cache), but on large batches gemm's f32
    /// kernels win on some CPUs and lose on others (Intel Xeon, session 6: bf16 187
    /// against f32 328 texts/s; AMD Zen 4: bf16 271 against ~200). So `Auto` times one
    /// synthetic batch both ways, once per process, and keeps the faster; an explicit
    /// precision is used throughout.
    fn choose_batch_path(&mut self) {
        static PACKED_BATCHES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let packed = *PACKED_BATCHES.get_or_init(|| {
            let texts: Vec<Vec<u32>> = (0..48u32).map(|i| (0..24u32).map(|t| 1000 + (i * 31 + t * 7) % 20_000).collect()).collect();
            let batch: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
            let mut timed = |packed: bool| {
                self.set_packed_batches(packed);
                self.embed(&batch); // warm up caches and the thread pool
                // the better of two runs: a noisy neighbour slows one, rarely both
                (0..2)
                    .map(|_| {
                        let started = std::time::Instant::now();
                        self.embed(&batch);
                        started.elapsed()
                    })
                    .min()
                    .expect("two runs")
            };
            timed(true) <= timed(false)
        });
        self.set_packed_batches(packed);
        if packed {
            self.each_dense(|d| d.weight = Vec::new()); // the f32 copy is no longer needed
        }
    }

    fn set_packed_batches(&mut self, packed: bool) {
        self.each_dense(|d| d.set_packed_batches(packed));
    }

    fn each_dense(&mut self, mut f: impl FnMut(&mut Dense)) {
        for layer in &mut self.layers {
            for dense in [&mut layer.qkv, &mut layer.attention_out, &mut layer.intermediate, &mut layer.output] {
                f(dense);
            }
        }
    }

    /// The arithmetic of queries and other small products (resolved: never `Auto`).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The arithmetic of large batches: `precision()`, or `F32` where `Auto` measured
    /// gemm's f32 kernels faster on this CPU.
    pub fn batch_precision(&self) -> Precision {
        let packed = self.layers.first().is_none_or(|l| l.output.packed.is_none() || l.output.packed_batches);
        if packed { self.precision } else { Precision::F32 }
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// Mean-pooled, L2-normalised sentence vectors of tokenised texts (no padding; each
    /// text at most `max_position_embeddings` tokens). Returns `texts x hidden` floats.
    pub fn embed(&self, texts: &[&[u32]]) -> Vec<f32> {
        let hidden = self.config.hidden_size;
        if texts.is_empty() {
            return Vec::new();
        }
        let lengths: Vec<usize> = texts.iter().map(|t| t.len()).collect();
        let rows: usize = lengths.iter().sum();
        let mut x = self.embeddings(texts);
        let eps = self.config.layer_norm_eps as f32;
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x, rows);
            let context = self.attention(&qkv, &lengths);
            let mut attended = layer.attention_out.forward(&context, rows);
            layer.attention_norm.add_and_normalize(&mut attended, &x, eps);
            let mut inner = layer.intermediate.forward(&attended, rows);
            gelu(&mut inner);
            let mut out = layer.output.forward(&inner, rows);
            layer.output_norm.add_and_normalize(&mut out, &attended, eps);
            x = out;
        }
        mean_pool_normalized(&x, &lengths, hidden)
    }

    fn embeddings(&self, texts: &[&[u32]]) -> Vec<f32> {
        let hidden = self.config.hidden_size;
        let mut x = Vec::with_capacity(texts.iter().map(|t| t.len()).sum::<usize>() * hidden);
        for ids in texts {
            for (position, &id) in ids.iter().enumerate() {
                let word = &self.word[id as usize * hidden..(id as usize + 1) * hidden];
                let pos = &self.position[position * hidden..(position + 1) * hidden];
                x.extend(word.iter().zip(pos).zip(&self.token_type).map(|((w, p), t)| w + p + t));
            }
        }
        self.embedding_norm.normalize(&mut x, self.config.layer_norm_eps as f32);
        x
    }

    /// Multi-head self-attention of each text over its own tokens; `qkv` holds one row
    /// of [Q | K | V] per token. Parallel over texts (each writes only its own rows).
    fn attention(&self, qkv: &[f32], lengths: &[usize]) -> Vec<f32> {
        let hidden = self.config.hidden_size;
        let shape = Heads { hidden, heads: self.config.num_attention_heads };
        let mut context = vec![0f32; lengths.iter().sum::<usize>() * hidden];
        let mut parts: Vec<(usize, &mut [f32])> = Vec::with_capacity(lengths.len());
        let (mut rest, mut start) = (&mut context[..], 0);
        for &len in lengths {
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(len * hidden);
            parts.push((start, mine));
            rest = tail;
            start += len;
        }
        parts.into_par_iter().zip(lengths.par_iter()).with_min_len(parallel::min_len()).for_each(|((start, out), &len)| {
            let rows = &qkv[start * 3 * hidden..(start + len) * 3 * hidden];
            attend(rows, out, len, shape);
        });
        context
    }
}

#[derive(Clone, Copy)]
struct Heads {
    hidden: usize,
    heads: usize,
}

simd_dispatch!(
    /// One text's attention, in the widest SIMD the CPU has.
    fn attend(rows: &[f32], out: &mut [f32], len: usize, shape: Heads) => attend_portable
);

/// Lanes of the register-held partial results in [`attend_portable`] (one AVX-512 register).
const LANES: usize = 16;

#[inline(always)]
fn attend_portable(rows: &[f32], out: &mut [f32], len: usize, Heads { hidden, heads }: Heads) {
    let head = hidden / heads;
    let scale = 1.0 / (head as f32).sqrt();
    let width = 3 * hidden;
    // This head's keys transposed (one row per dimension, padded with zeros to whole
    // registers), so a query's scores against a block of 16 keys are `head` vector
    // multiply-adds held in registers: no per-pair horizontal sums (with 32-wide heads
    // they cost more than the products) and no scalar remainder (texts are ~10-60 tokens).
    let stride = len.next_multiple_of(LANES);
    let mut scores = vec![0f32; stride];
    let mut keys_t = vec![0f32; head * stride];
    for h in 0..heads {
        let (q_at, k_at, v_at) = (h * head, hidden + h * head, 2 * hidden + h * head);
        for (d, column) in keys_t.chunks_exact_mut(stride).enumerate() {
            for (j, slot) in column[..len].iter_mut().enumerate() {
                *slot = rows[j * width + k_at + d];
            }
        }
        for i in 0..len {
            let q = &rows[i * width + q_at..i * width + q_at + head];
            for (block, block_scores) in scores.chunks_exact_mut(LANES).enumerate() {
                let mut acc = [0f32; LANES];
                for (&qd, column) in q.iter().zip(keys_t.chunks_exact(stride)) {
                    let keys = &column[block * LANES..(block + 1) * LANES];
                    for l in 0..LANES {
                        acc[l] += qd * keys[l];
                    }
                }
                for (s, a) in block_scores.iter_mut().zip(acc) {
                    *s = a * scale;
                }
            }
            let scores = &mut scores[..len];
            softmax(scores);
            // The context row: sum over keys of p_j * v_j, 16 dimensions at a time in registers.
            let target = &mut out[i * hidden + h * head..i * hidden + (h + 1) * head];
            let mut blocks = target.chunks_exact_mut(LANES);
            for (block, part) in blocks.by_ref().enumerate() {
                let at = v_at + block * LANES;
                let mut acc = [0f32; LANES];
                for (j, &p) in scores.iter().enumerate() {
                    let v = &rows[j * width + at..j * width + at + LANES];
                    for l in 0..LANES {
                        acc[l] += p * v[l];
                    }
                }
                part.copy_from_slice(&acc);
            }
            let rest = blocks.into_remainder(); // heads narrower than a multiple of 16
            let at = v_at + head - rest.len();
            for (j, &p) in scores.iter().enumerate() {
                rest.iter_mut().zip(&rows[j * width + at..]).for_each(|(t, v)| *t += p * v);
            }
        }
    }
}

#[inline(always)]
fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // Three plain passes, each of which vectorises: libm's expf per score (a call, so one
    // score at a time) was about a third of the attention kernel.
    for s in scores.iter_mut() {
        *s = exp_nonpositive(*s - max);
    }
    let inverse = 1.0 / crate::sum(scores);
    scores.iter_mut().for_each(|s| *s *= inverse);
}

/// e^x for x <= 0 (softmax shifts its inputs so), in straight-line arithmetic that
/// vectorises: x = n ln 2 + r with |r| <= ln 2 / 2, e^r by its degree-6 Taylor polynomial
/// (truncation error below 2e-7 relative), 2^n written into the exponent bits. Inputs
/// below -87 (where e^x leaves the normal floats) give e^-87, which a softmax cannot tell
/// from zero.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 0.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The mean of each text's token rows, scaled to unit length.
fn mean_pool_normalized(x: &[f32], lengths: &[usize], hidden: usize) -> Vec<f32> {
    let mut out = vec![0f32; lengths.len() * hidden];
    let mut start = 0;
    for (text, &len) in lengths.iter().enumerate() {
        let pooled = &mut out[text * hidden..(text + 1) * hidden];
        for row in x[start * hidden..(start + len) * hidden].chunks_exact(hidden) {
            pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
        }
        pooled.iter_mut().for_each(|p| *p /= len.max(1) as f32);
        crate::normalize(pooled);
        start += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rational_erf_agrees_with_a_reference_erf() {
        let worst = (-6000..=6000)
            .map(|i| i as f32 / 1000.0)
            .map(|x| (erf(x) - candle_core::cpu::erf::erf_f32(x)).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "max |erf error| {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(10.0) - 1.0).abs() < 1e-6 && (erf(-10.0) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn the_vectorised_exp_agrees_with_libm_over_the_softmax_range() {
        let worst = (0..=870_000)
            .map(|i| -(i as f32) / 10_000.0)
            .map(|x| ((exp_nonpositive(x) - x.exp()) / x.exp()).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-6, "max relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1000.0) < 1e-37, "far below the range: as good as zero");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// The few-rows product is the same product gemm computes: any row count up to
        /// the cut-over, input widths that are and are not multiples of the SIMD width.
        #[test]
        fn the_few_rows_product_equals_the_plain_product(rows in 1usize..=FEW_ROWS, input in 1usize..70, output in 1usize..300, seed in 0u64..1000) {
            let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; (state % 2001) as f32 / 1000.0 - 1.0 };
            let weight: Vec<f32> = (0..input * output).map(|_| next()).collect();
            let x: Vec<f32> = (0..rows * input).map(|_| next()).collect();
            let bias: Vec<f32> = (0..output).map(|_| next()).collect();
            let mut out: Vec<f32> = (0..rows).flat_map(|_| bias.iter().copied()).collect();
            few_rows_product(&x, rows, &weight, input, output, &mut out);
            for r in 0..rows {
                for o in 0..output {
                    let want: f64 = bias[o] as f64 + (0..input).map(|k| x[r * input + k] as f64 * weight[o * input + k] as f64).sum::<f64>();
                    proptest::prop_assert!((out[r * output + o] as f64 - want).abs() < 1e-4 * (1.0 + input as f64), "row {} col {}", r, o);
                }
            }
        }
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut scores = vec![1.0, 3.0, 2.0, -50.0];
        softmax(&mut scores);
        assert!((scores.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(scores[1] > scores[2] && scores[2] > scores[0] && scores[0] > scores[3]);
    }
}
