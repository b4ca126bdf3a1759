//! One process owns a data directory (DESIGN decision 6).
//!
//! An OS advisory lock on `<data_dir>/.lock`: released by the kernel when the process
//! dies, so a crash never leaves a stale lock behind. The holder's pid is written
//! into the file so the error can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use lakehouse_shared::{LakehouseError, Result};

pub struct DataDirLock {
    file: Option<File>,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(".lock");
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                file.rewind()?;
                write!(file, "{}", std::process::id())?;
                file.sync_data()?;
                Ok(Self { file: Some(file) })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Err(LakehouseError::DataDirLocked {
                    path: data_dir.display().to_string(),
                    holder: if holder.trim().is_empty() { "unknown".into() } else { holder.trim().to_string() },
                })
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }

    pub fn release(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = file.unlock();
        }
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_the_first_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).err().expect("second lock must fail");
        assert!(err.to_string().contains(&std::process::id().to_string()), "{err}");
        first.release();
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
