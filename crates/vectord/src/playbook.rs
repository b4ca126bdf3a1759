//! Playbook memory: what past sealed fills teach about who works out where.
//!
//! Each entry is one fill ("Welder x2 in Toledo, OH" on a date, by a staffer) with the
//! workers it endorsed and the embedding of its operation text. A hybrid search asks for
//! a boost per worker:
//!
//! ```text
//! per_worker = cosine(query, playbook) * 0.5 * exp(-age_days / 30) * 0.5^failures / n_workers
//! boost[(city, state, name)] = min(sum(per_worker), 0.25)
//! ```
//!
//! Retrieval is geo + role first: playbooks of the target city/state only; exact
//! (role, city, state) matches count as similarity 1.0 and fill up to half of the `k`
//! playbooks, cosine fills the rest. Beyond the original design: validity windows and the
//! workers-schema fingerprint (a stale playbook never boosts, and the diagnostics say
//! why), ADD / UPDATE / NOOP / DELETE on (operation, date), everything held in memory
//! (the hot cache: boost cost does not grow with the file), and compaction.
//!
//! Durability: every change is one fsync'd line in `ops.jsonl` before it is applied;
//! opening replays the file, so a restart gives identical answers. Compaction rewrites
//! the file as a snapshot (write, fsync, rename).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use chrono::NaiveDate;
use lakehouse_shared::{LakehouseError, Result};
use serde::{Deserialize, Serialize};

pub const BOOST_CAP: f32 = 0.25;
const OPS_FILE: &str = "ops.jsonl";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Endorsed {
    pub worker_id: String,
    pub name: String,
}

/// A playbook as the caller describes it (seeded from a sealed fill).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NewPlaybook {
    pub operation: String,
    pub role: String,
    pub city: String,
    pub state: String,
    /// The fill's date, `YYYY-MM-DD`: the age in the decay is counted from it.
    pub date: String,
    #[serde(default)]
    pub staffer: String,
    pub workers: Vec<Endorsed>,
    #[serde(default)]
    pub valid_from: Option<String>,
    #[serde(default)]
    pub valid_until: Option<String>,
    /// Fingerprint of the workers dataset's schema when the playbook was seeded.
    #[serde(default)]
    pub schema_fingerprint: Option<String>,
    /// Free-form facts for pattern discovery (certifications, skills, archetype...).
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Playbook {
    pub id: String,
    #[serde(flatten)]
    pub fields: NewPlaybook,
    pub created_at: String,
    pub updated_at: String,
}

/// What a seed did (Mem0-style operations instead of blind appends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SeedOp {
    Add,
    Update,
    Noop,
    Delete,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum LogLine {
    Upsert { playbook: Playbook, embedding: String },
    Delete { id: String, at: String },
    Fail { city: String, state: String, worker_id: String, name: String, at: String },
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct WorkerKey {
    pub city: String,
    pub state: String,
    pub name: String,
    pub worker_id: String,
}

impl WorkerKey {
    fn new(city: &str, state: &str, name: &str, worker_id: &str) -> Self {
        Self { city: norm(city), state: norm(state), name: name.trim().to_string(), worker_id: worker_id.trim().to_string() }
    }
}

/// How one query should be boosted.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct BoostQuery {
    pub city: Option<String>,
    pub state: Option<String>,
    pub role: Option<String>,
    /// How many playbooks feed the boost (the spec's playbook_memory_k, default 200).
    #[serde(default = "default_k")]
    pub k: usize,
    /// `YYYY-MM-DD`; ages and validity are judged at this date.
    pub today: String,
    /// The current fingerprint of the workers dataset's schema.
    #[serde(default)]
    pub schema_fingerprint: Option<String>,
    /// Worker ids the SQL filter let through (for the `matched` count).
    #[serde(default)]
    pub candidates: Option<Vec<String>>,
}

fn default_k() -> usize {
    200
}

#[derive(Debug, Clone, Serialize)]
pub struct Citation {
    pub playbook_id: String,
    pub operation: String,
    pub date: String,
    pub similarity: f32,
    pub exact_match: bool,
    pub contribution: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerBoost {
    #[serde(flatten)]
    pub key: WorkerKey,
    pub boost: f32,
    pub failures: u32,
    pub citations: Vec<Citation>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct BoostDiagnostics {
    /// Workers given a boost.
    pub boosts: usize,
    /// Playbooks that contributed.
    pub sources: usize,
    /// Playbooks considered (valid, in the target geo).
    pub parsed: usize,
    /// Boosted workers that are in the SQL candidate pool.
    pub matched: usize,
    pub exact_matches: usize,
    pub skipped_expired: usize,
    pub skipped_not_yet_valid: usize,
    pub skipped_schema_changed: usize,
    pub target_geo: String,
    pub target_role: String,
}

impl BoostDiagnostics {
    /// The one-line log every hybrid call emits, so a silent miss stays visible.
    pub fn line(&self) -> String {
        format!(
            "playbook_boost: boosts={} sources={} parsed={} matched={} target_geo={} target_role={} skipped_expired={} skipped_schema_changed={}",
            self.boosts, self.sources, self.parsed, self.matched, self.target_geo, self.target_role, self.skipped_expired, self.skipped_schema_changed
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BoostResult {
    pub workers: Vec<WorkerBoost>,
    pub diagnostics: BoostDiagnostics,
    pub line: String,
}

/// Compaction settings: entries older than `ttl_days`, or whose best possible boost has
/// decayed below `decay_floor`, are dropped; entries of one (role, city, state) whose
/// operations are near-duplicates (cosine >= `merge_cosine`) are merged into the newest.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct CompactionPolicy {
    pub ttl_days: f64,
    pub decay_floor: f32,
    pub merge_cosine: f32,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CompactionReport {
    pub before: usize,
    pub after: usize,
    pub expired_ttl: Vec<String>,
    pub decayed: Vec<String>,
    pub merged: Vec<(String, String)>,
}

pub struct PlaybookMemory {
    path: PathBuf,
    file: File,
    dim: usize,
    entries: Vec<Playbook>,
    /// Row-major unit embeddings, aligned with `entries`.
    vectors: Vec<f32>,
    by_identity: HashMap<(String, String), usize>,
    by_geo: HashMap<(String, String), Vec<usize>>,
    failures: HashMap<WorkerKey, u32>,
}

fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

fn identity(p: &NewPlaybook) -> (String, String) {
    (norm(&p.operation), p.date.trim().to_string())
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> LakehouseError {
    LakehouseError::Internal(format!("playbook memory {}: {e}", path.display()))
}

fn parse_date(text: &str, what: &str) -> Result<NaiveDate> {
    let day = text.get(..10).unwrap_or(text);
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| LakehouseError::invalid(format!("{what} {text:?} is not a date (YYYY-MM-DD)")))
}

fn encode(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode(s: &str, dim: usize) -> Result<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).map_err(LakehouseError::internal)?;
    if bytes.len() != dim * 4 {
        return Err(LakehouseError::Internal(format!("stored embedding has {} bytes, expected {}", bytes.len(), dim * 4)));
    }
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
}

/// 0.5 * e^(-age/30) * 0.5^failures / n_workers: the weight of one endorsement before
/// the similarity is applied. Ages below zero (a fill dated in the future) count as 0.
pub fn endorsement_weight(age_days: f64, failures: u32, n_workers: usize) -> f32 {
    let age = age_days.max(0.0);
    (0.5 * (-age / 30.0).exp() * 0.5f64.powi(failures as i32) / n_workers.max(1) as f64) as f32
}

impl PlaybookMemory {
    pub fn open(dir: &Path, dim: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let path = dir.join(OPS_FILE);
        let file = OpenOptions::new().create(true).append(true).read(true).open(&path).map_err(|e| io_error(&path, e))?;
        let mut memory = Self {
            path: path.clone(),
            file,
            dim,
            entries: Vec::new(),
            vectors: Vec::new(),
            by_identity: HashMap::new(),
            by_geo: HashMap::new(),
            failures: HashMap::new(),
        };
        let reader = BufReader::new(File::open(&path).map_err(|e| io_error(&path, e))?);
        let mut valid_bytes = 0u64;
        for line in reader.lines() {
            let line = line.map_err(|e| io_error(&path, e))?;
            match serde_json::from_str::<LogLine>(&line) {
                Ok(op) => memory.apply(op)?,
                Err(_) => break, // a torn last line from a crash: cut it off below
            }
            valid_bytes += line.len() as u64 + 1;
        }
        if memory.file.metadata().map_err(|e| io_error(&path, e))?.len() > valid_bytes {
            memory.file.set_len(valid_bytes).map_err(|e| io_error(&path, e))?;
        }
        Ok(memory)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Playbook] {
        &self.entries
    }

    pub fn failures(&self) -> &HashMap<WorkerKey, u32> {
        &self.failures
    }

    fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    fn append(&mut self, line: &LogLine) -> Result<()> {
        let mut text = serde_json::to_string(line).map_err(LakehouseError::internal)?;
        text.push('\n');
        self.file.write_all(text.as_bytes()).map_err(|e| io_error(&self.path, e))?;
        self.file.sync_data().map_err(|e| io_error(&self.path, e))
    }

    fn apply(&mut self, line: LogLine) -> Result<()> {
        match line {
            LogLine::Upsert { playbook, embedding } => {
                let vector = decode(&embedding, self.dim)?;
                let key = identity(&playbook.fields);
                match self.by_identity.get(&key) {
                    Some(&i) => {
                        self.entries[i] = playbook;
                        self.vectors[i * self.dim..(i + 1) * self.dim].copy_from_slice(&vector);
                    }
                    None => {
                        let i = self.entries.len();
                        let geo = (norm(&playbook.fields.city), norm(&playbook.fields.state));
                        self.by_identity.insert(key, i);
                        self.by_geo.entry(geo).or_default().push(i);
                        self.entries.push(playbook);
                        self.vectors.extend_from_slice(&vector);
                    }
                }
            }
            LogLine::Delete { id, .. } => {
                if let Some(i) = self.entries.iter().position(|p| p.id == id) {
                    self.entries.remove(i);
                    self.vectors.drain(i * self.dim..(i + 1) * self.dim);
                    self.reindex();
                }
            }
            LogLine::Fail { city, state, worker_id, name, .. } => {
                *self.failures.entry(WorkerKey::new(&city, &state, &name, &worker_id)).or_default() += 1;
            }
        }
        Ok(())
    }

    fn reindex(&mut self) {
        self.by_identity.clear();
        self.by_geo.clear();
        for (i, p) in self.entries.iter().enumerate() {
            self.by_identity.insert(identity(&p.fields), i);
            self.by_geo.entry((norm(&p.fields.city), norm(&p.fields.state))).or_default().push(i);
        }
    }

    /// ADD a new (operation, date); UPDATE it when something changed (endorsed workers
    /// are merged, other fields replaced); NOOP when nothing did.
    pub fn seed(&mut self, new: NewPlaybook, embedding: &[f32]) -> Result<(SeedOp, Playbook)> {
        self.validate(&new, embedding)?;
        let now = lakehouse_shared::time::now_rfc3339();
        let (op, playbook) = match self.by_identity.get(&identity(&new)) {
            None => {
                let id = uuid_like(&new);
                (SeedOp::Add, Playbook { id, fields: new, created_at: now.clone(), updated_at: now })
            }
            Some(&i) => {
                let existing = &self.entries[i];
                let mut merged = new.clone();
                let mut workers = existing.fields.workers.clone();
                for w in new.workers {
                    if !workers.iter().any(|x| x.worker_id == w.worker_id) {
                        workers.push(w);
                    }
                }
                merged.workers = workers;
                if merged == existing.fields {
                    return Ok((SeedOp::Noop, existing.clone()));
                }
                let updated = Playbook { id: existing.id.clone(), fields: merged, created_at: existing.created_at.clone(), updated_at: now };
                (SeedOp::Update, updated)
            }
        };
        let line = LogLine::Upsert { playbook: playbook.clone(), embedding: encode(embedding) };
        self.append(&line)?;
        self.apply(line)?;
        Ok((op, playbook))
    }

    pub fn delete(&mut self, id: &str) -> Result<SeedOp> {
        if !self.entries.iter().any(|p| p.id == id) {
            return Err(LakehouseError::NotFound(format!("no playbook with id {id}")));
        }
        let line = LogLine::Delete { id: id.to_string(), at: lakehouse_shared::time::now_rfc3339() };
        self.append(&line)?;
        self.apply(line)?;
        Ok(SeedOp::Delete)
    }

    /// A no-show: this worker's endorsements in this city weigh half as much from the next query on.
    pub fn mark_failed(&mut self, city: &str, state: &str, worker_id: &str, name: &str) -> Result<u32> {
        let line = LogLine::Fail {
            city: city.to_string(),
            state: state.to_string(),
            worker_id: worker_id.to_string(),
            name: name.to_string(),
            at: lakehouse_shared::time::now_rfc3339(),
        };
        self.append(&line)?;
        self.apply(line)?;
        Ok(self.failures[&WorkerKey::new(city, state, name, worker_id)])
    }

    fn validate(&self, new: &NewPlaybook, embedding: &[f32]) -> Result<()> {
        if embedding.len() != self.dim {
            return Err(LakehouseError::invalid(format!("embedding has {} dimensions, memory holds {}", embedding.len(), self.dim)));
        }
        if new.operation.trim().is_empty() || new.city.trim().is_empty() || new.state.trim().is_empty() {
            return Err(LakehouseError::invalid("a playbook needs an operation, a city and a state"));
        }
        parse_date(&new.date, "date")?;
        for (value, what) in [(&new.valid_from, "valid_from"), (&new.valid_until, "valid_until")] {
            if let Some(v) = value {
                parse_date(v, what)?;
            }
        }
        Ok(())
    }

    /// The boost per worker for one query (see the module docs for the math).
    pub fn boost(&self, query: &[f32], q: &BoostQuery) -> Result<BoostResult> {
        if query.len() != self.dim {
            return Err(LakehouseError::invalid(format!("query has {} dimensions, memory holds {}", query.len(), self.dim)));
        }
        let today = parse_date(&q.today, "today")?;
        let mut diag = BoostDiagnostics {
            target_geo: match (&q.city, &q.state) {
                (Some(c), Some(s)) => format!("{c}, {s}"),
                (None, Some(s)) => s.clone(),
                _ => "?".into(),
            },
            target_role: q.role.clone().unwrap_or_else(|| "?".into()),
            ..Default::default()
        };
        // 1. Geo prefilter (same city and state), then validity.
        let in_geo: Vec<usize> = match (&q.city, &q.state) {
            (Some(c), Some(s)) => self.by_geo.get(&(norm(c), norm(s))).cloned().unwrap_or_default(),
            (None, Some(s)) => (0..self.entries.len()).filter(|&i| norm(&self.entries[i].fields.state) == norm(s)).collect(),
            _ => (0..self.entries.len()).collect(),
        };
        let valid: Vec<usize> = in_geo.into_iter().filter(|&i| self.is_valid(i, today, q, &mut diag)).collect();
        diag.parsed = valid.len();
        // 2. Exact (role, city, state) matches: similarity 1.0, up to half of k.
        let role = q.role.as_deref().map(norm);
        let geo_given = q.city.is_some() && q.state.is_some();
        let (mut exact, mut rest): (Vec<usize>, Vec<usize>) =
            valid.into_iter().partition(|&i| geo_given && role.as_deref() == Some(norm(&self.entries[i].fields.role).as_str()));
        exact.sort_by(|&a, &b| self.entries[b].fields.date.cmp(&self.entries[a].fields.date)); // newest first
        exact.truncate(q.k / 2);
        diag.exact_matches = exact.len();
        // 3. Cosine fills the rest of k.
        let mut by_cosine: Vec<(usize, f32)> = rest.drain(..).map(|i| (i, crate::dot(query, self.vector(i)))).collect();
        by_cosine.sort_by(|a, b| b.1.total_cmp(&a.1));
        by_cosine.truncate(q.k.saturating_sub(exact.len()));
        let chosen = exact.into_iter().map(|i| (i, 1.0f32, true)).chain(by_cosine.into_iter().map(|(i, s)| (i, s, false)));
        // 4. Spread each playbook's weight over its endorsed workers.
        let mut boosts: HashMap<WorkerKey, (f32, Vec<Citation>)> = HashMap::new();
        let mut sources = HashSet::new();
        for (i, similarity, exact_match) in chosen {
            let p = &self.entries[i];
            let age_days = (today - parse_date(&p.fields.date, "date")?).num_days() as f64;
            for w in &p.fields.workers {
                let key = WorkerKey::new(&p.fields.city, &p.fields.state, &w.name, &w.worker_id);
                let failures = self.failures.get(&key).copied().unwrap_or(0);
                let contribution = similarity.max(0.0) * endorsement_weight(age_days, failures, p.fields.workers.len());
                if contribution <= 0.0 {
                    continue;
                }
                sources.insert(i);
                let slot = boosts.entry(key).or_insert_with(|| (0.0, Vec::new()));
                slot.0 += contribution;
                slot.1.push(Citation {
                    playbook_id: p.id.clone(),
                    operation: p.fields.operation.clone(),
                    date: p.fields.date.clone(),
                    similarity,
                    exact_match,
                    contribution,
                });
            }
        }
        let candidates: Option<HashSet<&str>> = q.candidates.as_ref().map(|c| c.iter().map(String::as_str).collect());
        let mut workers: Vec<WorkerBoost> = boosts
            .into_iter()
            .map(|(key, (sum, mut citations))| {
                citations.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
                let failures = self.failures.get(&key).copied().unwrap_or(0);
                WorkerBoost { boost: sum.min(BOOST_CAP), failures, citations, key }
            })
            .collect();
        workers.sort_by(|a, b| b.boost.total_cmp(&a.boost).then_with(|| a.key.cmp(&b.key)));
        diag.boosts = workers.len();
        diag.sources = sources.len();
        diag.matched = match &candidates {
            Some(pool) => workers.iter().filter(|w| pool.contains(w.key.worker_id.as_str())).count(),
            None => workers.len(),
        };
        let line = diag.line();
        Ok(BoostResult { workers, diagnostics: diag, line })
    }

    fn is_valid(&self, i: usize, today: NaiveDate, q: &BoostQuery, diag: &mut BoostDiagnostics) -> bool {
        let p = &self.entries[i].fields;
        let date = |s: &Option<String>| s.as_deref().and_then(|d| parse_date(d, "validity").ok());
        if date(&p.valid_until).is_some_and(|until| today > until) {
            diag.skipped_expired += 1;
            return false;
        }
        if date(&p.valid_from).is_some_and(|from| today < from) {
            diag.skipped_not_yet_valid += 1;
            return false;
        }
        if let (Some(seeded), Some(current)) = (&p.schema_fingerprint, &q.schema_fingerprint) {
            if seeded != current {
                diag.skipped_schema_changed += 1;
                return false;
            }
        }
        true
    }

    /// The `k` playbooks most similar to `query` (optionally within a geo / role), with
    /// their similarity: the input of pattern discovery.
    pub fn similar(&self, query: &[f32], k: usize, city: Option<&str>, state: Option<&str>, role: Option<&str>) -> Vec<(Playbook, f32)> {
        let mut scored: Vec<(usize, f32)> = (0..self.entries.len())
            .filter(|&i| {
                let p = &self.entries[i].fields;
                city.is_none_or(|c| norm(c) == norm(&p.city))
                    && state.is_none_or(|s| norm(s) == norm(&p.state))
                    && role.is_none_or(|r| norm(r) == norm(&p.role))
            })
            .map(|i| (i, crate::dot(query, self.vector(i))))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.into_iter().take(k).map(|(i, s)| (self.entries[i].clone(), s)).collect()
    }

    /// Apply the policy and rewrite the log as a snapshot of what is left.
    pub fn compact(&mut self, policy: &CompactionPolicy, today: &str) -> Result<CompactionReport> {
        let today = parse_date(today, "today")?;
        let mut report = CompactionReport { before: self.entries.len(), ..Default::default() };
        let mut keep = vec![true; self.entries.len()];
        for (i, p) in self.entries.iter().enumerate() {
            let age = (today - parse_date(&p.fields.date, "date")?).num_days() as f64;
            if age > policy.ttl_days {
                keep[i] = false;
                report.expired_ttl.push(p.id.clone());
            } else if endorsement_weight(age, 0, 1) < policy.decay_floor {
                keep[i] = false;
                report.decayed.push(p.id.clone());
            }
        }
        // Near-duplicates within one (role, city, state): fold the older into the newer.
        let mut order: Vec<usize> = (0..self.entries.len()).filter(|&i| keep[i]).collect();
        order.sort_by(|&a, &b| self.entries[b].fields.date.cmp(&self.entries[a].fields.date));
        let mut merged_workers: HashMap<usize, Vec<Endorsed>> = HashMap::new();
        for (pos, &newer) in order.iter().enumerate() {
            if !keep[newer] {
                continue;
            }
            for &older in &order[pos + 1..] {
                let (a, b) = (&self.entries[newer].fields, &self.entries[older].fields);
                let same_slot = norm(&a.role) == norm(&b.role) && norm(&a.city) == norm(&b.city) && norm(&a.state) == norm(&b.state);
                if keep[older] && same_slot && crate::dot(self.vector(newer), self.vector(older)) >= policy.merge_cosine {
                    keep[older] = false;
                    let target = merged_workers.entry(newer).or_insert_with(|| a.workers.clone());
                    for w in &b.workers {
                        if !target.iter().any(|x| x.worker_id == w.worker_id) {
                            target.push(w.clone());
                        }
                    }
                    report.merged.push((self.entries[older].id.clone(), self.entries[newer].id.clone()));
                }
            }
        }
        let mut entries = Vec::new();
        let mut vectors = Vec::new();
        for (i, p) in self.entries.iter().enumerate() {
            if keep[i] {
                let mut p = p.clone();
                if let Some(workers) = merged_workers.remove(&i) {
                    p.fields.workers = workers;
                }
                entries.push(p);
                vectors.extend_from_slice(self.vector(i));
            }
        }
        self.rewrite(&entries, &vectors)?;
        self.entries = entries;
        self.vectors = vectors;
        self.reindex();
        report.after = self.entries.len();
        Ok(report)
    }

    fn rewrite(&mut self, entries: &[Playbook], vectors: &[f32]) -> Result<()> {
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut out = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
        let mut text = String::new();
        for (i, p) in entries.iter().enumerate() {
            let line = LogLine::Upsert { playbook: p.clone(), embedding: encode(&vectors[i * self.dim..(i + 1) * self.dim]) };
            text.push_str(&serde_json::to_string(&line).map_err(LakehouseError::internal)?);
            text.push('\n');
        }
        let mut failures: Vec<_> = self.failures.iter().collect();
        failures.sort();
        for (key, &count) in failures {
            for _ in 0..count {
                let line = LogLine::Fail {
                    city: key.city.clone(),
                    state: key.state.clone(),
                    worker_id: key.worker_id.clone(),
                    name: key.name.clone(),
                    at: lakehouse_shared::time::now_rfc3339(),
                };
                text.push_str(&serde_json::to_string(&line).map_err(LakehouseError::internal)?);
                text.push('\n');
            }
        }
        out.write_all(text.as_bytes()).and_then(|_| out.sync_all()).map_err(|e| io_error(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io_error(&self.path, e))?;
        self.file = OpenOptions::new().append(true).read(true).open(&self.path).map_err(|e| io_error(&self.path, e))?;
        Ok(())
    }
}

/// A stable id from (operation, date): the same fill seeded twice gets the same id.
fn uuid_like(p: &NewPlaybook) -> String {
    use sha2::{Digest, Sha256};
    let (op, date) = identity(p);
    let digest = Sha256::digest(format!("{op}\0{date}").as_bytes());
    format!("pb_{}", &hex_string(&digest)[..16])
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DIM: usize = 4;

    fn unit(v: [f32; DIM]) -> Vec<f32> {
        let mut v = v.to_vec();
        crate::normalize(&mut v);
        v
    }

    fn fill(op: &str, role: &str, city: &str, date: &str, workers: &[(&str, &str)]) -> NewPlaybook {
        NewPlaybook {
            operation: op.into(),
            role: role.into(),
            city: city.into(),
            state: "OH".into(),
            date: date.into(),
            staffer: "sarah".into(),
            workers: workers.iter().map(|(id, name)| Endorsed { worker_id: (*id).into(), name: (*name).into() }).collect(),
            valid_from: None,
            valid_until: None,
            schema_fingerprint: None,
            attributes: BTreeMap::new(),
        }
    }

    fn query(city: &str, role: &str, today: &str) -> BoostQuery {
        BoostQuery { city: Some(city.into()), state: Some("OH".into()), role: Some(role.into()), k: 200, today: today.into(), ..Default::default() }
    }

    #[test]
    fn boost_matches_the_hand_computed_value() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
        // An exact role+geo match (similarity 1.0), 15 days old, two workers.
        memory.seed(fill("Welder x2 in Toledo, OH", "Welder", "Toledo", "2026-11-06", &[("1", "Ana"), ("2", "Bo")]), &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
        let result = memory.boost(&unit([0.0, 1.0, 0.0, 0.0]), &query("Toledo", "Welder", "2026-11-21")).unwrap();
        let expected = 1.0 * 0.5 * (-15.0f64 / 30.0).exp() as f32 / 2.0;
        assert_eq!(result.workers.len(), 2);
        assert!((result.workers[0].boost - expected).abs() < 1e-6, "{} vs {expected}", result.workers[0].boost);
        assert!(result.line.starts_with("playbook_boost: boosts=2 sources=1 parsed=1 matched=2 target_geo=Toledo, OH target_role=Welder"));
    }

    #[test]
    fn a_no_show_halves_the_next_boost_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let before;
        {
            let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
            // 30 days old: 0.5 * e^-1 = 0.18, under the cap, so the halving is visible.
            memory.seed(fill("Welder x1 in Toledo", "Welder", "Toledo", "2026-10-22", &[("1", "Ana")]), &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
            before = memory.boost(&unit([1.0, 0.0, 0.0, 0.0]), &query("Toledo", "Welder", "2026-11-21")).unwrap().workers[0].boost;
            assert_eq!(memory.mark_failed("Toledo", "OH", "1", "Ana").unwrap(), 1);
        }
        let memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
        let after = memory.boost(&unit([1.0, 0.0, 0.0, 0.0]), &query("toledo", "welder", "2026-11-21")).unwrap();
        assert!((after.workers[0].boost - before / 2.0).abs() < 1e-6);
        assert_eq!(after.workers[0].failures, 1);
    }

    #[test]
    fn the_same_operation_and_date_updates_or_noops_instead_of_duplicating() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
        let v = unit([1.0, 1.0, 0.0, 0.0]);
        let base = fill("Welder x2 in Toledo", "Welder", "Toledo", "2026-11-20", &[("1", "Ana")]);
        assert_eq!(memory.seed(base.clone(), &v).unwrap().0, SeedOp::Add);
        assert_eq!(memory.seed(base.clone(), &v).unwrap().0, SeedOp::Noop);
        let more = fill("Welder x2 in Toledo", "Welder", "Toledo", "2026-11-20", &[("2", "Bo")]);
        let (op, entry) = memory.seed(more, &v).unwrap();
        assert_eq!(op, SeedOp::Update);
        assert_eq!(entry.fields.workers.len(), 2, "endorsements are merged");
        assert_eq!(memory.len(), 1);
        assert_eq!(memory.delete(&entry.id).unwrap(), SeedOp::Delete);
        assert_eq!(PlaybookMemory::open(dir.path(), DIM).unwrap().len(), 0);
    }

    #[test]
    fn expired_and_schema_changed_playbooks_never_boost_and_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
        let mut expired = fill("Welder a", "Welder", "Toledo", "2026-11-01", &[("1", "Ana")]);
        expired.valid_until = Some("2026-11-10".into());
        let mut old_schema = fill("Welder b", "Welder", "Toledo", "2026-11-02", &[("2", "Bo")]);
        old_schema.schema_fingerprint = Some("fp-old".into());
        memory.seed(expired, &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
        memory.seed(old_schema, &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
        let mut q = query("Toledo", "Welder", "2026-11-21");
        q.schema_fingerprint = Some("fp-new".into());
        let result = memory.boost(&unit([1.0, 0.0, 0.0, 0.0]), &q).unwrap();
        assert!(result.workers.is_empty());
        assert_eq!((result.diagnostics.skipped_expired, result.diagnostics.skipped_schema_changed), (1, 1));
    }

    #[test]
    fn exact_role_matches_fill_half_of_k_and_cosine_fills_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
        for d in 1..=6 {
            memory.seed(fill(&format!("Welder {d}"), "Welder", "Toledo", &format!("2026-11-0{d}"), &[(&format!("w{d}"), "W")]), &unit([0.0, 0.0, 1.0, 0.0])).unwrap();
            memory.seed(fill(&format!("Cook {d}"), "Cook", "Toledo", &format!("2026-11-0{d}"), &[(&format!("c{d}"), "C")]), &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
        }
        memory.seed(fill("Welder elsewhere", "Welder", "Akron", "2026-11-05", &[("a1", "A")]), &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
        let mut q = query("Toledo", "Welder", "2026-11-10");
        q.k = 4;
        let result = memory.boost(&unit([1.0, 0.0, 0.0, 0.0]), &q).unwrap();
        assert_eq!(result.diagnostics.exact_matches, 2, "exact matches fill half of k");
        assert_eq!(result.diagnostics.sources, 4);
        let exact: Vec<_> = result.workers.iter().filter(|w| w.citations[0].exact_match).collect();
        assert_eq!(exact.len(), 2);
        assert!(result.workers.iter().all(|w| w.key.city == "toledo"), "the geo prefilter keeps Akron out");
        assert!(result.workers.iter().filter(|w| !w.citations[0].exact_match).all(|w| w.key.worker_id.starts_with('c')));
    }

    #[test]
    fn compaction_drops_old_and_merges_near_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
        memory.seed(fill("Welder old", "Welder", "Toledo", "2025-01-01", &[("1", "A")]), &unit([1.0, 0.0, 0.0, 0.0])).unwrap();
        memory.seed(fill("Welder x2 Toledo", "Welder", "Toledo", "2026-11-01", &[("2", "B")]), &unit([0.0, 1.0, 0.0, 0.0])).unwrap();
        memory.seed(fill("Welders x2 Toledo", "Welder", "Toledo", "2026-11-02", &[("3", "C")]), &unit([0.0, 1.0, 0.01, 0.0])).unwrap();
        let policy = CompactionPolicy { ttl_days: 365.0, decay_floor: 1e-4, merge_cosine: 0.98 };
        let report = memory.compact(&policy, "2026-11-21").unwrap();
        assert_eq!((report.before, report.after, report.expired_ttl.len(), report.merged.len()), (3, 1, 1, 1));
        let reopened = PlaybookMemory::open(dir.path(), DIM).unwrap();
        assert_eq!(reopened.len(), 1);
        assert_eq!(reopened.entries()[0].fields.workers.len(), 2);
    }

    proptest! {
        #[test]
        fn boost_equals_the_formula_and_never_exceeds_the_cap(
            ages in prop::collection::vec(0u32..400, 1..12),
            failures in 0u32..5,
            n_workers in 1usize..6,
            similarity_x in 0.0f32..1.0,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut memory = PlaybookMemory::open(dir.path(), DIM).unwrap();
            let today = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
            let pv = unit([1.0, 0.0, 0.0, 0.0]);
            let qv = unit([similarity_x, (1.0 - similarity_x * similarity_x).max(0.0).sqrt(), 0.0, 0.0]);
            let similarity = crate::dot(&qv, &pv);
            let mut expected = 0.0f64;
            for (n, age) in ages.iter().enumerate() {
                let date = (today - chrono::Duration::days(*age as i64)).format("%Y-%m-%d").to_string();
                let workers: Vec<(String, String)> = (0..n_workers).map(|j| (if j == 0 { "target".to_string() } else { format!("o{n}-{j}") }, "T".to_string())).collect();
                let refs: Vec<(&str, &str)> = workers.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                memory.seed(fill(&format!("op {n}"), "Cook", "Toledo", &date, &refs), &pv).unwrap();
                expected += similarity as f64 * 0.5 * (-(*age as f64) / 30.0).exp() * 0.5f64.powi(failures as i32) / n_workers as f64;
            }
            for _ in 0..failures {
                memory.mark_failed("Toledo", "OH", "target", "T").unwrap();
            }
            let result = memory.boost(&qv, &query("Toledo", "Welder", "2026-11-21")).unwrap();
            let target = result.workers.iter().find(|w| w.key.worker_id == "target");
            let got = target.map(|w| w.boost).unwrap_or(0.0);
            prop_assert!(got <= BOOST_CAP);
            prop_assert!((got as f64 - expected.min(BOOST_CAP as f64)).abs() < 1e-4, "got {got}, expected {expected}");
        }
    }
}
