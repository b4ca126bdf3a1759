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

mod index;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use chrono::NaiveDate;
use lakehouse_shared::{LakehouseError, Result};
use serde::{Deserialize, Serialize};

use index::{day_number, EntryIndex, Scope, UNKNOWN};

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
    /// Return only the boosted workers that are candidates (the diagnostics still count all).
    #[serde(default)]
    pub candidates_only: bool,
    /// Keep at most this many citations per worker (the strongest); `citations_total` keeps the count.
    #[serde(default)]
    pub max_citations: Option<usize>,
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
    /// How many playbooks cite this worker (`citations` may be cut to `max_citations`).
    pub citations_total: usize,
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
    /// Playbooks in the target geo left out because they endorse none of the candidates.
    pub outside_candidates: usize,
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

impl BoostResult {
    /// One boost per worker id, largest first: a worker endorsed under two keys (two
    /// cities, or two spellings of a name) keeps the larger boost, which already counts
    /// its own failures. Ranking needs only this; citations are read for the final few.
    pub fn best_per_worker(&self) -> impl Iterator<Item = &WorkerBoost> {
        let mut seen = HashSet::new();
        self.workers.iter().filter(move |w| seen.insert(w.key.worker_id.as_str()))
    }
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
    /// The hot cache: filter facts as integers and postings (see [`index`]).
    index: EntryIndex,
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
            index: EntryIndex::default(),
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
                        self.index.replace(i, &self.entries[i], &playbook);
                        self.entries[i] = playbook;
                        self.vectors[i * self.dim..(i + 1) * self.dim].copy_from_slice(&vector);
                    }
                    None => {
                        self.by_identity.insert(key, self.entries.len());
                        self.index.push(&playbook);
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

    /// Rebuild the lookups after entries were removed (indices shifted).
    fn reindex(&mut self) {
        self.by_identity = self.entries.iter().enumerate().map(|(i, p)| (identity(&p.fields), i)).collect();
        self.index = EntryIndex::build(&self.entries);
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
    ///
    /// `candidates` are the worker ids the SQL filter let through. When given, only
    /// playbooks that endorse at least one of them are considered: a playbook that endorses
    /// none can boost nobody in this result, so it must not take one of the `k` places (the
    /// spec's own finding: globally ranked playbooks missed the candidate pool). They also
    /// give `matched`.
    pub fn boost(&self, query: &[f32], q: &BoostQuery, candidates: Option<&[&str]>) -> Result<BoostResult> {
        if query.len() != self.dim {
            return Err(LakehouseError::invalid(format!("query has {} dimensions, memory holds {}", query.len(), self.dim)));
        }
        let today = day_number(parse_date(&q.today, "today")?);
        let mut diag = BoostDiagnostics {
            target_geo: match (&q.city, &q.state) {
                (Some(c), Some(s)) => format!("{c}, {s}"),
                (None, Some(s)) => s.clone(),
                _ => "?".into(),
            },
            target_role: q.role.clone().unwrap_or_else(|| "?".into()),
            ..Default::default()
        };
        let mut pool = candidates.map(|c| self.index.pool(c.iter().copied()));
        // 1. Geo prefilter (same city and state), narrowed to playbooks that endorse a
        //    candidate when the SQL filter named them; then validity.
        let scope = self.index.scope(q.city.as_deref(), q.state.as_deref());
        let in_geo = match &mut pool {
            Some(pool) => {
                let endorsing: Vec<u32> = std::mem::take(&mut pool.endorsing).into_iter().filter(|&i| self.index.in_scope(i, scope)).collect();
                diag.outside_candidates = self.index.scope_len(scope) - endorsing.len();
                endorsing
            }
            None => self.index.members(scope),
        };
        let schema = q.schema_fingerprint.as_deref().map(|fp| self.index.schema_id(fp));
        let valid: Vec<u32> = in_geo.into_iter().filter(|&i| self.is_valid(i as usize, today, schema, &mut diag)).collect();
        diag.parsed = valid.len();
        // 2. Exact (role, city, state) matches: similarity 1.0, up to half of k, newest first.
        let exact_role = match (scope, &q.role) {
            (Scope::Place(_), Some(role)) => self.index.role_id(role),
            _ => UNKNOWN,
        };
        let (mut exact, rest): (Vec<u32>, Vec<u32>) =
            valid.into_iter().partition(|&i| exact_role != UNKNOWN && self.index.facts(i as usize).role == exact_role);
        exact.sort_unstable_by_key(|&i| (std::cmp::Reverse(self.index.facts(i as usize).day), i));
        exact.truncate(q.k / 2);
        diag.exact_matches = exact.len();
        // 3. Cosine fills the rest of k.
        let by_cosine = self.most_similar(query, &rest, q.k.saturating_sub(exact.len()));
        let chosen = exact.into_iter().map(|i| (i, 1.0f32, true)).chain(by_cosine.into_iter().map(|(i, s)| (i, s, false)));
        // 4. Spread each playbook's weight over its endorsed workers.
        let mut boosts: HashMap<WorkerKey, (f32, Vec<Citation>)> = HashMap::new();
        let mut sources = HashSet::new();
        for (i, similarity, exact_match) in chosen {
            let p = &self.entries[i as usize];
            let age_days = f64::from(today - self.index.facts(i as usize).day);
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
        diag.boosts = boosts.len();
        diag.sources = sources.len();
        let is_candidate = |key: &WorkerKey| pool.as_ref().is_none_or(|pool| self.index.in_pool(pool, &key.worker_id));
        diag.matched = boosts.keys().filter(|key| is_candidate(key)).count();
        let mut workers: Vec<WorkerBoost> = boosts
            .into_iter()
            .filter(|(key, _)| !q.candidates_only || is_candidate(key))
            .map(|(key, (sum, mut citations))| {
                citations.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
                let citations_total = citations.len();
                citations.truncate(q.max_citations.unwrap_or(usize::MAX));
                let failures = self.failures.get(&key).copied().unwrap_or(0);
                WorkerBoost { boost: sum.min(BOOST_CAP), failures, citations, citations_total, key }
            })
            .collect();
        workers.sort_by(|a, b| b.boost.total_cmp(&a.boost).then_with(|| a.key.cmp(&b.key)));
        let line = diag.line();
        Ok(BoostResult { workers, diagnostics: diag, line })
    }

    fn is_valid(&self, i: usize, today: i32, schema: Option<u32>, diag: &mut BoostDiagnostics) -> bool {
        let f = self.index.facts(i);
        if today > f.valid_until {
            diag.skipped_expired += 1;
            return false;
        }
        if today < f.valid_from {
            diag.skipped_not_yet_valid += 1;
            return false;
        }
        if let (Some(seeded), Some(current)) = (f.schema, schema) {
            if seeded != current {
                diag.skipped_schema_changed += 1;
                return false;
            }
        }
        true
    }

    /// The `k` entries of `pool` most similar to `query`, best first (ties: entry order).
    fn most_similar(&self, query: &[f32], pool: &[u32], k: usize) -> Vec<(u32, f32)> {
        if k == 0 {
            return Vec::new();
        }
        let mut scored = crate::score_rows(query, &self.vectors, self.dim, pool);
        let better = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, better);
            scored.truncate(k);
        }
        scored.sort_unstable_by(better);
        scored
    }

    /// The `k` playbooks most similar to `query` (optionally within a geo / role), with
    /// their similarity: the input of pattern discovery.
    pub fn similar(&self, query: &[f32], k: usize, city: Option<&str>, state: Option<&str>, role: Option<&str>) -> Vec<(Playbook, f32)> {
        let role = role.map(|r| self.index.role_id(r));
        let city = city.map(norm);
        let pool: Vec<u32> = self
            .index
            .members(self.index.scope(city.as_deref(), state))
            .into_iter()
            .filter(|&i| {
                // A city without a state still narrows (by name, in any state).
                role.is_none_or(|r| self.index.facts(i as usize).role == r)
                    && city.as_deref().is_none_or(|c| state.is_some() || norm(&self.entries[i as usize].fields.city) == c)
            })
            .collect();
        self.most_similar(query, &pool, k).into_iter().map(|(i, s)| (self.entries[i as usize].clone(), s)).collect()
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
                let (fa, fb) = (self.index.facts(newer), self.index.facts(older));
                let same_slot = fa.role == fb.role && fa.place == fb.place;
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
mod tests;
