//! Manifest files: atomic replace, so a crash leaves either the old or the new file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use lakehouse_shared::{LakehouseError, Result};

use crate::Manifest;

pub fn load_all(dir: &Path) -> Result<BTreeMap<String, Manifest>> {
    fs::create_dir_all(dir)?;
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let m: Manifest = serde_json::from_slice(&fs::read(&path)?)
                .map_err(|e| LakehouseError::Internal(format!("manifest {} unreadable: {e}", path.display())))?;
            out.insert(m.id.clone(), m);
        }
    }
    Ok(out)
}

pub fn write_atomic(dir: &Path, manifest: &Manifest) -> Result<()> {
    fs::create_dir_all(dir)?;
    let target = dir.join(format!("{}.json", manifest.id));
    let tmp = dir.join(format!(".{}.json.tmp", manifest.id));
    let mut f = File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(manifest)?)?;
    f.sync_all()?;
    fs::rename(&tmp, &target)?;
    File::open(dir)?.sync_all()?; // make the rename itself durable
    Ok(())
}

pub fn remove(dir: &Path, id: &str) -> Result<()> {
    match fs::remove_file(dir.join(format!("{id}.json"))) {
        Ok(()) => Ok(File::open(dir)?.sync_all()?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}
