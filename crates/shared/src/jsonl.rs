//! Durable JSON-lines files: the format of every journal in the data directory.
//!
//! A line is acknowledged only after `fsync`. A torn final line (the process died
//! mid-write) was never acknowledged, so opening cuts it off; a damaged line in the
//! middle is a real corruption and is reported, not skipped.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{LakehouseError, Result};

pub struct JsonlFile {
    path: PathBuf,
    file: File,
}

impl JsonlFile {
    /// Open (creating parents), repair a torn tail, and return every record.
    pub fn open<T: DeserializeOwned>(path: &Path) -> Result<(Self, Vec<T>)> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let records = read_and_repair(path)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok((Self { path: path.to_path_buf(), file }, records))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append records as lines and fsync once; durable when this returns.
    pub fn append<T: Serialize>(&mut self, records: &[T]) -> Result<()> {
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        Ok(())
    }
}

fn read_and_repair<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let Ok(file) = File::open(path) else { return Ok(Vec::new()) };
    let mut records = Vec::new();
    let mut good_bytes: u64 = 0;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        let record = serde_json::from_slice(&line).map_err(|e| {
            LakehouseError::Internal(format!("{} corrupt at byte {good_bytes}: {e}", path.display()))
        })?;
        records.push(record);
        good_bytes += n as u64;
    }
    if fs::metadata(path)?.len() > good_bytes {
        OpenOptions::new().write(true).open(path)?.set_len(good_bytes)?;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_cut_and_later_appends_are_readable() {
        let dir = std::env::temp_dir().join(format!("jsonl-{}", std::process::id()));
        let path = dir.join("x.jsonl");
        let _ = fs::remove_file(&path);
        let (mut f, none): (JsonlFile, Vec<u32>) = JsonlFile::open(&path).unwrap();
        assert!(none.is_empty());
        f.append(&[1u32, 2]).unwrap();
        drop(f);
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"3").unwrap();
        let (mut f, got): (JsonlFile, Vec<u32>) = JsonlFile::open(&path).unwrap();
        assert_eq!(got, vec![1, 2]);
        f.append(&[4u32]).unwrap();
        let (_, got): (JsonlFile, Vec<u32>) = JsonlFile::open(&path).unwrap();
        assert_eq!(got, vec![1, 2, 4]);
        let _ = fs::remove_dir_all(dir);
    }
}
