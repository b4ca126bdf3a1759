//! The append-only mutation journal (ADR: journald).
//!
//! Every insert / update / delete / tombstone / restore is one JSON line in
//! `<data_dir>/_journal/events.jsonl`: who, when, which dataset, what operation,
//! and for row changes the key with old and new values. Lines are fsync'd before
//! `append` returns and are never rewritten. A torn last line (the process died
//! mid-write) was never acknowledged, so it is cut off on open.

use std::path::Path;

use chrono::{DateTime, Utc};
use lakehouse_shared::time::{now_rfc3339, parse_instant};
use lakehouse_shared::jsonl::JsonlFile;
use lakehouse_shared::{LakehouseError, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub seq: u64,
    pub id: String,
    pub at: String,
    pub actor: String,
    pub operation: String,
    pub dataset: Option<String>,
    #[serde(default)]
    pub details: serde_json::Value,
}

/// What a caller supplies; the journal assigns seq, id and time.
#[derive(Debug, Clone, Deserialize)]
pub struct NewEvent {
    pub actor: String,
    pub operation: String,
    pub dataset: Option<String>,
    #[serde(default)]
    pub details: serde_json::Value,
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub dataset: Option<String>,
    pub actor: Option<String>,
    pub operation: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
}

impl EventFilter {
    pub fn parse_times(mut self, since: Option<&str>, until: Option<&str>) -> Result<Self> {
        self.since = since.map(parse_instant).transpose()?;
        self.until = until.map(parse_instant).transpose()?;
        Ok(self)
    }

    fn matches(&self, e: &Event) -> bool {
        let at = || parse_instant(&e.at).ok();
        self.dataset.as_ref().is_none_or(|d| e.dataset.as_deref() == Some(d))
            && self.actor.as_ref().is_none_or(|a| &e.actor == a)
            && self.operation.as_ref().is_none_or(|o| &e.operation == o)
            && self.since.is_none_or(|s| at().is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| at().is_some_and(|t| t < u))
    }
}

pub struct Journal {
    file: JsonlFile,
    events: Vec<Event>,
}

impl Journal {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let (file, events) = JsonlFile::open(&data_dir.join("_journal").join("events.jsonl"))?;
        Ok(Self { file, events })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Append one event; returns it once it is durable on disk.
    pub fn append(&mut self, new: NewEvent) -> Result<Event> {
        if new.operation.trim().is_empty() {
            return Err(LakehouseError::invalid("journal event needs an operation"));
        }
        let event = Event {
            seq: self.events.last().map_or(1, |e| e.seq + 1),
            id: uuid::Uuid::new_v4().to_string(),
            at: now_rfc3339(),
            actor: new.actor,
            operation: new.operation,
            dataset: new.dataset,
            details: new.details,
        };
        self.file.append(std::slice::from_ref(&event))?;
        self.events.push(event.clone());
        Ok(event)
    }

    /// Matching events, oldest first; `limit` keeps the newest `limit` of them.
    pub fn query(&self, filter: &EventFilter) -> Vec<Event> {
        let mut hits: Vec<Event> = self.events.iter().filter(|e| filter.matches(e)).cloned().collect();
        if let Some(limit) = filter.limit {
            let skip = hits.len().saturating_sub(limit);
            hits.drain(..skip);
        }
        hits
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn ev(actor: &str, op: &str, ds: &str) -> NewEvent {
        NewEvent { actor: actor.into(), operation: op.into(), dataset: Some(ds.into()), details: serde_json::json!({}) }
    }

    #[test]
    fn events_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.append(ev("sarah", "insert", "workers")).unwrap();
        j.append(ev("kim", "tombstone", "clients")).unwrap();
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        let all = j.query(&EventFilter::default());
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(all[1].actor, "kim");
    }

    #[test]
    fn filters_by_dataset_actor_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        for i in 0..5 {
            j.append(ev(if i % 2 == 0 { "sarah" } else { "kim" }, "insert", "workers")).unwrap();
        }
        j.append(ev("sarah", "insert", "clients")).unwrap();
        let f = EventFilter { actor: Some("sarah".into()), dataset: Some("workers".into()), ..Default::default() };
        assert_eq!(j.query(&f).len(), 3);
        let f = EventFilter { limit: Some(2), ..Default::default() };
        assert_eq!(j.query(&f).iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5, 6]);
    }

    #[test]
    fn torn_last_line_is_dropped_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.append(ev("sarah", "insert", "workers")).unwrap();
        let path = j.path().to_path_buf();
        drop(j);
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"seq\":2,\"id\":").unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.len(), 1);
        j.append(ev("kim", "insert", "workers")).unwrap();
        drop(j);
        assert_eq!(Journal::open(dir.path()).unwrap().len(), 2);
    }

    #[test]
    fn time_range_filter_uses_event_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.append(ev("sarah", "insert", "workers")).unwrap();
        let future = EventFilter::default().parse_times(Some("2999-01-01"), None).unwrap();
        assert!(j.query(&future).is_empty());
        let past = EventFilter::default().parse_times(Some("2000-01-01"), Some("2999-01-01")).unwrap();
        assert_eq!(j.query(&past).len(), 1);
    }
}
