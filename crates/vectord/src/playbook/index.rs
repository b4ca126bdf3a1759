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
    by_worker: HashMap<String, Vec<u32>>,
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
            let list = self.by_worker.entry(w.worker_id.trim().to_string()).or_default();
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
            if let Some(list) = self.by_worker.get_mut(*gone) {
                list.retain(|&e| e != id);
            }
        }
        for added in new_ids.difference(&old_ids) {
            self.by_worker.entry((*added).to_string()).or_default().push(id);
        }
        self.facts[i] = after;
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

    /// The entries that endorse at least one of `workers`, ascending.
    pub fn endorsing<'a>(&self, workers: impl IntoIterator<Item = &'a str>) -> Vec<u32> {
        let mut seen = vec![false; self.facts.len()];
        let mut found = Vec::new();
        for worker in workers {
            for &i in self.by_worker.get(worker.trim()).map_or(&[][..], Vec::as_slice) {
                if !std::mem::replace(&mut seen[i as usize], true) {
                    found.push(i);
                }
            }
        }
        found.sort_unstable();
        found
    }
}

fn move_posting(map: &mut HashMap<u32, Vec<u32>>, from: u32, to: u32, id: u32) {
    if let Some(list) = map.get_mut(&from) {
        list.retain(|&e| e != id);
    }
    map.entry(to).or_default().push(id);
}
