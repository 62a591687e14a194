//! Where the store's files are. A store that was never compacted keeps sled's files (and the watermark)
//! directly in the data directory. A compaction writes a new generation, a subdirectory `gen-N`, and makes
//! it the active one by replacing the `CURRENT` file, which names it (as LevelDB does): one atomic rename,
//! so a crash leaves either the old generation or the new one active, never half of each. What is not
//! the active generation (older generations, a next one never switched to, the files of a store from
//! before its first compaction) is removed by [`clean`].

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{StoreError, StoreResult};

/// The file naming the active generation.
pub const CURRENT_FILE: &str = "CURRENT";
const CURRENT_TMP: &str = "CURRENT.tmp";
const PREFIX: &str = "gen-";
/// What sled and the store write beside each other in a generation's directory.
const STORE_FILES: [&str; 4] = ["db", "conf", "blobs", super::integrity::WATERMARK_FILE];

fn name(generation: u64) -> String {
    format!("{PREFIX}{generation}")
}

/// `gen-N` → N: exactly that, so that a damaged `CURRENT` is noticed rather than read as something else.
fn parse(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// The active generation: 0 for a store never compacted (its files in the data directory itself).
pub fn generation(data: &Path) -> StoreResult<u64> {
    let text = match std::fs::read(data.join(CURRENT_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return flat(data),
        Err(e) => return Err(unreadable(data, &format!("the CURRENT file could not be read: {e}"))),
    };
    let generation =
        std::str::from_utf8(&text).ok().and_then(|t| t.strip_suffix('\n')).and_then(parse).ok_or_else(
            || unreadable(data, "the CURRENT file, which names the active generation, is damaged"),
        )?;
    if !data.join(name(generation)).join("conf").exists() {
        return Err(unreadable(
            data,
            &format!("the CURRENT file names the generation {}, which is missing", name(generation)),
        ));
    }
    Ok(generation)
}

/// Without `CURRENT`, sled's files are in the data directory, unless they were moved into a generation
/// and `CURRENT` went missing: that store is refused, never opened as a new one.
fn flat(data: &Path) -> StoreResult<u64> {
    if data.join("conf").exists() {
        return Ok(0);
    }
    let Ok(entries) = std::fs::read_dir(data) else { return Ok(0) };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        if let Some(g) = parse(&file_name.to_string_lossy())
            && entry.path().join("conf").exists()
        {
            return Err(unreadable(
                data,
                &format!(
                    "the CURRENT file, which names the active generation, is missing ({} is there)",
                    name(g)
                ),
            ));
        }
    }
    Ok(0)
}

fn unreadable(data: &Path, what: &str) -> StoreError {
    super::integrity::damaged(data, &[what.to_string()])
}

/// The directory holding the files of generation `generation`.
pub fn dir_of(data: &Path, generation: u64) -> PathBuf {
    if generation == 0 { data.to_path_buf() } else { data.join(name(generation)) }
}

/// The directory holding the active generation's files.
pub fn active(data: &Path) -> StoreResult<PathBuf> {
    Ok(dir_of(data, generation(data)?))
}

/// Writes (and syncs) the `CURRENT` that will name `generation`, beside the real one.
pub(crate) fn prepare_switch(data: &Path, generation: u64) -> std::io::Result<()> {
    let mut f = File::create(data.join(CURRENT_TMP))?;
    f.write_all(format!("{}\n", name(generation)).as_bytes())?;
    f.sync_all()
}

/// Makes the generation [`prepare_switch`] named, complete and synced, the active one: one rename. It is
/// durable once [`sync_dir`] has returned; until then a crash may leave either generation active.
pub(crate) fn commit_switch(data: &Path) -> std::io::Result<()> {
    std::fs::rename(data.join(CURRENT_TMP), data.join(CURRENT_FILE))
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Syncs every file of a generation written with sled's flush only (its log, its blobs) and the
/// directories naming them, before it is made active.
pub(crate) fn sync_generation(dir: &Path) -> std::io::Result<()> {
    File::open(dir.join("db"))?.sync_data()?;
    let blobs = dir.join("blobs");
    if blobs.exists() {
        for entry in std::fs::read_dir(&blobs)? {
            File::open(entry?.path())?.sync_data()?;
        }
        File::open(&blobs)?.sync_all()?;
    }
    File::open(dir)?.sync_all()
}

/// Removes everything in the data directory that is not the active generation: older generations, a
/// generation never switched to, a store's own files left from before its first compaction, and a
/// `CURRENT` never renamed into place. Nothing else is touched.
pub(crate) fn clean(data: &Path) -> StoreResult<()> {
    if !data.exists() {
        return Ok(());
    }
    let active = generation(data)?;
    for entry in std::fs::read_dir(data)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let text = file_name.to_string_lossy();
        let stale = match parse(&text) {
            Some(g) => g != active,
            None => {
                text == CURRENT_TMP
                    || (active > 0 && (STORE_FILES.contains(&text.as_ref()) || text.starts_with("snap.")))
            }
        };
        if !stale {
            continue;
        }
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_names_the_active_generation_and_clean_keeps_only_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        assert_eq!(generation(data).unwrap(), 0, "no CURRENT: sled's files in the data directory");
        for f in ["db", "conf", "snap.00000001", "usersync.watermark", ".reserve"] {
            std::fs::write(data.join(f), b"x").unwrap();
        }
        for g in [1, 2, 3] {
            std::fs::create_dir(data.join(name(g))).unwrap();
            std::fs::write(data.join(name(g)).join("conf"), b"x").unwrap();
        }
        clean(data).unwrap();
        assert!(data.join("db").exists() && !data.join("gen-2").exists(), "generation 0 keeps its files");
        std::fs::create_dir(data.join(name(2))).unwrap();
        std::fs::write(data.join(name(2)).join("conf"), b"x").unwrap();
        prepare_switch(data, 2).unwrap();
        commit_switch(data).unwrap();
        assert_eq!(active(data).unwrap(), data.join("gen-2"));
        clean(data).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        left.sort();
        assert_eq!(left, [".reserve", "CURRENT", "gen-2"]);
        std::fs::remove_file(data.join(CURRENT_FILE)).unwrap();
        assert!(generation(data).is_err(), "a missing CURRENT beside a generation is refused");

        for damaged in ["gen-2", "gen-02\n", "gen-x\n", "gem-2\n", "gen-3\n"] {
            std::fs::write(data.join(CURRENT_FILE), damaged).unwrap();
            let refused = generation(data).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(refused.contains("CURRENT") && refused.contains("What to do"), "{damaged:?}: {refused}");
        }
    }
}
