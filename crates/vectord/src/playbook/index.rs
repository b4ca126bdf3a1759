//! The hot cache behind the boost. Every entry's filter facts are reduced to integers
//! (interned role, place, state and schema ids; dates as day numbers), and postings lead
//! from a place, a state or an endorsed worker to its entries. A boost then compares
//! integers and scores contiguous vectors: nothing is parsed, lowercased or allocated per
//! entry, so its cost follows the entries in scope, not the size of the memory.

use std::collections::HashSet;

use foldhash::HashMap;

use chrono::{Datelike, NaiveDate};

use super::{norm, parse_date, Playbook};

/// The id of a text the memory has never seen: it equals no stored id.
pub(super) const UNKNOWN: u32 = u32::MAX;

/// A table of distinct normalised texts, each with a dense id. Roles, places, states and
/// fingerprints share it: ids are only ever compared within one field.
#[derive(Default)]
struct Interner(HashMap<String, u32>);

impl Interner {
    fn intern(&mut self, text: String) -> u32 {
        let next = self.0.len() as u32;
        *self.0.entry(text).or_insert(next)
    }

    fn get(&self, text: &str) -> u32 {
        self.0.get(text).copied().unwrap_or(UNKNOWN)
    }
}

/// What a boost needs to know about one entry, as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Facts {
    pub role: u32,
    pub place: u32,
    pub state: u32,
    /// The fill's date as a day number.
    pub day: i32,
    /// First and last valid day, inclusive (`i32::MIN` / `i32::MAX` when open).
    pub valid_from: i32,
    pub valid_until: i32,
    /// The workers-schema fingerprint at seed time, if one was recorded.
    pub schema: Option<u32>,
}

/// Where a query looks for playbooks: its city, its state, or everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    Place(u32),
    State(u32),
    Everywhere,
}

pub(super) fn day_number(date: NaiveDate) -> i32 {
    date.num_days_from_ce()
}

fn place_key(city: &str, state: &str) -> String {
    format!("{}\u{1f}{}", norm(city), norm(state))
}

fn day_or(text: Option<&str>, open: i32) -> i32 {
    // Dates are validated when a playbook is seeded; one that still does not parse
    // (a hand-edited log) leaves the bound open rather than failing every query.
    text.and_then(|t| parse_date(t, "validity").ok()).map(day_number).unwrap_or(open)
}

#[derive(Default)]
pub(super) struct EntryIndex {
    strings: Interner,
    facts: Vec<Facts>,
    by_place: HashMap<u32, Vec<u32>>,
    by_state: HashMap<u32, Vec<u32>>,
    /// Endorsed worker id -> its dense number, which indexes `by_worker`.
    workers: WorkerNumbers,
    by_worker: Vec<Vec<u32>>,
}

/// Worker id -> dense number. Ids written as canonical decimal integers (database keys,
/// the common case) are held as numbers: a boost maps tens of thousands of candidate ids
/// per query, and hashing a u64 costs a fraction of hashing and comparing a string.
#[derive(Default)]
struct WorkerNumbers {
    numeric: HashMap<u64, u32>,
    text: HashMap<String, u32>,
}

impl WorkerNumbers {
    fn get(&self, id: &str) -> Option<u32> {
        match canonical_number(id) {
            Some(n) => self.numeric.get(&n).copied(),
            None => self.text.get(id).copied(),
        }
    }

    fn get_or_insert(&mut self, id: &str, next: u32) -> u32 {
        match canonical_number(id) {
            Some(n) => *self.numeric.entry(n).or_insert(next),
            None => *self.text.entry(id.to_string()).or_insert(next),
        }
    }
}

/// `id` as a number when it is one written canonically (digits, no sign, no leading
/// zero): then the number and the text identify each other, so either can be the key.
fn canonical_number(id: &str) -> Option<u64> {
    let digits = id.as_bytes();
    let canonical = !digits.is_empty() && digits.len() <= 19 && digits.iter().all(u8::is_ascii_digit) && (digits[0] != b'0' || digits.len() == 1);
    if canonical { id.parse().ok() } else { None }
}

#[cfg(test)]
mod number_tests {
    use super::canonical_number;
    use proptest::prelude::*;

    proptest! {
        /// Two ids share a numeric key only if they are the same text.
        #[test]
        fn a_numeric_key_stands_for_exactly_one_text(id in "[0-9]{0,21}|[ +-]?[0-9a-f]{1,4}") {
            if let Some(n) = canonical_number(&id) {
                prop_assert_eq!(n.to_string(), id);
            }
        }

        #[test]
        fn every_u64_up_to_19_digits_is_numeric(n in 0u64..10_000_000_000_000_000_000) {
            prop_assert_eq!(canonical_number(&n.to_string()), Some(n));
        }
    }
}

/// The SQL candidates a boost may reward, as a bitset over the memory's worker numbers
/// (a candidate the memory never saw cannot be endorsed, so it needs no bit), plus the
/// entries that endorse at least one of them, ascending.
pub(super) struct CandidatePool {
    bits: Vec<u64>,
    pub endorsing: Vec<u32>,
}

impl CandidatePool {
    fn holds(&self, worker: u32) -> bool {
        self.bits.get(worker as usize / 64).is_some_and(|word| word >> (worker % 64) & 1 == 1)
    }
}

impl EntryIndex {
    pub fn build(entries: &[Playbook]) -> Self {
        let mut index = Self::default();
        entries.iter().for_each(|p| index.push(p));
        index
    }

    pub fn facts(&self, i: usize) -> Facts {
        self.facts[i]
    }

    fn facts_of(&mut self, p: &Playbook) -> Facts {
        let f = &p.fields;
        Facts {
            role: self.strings.intern(norm(&f.role)),
            place: self.strings.intern(place_key(&f.city, &f.state)),
            state: self.strings.intern(norm(&f.state)),
            day: day_or(Some(&f.date), i32::MIN),
            valid_from: day_or(f.valid_from.as_deref(), i32::MIN),
            valid_until: day_or(f.valid_until.as_deref(), i32::MAX),
            schema: f.schema_fingerprint.as_ref().map(|s| self.strings.intern(s.clone())),
        }
    }

    /// Index the next entry (entries are only ever appended here; a delete rebuilds).
    pub fn push(&mut self, p: &Playbook) {
        let id = self.facts.len() as u32;
        let facts = self.facts_of(p);
        self.by_place.entry(facts.place).or_default().push(id);
        self.by_state.entry(facts.state).or_default().push(id);
        for w in &p.fields.workers {
            let list = self.postings_of(w.worker_id.trim());
            if list.last() != Some(&id) {
                list.push(id);
            }
        }
        self.facts.push(facts);
    }

    /// Entry `i` changed from `old` to `new` (an UPDATE). Posting lists may leave index
    /// order here; every reader sorts or breaks ties by entry index, so answers do not
    /// depend on it.
    pub fn replace(&mut self, i: usize, old: &Playbook, new: &Playbook) {
        let id = i as u32;
        let (before, after) = (self.facts[i], self.facts_of(new));
        if before.place != after.place {
            move_posting(&mut self.by_place, before.place, after.place, id);
        }
        if before.state != after.state {
            move_posting(&mut self.by_state, before.state, after.state, id);
        }
        let old_ids: HashSet<&str> = old.fields.workers.iter().map(|w| w.worker_id.trim()).collect();
        let new_ids: HashSet<&str> = new.fields.workers.iter().map(|w| w.worker_id.trim()).collect();
        for gone in old_ids.difference(&new_ids) {
            if let Some(n) = self.workers.get(gone) {
                self.by_worker[n as usize].retain(|&e| e != id);
            }
        }
        for added in new_ids.difference(&old_ids) {
            self.postings_of(added).push(id);
        }
        self.facts[i] = after;
    }

    fn postings_of(&mut self, worker_id: &str) -> &mut Vec<u32> {
        let next = self.by_worker.len() as u32;
        let n = self.workers.get_or_insert(worker_id, next);
        if n == next {
            self.by_worker.push(Vec::new());
        }
        &mut self.by_worker[n as usize]
    }

    /// The dense number of an endorsed worker id (UNKNOWN for one no entry endorses).
    pub fn worker_no(&self, worker_id: &str) -> u32 {
        self.workers.get(worker_id.trim()).unwrap_or(UNKNOWN)
    }

    pub fn role_id(&self, role: &str) -> u32 {
        self.strings.get(&norm(role))
    }

    pub fn schema_id(&self, fingerprint: &str) -> u32 {
        self.strings.get(fingerprint)
    }

    /// A city counts only with its state (city names repeat across states).
    pub fn scope(&self, city: Option<&str>, state: Option<&str>) -> Scope {
        match (city, state) {
            (Some(c), Some(s)) => Scope::Place(self.strings.get(&place_key(c, s))),
            (None, Some(s)) => Scope::State(self.strings.get(&norm(s))),
            _ => Scope::Everywhere,
        }
    }

    pub fn in_scope(&self, i: u32, scope: Scope) -> bool {
        let f = &self.facts[i as usize];
        match scope {
            Scope::Place(p) => f.place == p,
            Scope::State(s) => f.state == s,
            Scope::Everywhere => true,
        }
    }

    /// The entries in `scope`, ascending.
    pub fn members(&self, scope: Scope) -> Vec<u32> {
        let listed = |map: &HashMap<u32, Vec<u32>>, key: u32| {
            let mut list = map.get(&key).cloned().unwrap_or_default();
            list.sort_unstable();
            list
        };
        match scope {
            Scope::Place(p) => listed(&self.by_place, p),
            Scope::State(s) => listed(&self.by_state, s),
            Scope::Everywhere => (0..self.facts.len() as u32).collect(),
        }
    }

    /// How many entries are in `scope` (without listing them).
    pub fn scope_len(&self, scope: Scope) -> usize {
        match scope {
            Scope::Place(p) => self.by_place.get(&p).map_or(0, Vec::len),
            Scope::State(s) => self.by_state.get(&s).map_or(0, Vec::len),
            Scope::Everywhere => self.facts.len(),
        }
    }

    /// The candidate pool of a boost: one hash lookup per candidate id (a broad filter
    /// passes tens of thousands), no set of strings built.
    pub fn pool<'a>(&self, candidates: impl IntoIterator<Item = &'a str>) -> CandidatePool {
        let mut bits = vec![0u64; self.by_worker.len().div_ceil(64)];
        let mut seen = vec![0u64; self.facts.len().div_ceil(64)];
        let mut endorsing = Vec::new();
        for worker in candidates {
            let n = self.worker_no(worker);
            if n == UNKNOWN {
                continue;
            }
            bits[n as usize / 64] |= 1 << (n % 64);
            for &i in &self.by_worker[n as usize] {
                let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
                if seen[word] & bit == 0 {
                    seen[word] |= bit;
                    endorsing.push(i);
                }
            }
        }
        endorsing.sort_unstable();
        CandidatePool { bits, endorsing }
    }

    /// Whether `worker_id` is in `pool`.
    pub fn in_pool(&self, pool: &CandidatePool, worker_id: &str) -> bool {
        let n = self.worker_no(worker_id);
        n != UNKNOWN && pool.holds(n)
    }
}

fn move_posting(map: &mut HashMap<u32, Vec<u32>>, from: u32, to: u32, id: u32) {
    if let Some(list) = map.get_mut(&from) {
        list.retain(|&e| e != id);
    }
    map.entry(to).or_default().push(id);
}
