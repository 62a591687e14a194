//! Opening a store only when it holds everything that was acknowledged. A watermark file beside sled's
//! files records the last commit made durable (written after each acknowledging flush); at open, sled is
//! opened with its panics caught, every record is read once (checksums, count and digest against the
//! integrity record, see [`super::records`]), and the integrity record's commit number is compared with
//! the watermark. A store that fails is refused with what was found and what to do.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Once;

use super::records::{FIRST_KEY, Integrity, META_KEY, Open, Scan, printable, seal};
use super::{StoreError, StoreResult};

/// The watermark file, beside sled's `db`, `conf` and `blobs/`.
pub const WATERMARK_FILE: &str = "usersync.watermark";
const MAGIC: &[u8; 4] = b"USWM";
const LEN: usize = 16;

/// What to do with a store that holds less than it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDamage {
    /// Refuse to open it ([`StoreError::Damaged`]).
    Refuse,
    /// Open it as it is, writing nothing (`usersync verify`).
    Inspect,
    /// Drop the records that fail their checksum and take what is left as the truth (`--accept-data-loss`).
    AcceptLoss,
}

/// The last commit known to be durable, kept outside the sled files.
pub(crate) struct Watermark {
    file: File,
    sync: bool,
}

impl Watermark {
    /// The commit the file names; `None` when there is no file (a new store, or one from before watermarks).
    pub(crate) fn read(dir: &Path) -> Result<Option<u64>, String> {
        let mut bytes = Vec::new();
        match File::open(dir.join(WATERMARK_FILE)) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(|e| format!("the watermark file is unreadable: {e}"))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("the watermark file is unreadable: {e}")),
        };
        decode(&bytes).map(Some).ok_or_else(|| "the watermark file is damaged".to_string())
    }

    /// Opens the file for writing, creating it with `initial` when there is none; `sync`: every write is
    /// followed by `fdatasync`. An existing file is left as it is until the next write.
    pub(crate) fn open(dir: &Path, sync: bool, initial: u64) -> std::io::Result<Watermark> {
        let path = dir.join(WATERMARK_FILE);
        let existed = path.exists();
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        let watermark = Watermark { file, sync };
        if !existed {
            watermark.write(initial)?;
            if sync {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(watermark)
    }

    /// Records `seq` as durable. Sixteen bytes at offset 0: one sector, rewritten in place.
    pub(crate) fn write(&self, seq: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(&encode(seq), 0)?;
        if self.sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

fn encode(seq: u64) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[..4].copy_from_slice(MAGIC);
    out[4..12].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&out[..12]);
    out[12..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != LEN || &bytes[..4] != MAGIC {
        return None;
    }
    if crc32fast::hash(&bytes[..12]).to_le_bytes() != bytes[12..] {
        return None;
    }
    Some(u64::from_le_bytes(bytes[4..12].try_into().ok()?))
}

/// sled's cache of decoded pages. Its default, 1 GiB, lets the process grow with the data; pages it does
/// not hold are read back from the operating system's page cache, which measured no slower at 100,000
/// users (lookups, pages and creates alike), at 100 MB less memory.
const CACHE_BYTES: u64 = 64 << 20;

/// Opens sled at `path` without checking it (a copy just written).
pub(crate) fn open_sled(path: &Path) -> StoreResult<Open> {
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(CACHE_BYTES)
        .open()
        .map_err(|e| super::locked_or(e, path))?;
    let tree = (*db).clone();
    Ok(Open { db, tree })
}

/// Opens the active generation of the store in `data` and checks what sled recovered; see the module
/// documentation.
pub(crate) fn open_checked(data: &Path, on_damage: OnDamage) -> StoreResult<(Open, Integrity, Vec<String>)> {
    let files = super::layout::active(data)?;
    let watermark = Watermark::read(&files);
    let open_and_scan = || {
        quietly(|| -> sled::Result<(Open, Scan)> {
            let db = sled::Config::new().path(&files).cache_capacity(CACHE_BYTES).open()?;
            let tree = (*db).clone();
            let scan = Scan::of(&tree)?;
            Ok((Open { db, tree }, scan))
        })
    };
    let started = std::time::Instant::now();
    let mut opened = open_and_scan();
    if on_damage == OnDamage::AcceptLoss && !matches!(opened, Ok(Ok(_)) | Ok(Err(sled::Error::Io(_)))) {
        // sled's snapshot only saves reading the whole log; without it sled rebuilds from the log alone.
        log::warn!("accepting data loss: sled could not open the store; trying again without its snapshot");
        remove_snapshots(&files)?;
        opened = open_and_scan();
    }
    let (open, scan) = match opened {
        Ok(Ok(found)) => found,
        Ok(Err(sled::Error::Io(e))) => return Err(super::locked_or(sled::Error::Io(e), data)),
        Ok(Err(e)) => {
            return Err(damaged(data, &[format!("the database could not be read: {}", in_words(&e))]));
        }
        Err(panic) => {
            return Err(damaged(
                data,
                &[format!("the database could not be read (sled stopped with: {panic})")],
            ));
        }
    };
    let mut problems = scan.problems();
    let watermark = watermark.unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    match (scan.recorded, scan.meta_unreadable) {
        (Some(recorded), _) => {
            if let Some(mark) = watermark.filter(|&m| m > recorded.seq) {
                problems.push(format!(
                    "the store holds commits up to number {} but commit {mark} was acknowledged: the last acknowledged writes are missing",
                    recorded.seq
                ));
            }
        }
        (None, true) => {}
        (None, false) if scan.found.count == 0 => {
            if let Some(mark) = watermark.filter(|&m| m > 0) {
                problems.push(format!(
                    "the store's files hold nothing, but it once held data ({mark} commits were acknowledged)"
                ));
            }
        }
        (None, false) if watermark.is_none() => {
            return migrate(open, scan, on_damage);
        }
        (None, false) => problems.push("the integrity record is missing".to_string()),
    }
    log::info!(
        "start-up check: {} records ({} bytes) read and checked in {} ms",
        scan.found.count,
        scan.found.bytes,
        started.elapsed().as_millis()
    );
    if problems.is_empty() {
        let state = scan.recorded.unwrap_or_default();
        return Ok((open, state, problems));
    }
    match on_damage {
        OnDamage::Refuse => Err(damaged(data, &problems)),
        OnDamage::Inspect => Ok((open, scan.recorded.unwrap_or(scan.found), problems)),
        OnDamage::AcceptLoss => accept_loss(open, scan, watermark, problems),
    }
}

fn remove_snapshots(path: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("snap.") {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// A sled error without the debugging details its `Display` carries.
fn in_words(e: &sled::Error) -> String {
    match e {
        sled::Error::Corruption { at: Some(at), .. } => format!("sled found corrupted data at {at:?}"),
        sled::Error::Corruption { at: None, .. } => "sled found corrupted data".into(),
        other => other.to_string(),
    }
}

/// The refusal: what was found, then what to do.
pub(crate) fn damaged(path: &Path, problems: &[String]) -> StoreError {
    let mut text = format!("the store in {} is damaged and was not opened:\n", path.display());
    for p in problems {
        text.push_str(&format!("  - {p}\n"));
    }
    text.push_str(&format!(
        "What to do: restore the data directory from a backup; or run `usersync --data {0} verify` to see \
         the damage in detail; or, only after deciding that what is missing may be lost, start with \
         `usersync --data {0} --accept-data-loss`.",
        path.display()
    ));
    StoreError::Damaged(text)
}

/// A store written before records had checksums: seals every record and writes the integrity record.
fn migrate(open: Open, scan: Scan, on_damage: OnDamage) -> StoreResult<(Open, Integrity, Vec<String>)> {
    if on_damage == OnDamage::Inspect {
        return Ok((
            open,
            Integrity::default(),
            vec!["the store has no checksums yet (written by an older usersync)".into()],
        ));
    }
    let mut state = Integrity { seq: 1, ..Integrity::default() };
    let mut batch = sled::Batch::default();
    for item in open.tree.range(FIRST_KEY..) {
        let (k, v) = item?;
        let sealed = seal(&k, &v);
        state.add_sealed(&k, &sealed);
        batch.insert(k, sealed);
    }
    batch.insert(META_KEY, state.encoded());
    open.tree.apply_batch(batch)?;
    open.db.flush()?;
    log::info!("added checksums to the {} records of a store written by an older usersync", scan.found.count);
    Ok((open, state, Vec::new()))
}

/// `--accept-data-loss`: drops the records that fail their checksum and rewrites the integrity record to
/// what is there, so that the store opens from now on.
fn accept_loss(
    open: Open,
    scan: Scan,
    watermark: Option<u64>,
    problems: Vec<String>,
) -> StoreResult<(Open, Integrity, Vec<String>)> {
    for p in &problems {
        log::warn!("accepting data loss: {p}");
    }
    let mut batch = sled::Batch::default();
    let mut state = scan.found;
    for key in &scan.bad {
        if let Some(v) = open.tree.get(key)? {
            state.remove_sealed(key, &v);
        }
        log::warn!("accepting data loss: dropped the record {}", printable(key));
        batch.remove(key.clone());
    }
    state.seq = scan.recorded.map_or(0, |r| r.seq).max(watermark.unwrap_or(0)) + 1;
    batch.insert(META_KEY, state.encoded());
    open.tree.apply_batch(batch)?;
    open.db.flush()?;
    log::warn!(
        "accepted data loss: the store now holds {} records; run `usersync verify` to see what no longer fits together",
        state.count
    );
    Ok((open, state, problems))
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into its message and keeping the panic hook from printing it (and a
/// backtrace) on this thread meanwhile.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "an unknown failure".into())
    })
}

/// Writes the watermark of a generation not yet in use (a compaction's copy); `sync`: and syncs it.
pub(crate) fn write_watermark(dir: &Path, seq: u64, sync: bool) -> std::io::Result<()> {
    let mut f = File::create(dir.join(WATERMARK_FILE))?;
    f.write_all(&encode(seq))?;
    if sync {
        f.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_reads_back_and_a_damaged_one_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Watermark::read(dir.path()), Ok(None));
        let w = Watermark::open(dir.path(), true, 7).unwrap();
        assert_eq!(Watermark::read(dir.path()), Ok(Some(7)));
        w.write(41).unwrap();
        w.write(42).unwrap();
        assert_eq!(Watermark::read(dir.path()), Ok(Some(42)));
        let mut bytes = std::fs::read(dir.path().join(WATERMARK_FILE)).unwrap();
        bytes[5] ^= 1;
        std::fs::write(dir.path().join(WATERMARK_FILE), bytes).unwrap();
        assert!(Watermark::read(dir.path()).is_err());
    }

    #[test]
    fn a_store_from_before_checksums_is_sealed_once_and_then_checked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.insert(b"Ua", &b"{}"[..]).unwrap();
            db.insert(b"Ub", &b""[..]).unwrap();
            db.flush().unwrap();
        }
        let (open, state, problems) = open_checked(dir.path(), OnDamage::Refuse).unwrap();
        assert!(problems.is_empty());
        assert_eq!((state.seq, state.count), (1, 2));
        let records = super::super::records::Records::new(open, state);
        assert_eq!(records.get(b"Ua").unwrap().as_deref(), Some(&b"{}"[..]));
        drop(records);
        // from now on the watermark exists, and the integrity record must hold
        Watermark::open(dir.path(), false, 1).unwrap();
        let (open, _, _) = open_checked(dir.path(), OnDamage::Refuse).unwrap();
        open.tree.remove(META_KEY).unwrap();
        open.db.flush().unwrap();
        drop(open);
        let refused = open_checked(dir.path(), OnDamage::Refuse).err().unwrap();
        assert!(refused.to_string().contains("the integrity record is missing"), "{refused}");
    }

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(quietly(|| 7), Ok(7));
        let r: Result<(), String> = quietly(|| panic!("tried to serialize Uninitialized"));
        assert_eq!(r, Err("tried to serialize Uninitialized".to_string()));
    }
}
