//! Backups: a consistent snapshot of a running store, written as one file, and its restore into an empty
//! data directory. The snapshot is the store as of the moment the backup begins, so it holds every write
//! acknowledged before then. It is read in chunks, each under a hold of the committer as short as reading
//! a few hundred records; between chunks writers go on, and every commit first keeps what the keys still
//! to be copied held before it (see [`super::records::Preimages`]), so later chunks read the old values.
//!
//! The file: the magic `USERSYNC-BACKUP\n`, a format version (u32 LE), a JSON header (its length as u32
//! LE) naming the commit and the integrity record of the snapshot, then one `R` frame per record (key and
//! stored value, each preceded by its length as u32 LE, the value with its checksum), then an `E` frame
//! with the number of records (u64 LE), then the SHA-256 of everything before it. A restore reads the
//! whole file once to check it (checksum, every record's checksum, count and digest against the header)
//! before it writes anything.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::integrity::{open_sled, write_watermark};
use super::records::{FIRST_KEY, Integrity, META_KEY, Preimages, unseal};
use super::{Store, StoreError, StoreResult};
use crate::clock::timestamp;

const MAGIC: &[u8; 16] = b"USERSYNC-BACKUP\n";
const VERSION: u32 = 1;
/// Records read per hold of the committer.
const CHUNK: usize = 500;
/// Records written per batch when restoring.
const RESTORE_BATCH: usize = 5_000;
/// Longest key or value a frame may declare (sled values of a large group stay far below).
const MAX_FRAME: u32 = 256 << 20;

/// What the file says about its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupHeader {
    pub created: String,
    /// The number of the last commit the snapshot holds.
    pub commit: u64,
    pub records: u64,
    pub digest: u64,
    pub bytes: u64,
    /// The next id sled's generator hands out (restored so ids keep rising).
    pub next_id: u64,
}

/// Why a backup file cannot be restored, in words.
fn bad_file(why: impl std::fmt::Display) -> StoreError {
    StoreError::Damaged(format!("the backup file cannot be restored: {why}"))
}

/// Undoes the snapshot whatever happens to the backup (a client that goes away included).
struct Taking<'a>(&'a Store);

impl Drop for Taking<'_> {
    fn drop(&mut self) {
        let inner = &self.0.inner;
        inner.committer.alone(|| inner.records.set_snapshot(None));
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W: Write> {
    out: W,
    hash: Sha256,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }
}

impl Store {
    /// Writes a consistent snapshot of the store, as of now, to `out`; see the module documentation.
    pub fn backup(&self, out: impl Write) -> StoreResult<BackupHeader> {
        let inner = &self.inner;
        let started = self.inner.committer.alone(|| -> StoreResult<Option<BackupHeader>> {
            if inner.records.snapshot_taken() {
                return Ok(None);
            }
            let state = inner.records.state();
            let next_id = inner.records.current()?.db.generate_id()?;
            inner
                .records
                .set_snapshot(Some(Preimages { cursor: FIRST_KEY.to_vec(), ..Preimages::default() }));
            Ok(Some(BackupHeader {
                created: timestamp(self.now()),
                commit: state.seq,
                records: state.count,
                digest: state.digest,
                bytes: state.bytes,
                next_id,
            }))
        })?;
        let Some(header) = started else {
            return Err(StoreError::Conflict(
                "a backup is already being taken; try again when it is done".into(),
            ));
        };
        let _taking = Taking(self);
        let mut file = Hashing { out: BufWriter::new(out), hash: Sha256::new() };
        file.put(MAGIC)?;
        file.put(&VERSION.to_le_bytes())?;
        let json = serde_json::to_vec(&header).unwrap_or_default();
        file.put(&(json.len() as u32).to_le_bytes())?;
        file.put(&json)?;
        let mut written = 0u64;
        let mut longest = std::time::Duration::ZERO;
        loop {
            let held = std::time::Instant::now();
            let (chunk, done) = inner.committer.alone(|| inner.records.snapshot_chunk(CHUNK))?;
            longest = longest.max(held.elapsed());
            for (k, v) in &chunk {
                file.put(b"R")?;
                file.put(&(k.len() as u32).to_le_bytes())?;
                file.put(k)?;
                file.put(&(v.len() as u32).to_le_bytes())?;
                file.put(v)?;
            }
            written += chunk.len() as u64;
            if done {
                break;
            }
        }
        if written != header.records {
            return Err(StoreError::Damaged(format!(
                "the snapshot holds {written} records but the store counted {}; the backup is abandoned",
                header.records
            )));
        }
        file.put(b"E")?;
        file.put(&written.to_le_bytes())?;
        let Hashing { mut out, hash } = file;
        out.write_all(&hash.finalize())?;
        out.flush()?;
        log::info!(
            "backup of commit {} written: {written} records; writers were held off for at most {:.2} ms at a time",
            header.commit,
            longest.as_secs_f64() * 1000.0
        );
        Ok(header)
    }
}

/// A reader that hashes what it reads and says clearly when the file ends early.
struct Checked<R: Read> {
    input: R,
    hash: Sha256,
}

impl<R: Read> Checked<R> {
    fn take(&mut self, n: usize) -> StoreResult<Vec<u8>> {
        let mut buf = vec![0u8; n];
        self.input.read_exact(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                bad_file("it is truncated or damaged (it ends before its last record)")
            }
            _ => StoreError::Io(e),
        })?;
        self.hash.update(&buf);
        Ok(buf)
    }

    fn u32(&mut self) -> StoreResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn frame(&mut self) -> StoreResult<Vec<u8>> {
        let len = self.u32()?;
        if len > MAX_FRAME {
            return Err(bad_file("it is damaged (a record declares an impossible length)"));
        }
        self.take(len as usize)
    }
}

/// Reads a backup file through, calling `each` with every record, and checks it all; returns its header.
fn read_file(
    path: &Path,
    mut each: impl FnMut(Vec<u8>, Vec<u8>) -> StoreResult<()>,
) -> StoreResult<BackupHeader> {
    let file = File::open(path).map_err(|e| bad_file(format!("{} cannot be opened: {e}", path.display())))?;
    let mut r = Checked { input: BufReader::new(file), hash: Sha256::new() };
    if r.take(MAGIC.len()).ok().as_deref() != Some(MAGIC.as_slice()) {
        return Err(bad_file("it is not a usersync backup"));
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(bad_file(format!(
            "it is of format version {version}; this usersync reads version {VERSION}"
        )));
    }
    let json = r.frame()?;
    let header: BackupHeader =
        serde_json::from_slice(&json).map_err(|e| bad_file(format!("its header is damaged ({e})")))?;
    let mut found = Integrity::default();
    loop {
        match r.take(1)?[0] {
            b'R' => {
                let k = r.frame()?;
                let v = r.frame()?;
                if unseal(&k, &sled::IVec::from(v.as_slice())).is_none() {
                    return Err(bad_file("it is damaged (a record fails its checksum)"));
                }
                found.add_sealed(&k, &v);
                each(k, v)?;
            }
            b'E' => break,
            _ => return Err(bad_file("it is damaged (an unknown frame)")),
        }
    }
    let count = u64::from_le_bytes(r.take(8)?.try_into().unwrap_or_default());
    let expected = r.hash.clone().finalize();
    let mut stored = [0u8; 32];
    r.input.read_exact(&mut stored).map_err(|_| bad_file("it is truncated (its checksum is missing)"))?;
    if stored[..] != expected[..] {
        return Err(bad_file("it is damaged (its checksum does not match its contents)"));
    }
    if count != found.count || found.count != header.records || found.digest != header.digest {
        return Err(bad_file(format!(
            "it holds {} records, not the {} its header names, or not the same ones",
            found.count, header.records
        )));
    }
    let mut rest = [0u8; 1];
    if r.input.read(&mut rest).unwrap_or(0) != 0 {
        return Err(bad_file("it is damaged (data after its end)"));
    }
    Ok(header)
}

/// Checks a backup file through without restoring it.
pub fn check(path: &Path) -> StoreResult<BackupHeader> {
    read_file(path, |_, _| Ok(()))
}

/// Restores the backup `from` into `data`, which must be empty or absent; nothing is written unless the
/// whole file checks out first.
pub fn restore(from: &Path, data: &Path) -> StoreResult<BackupHeader> {
    if std::fs::read_dir(data).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(StoreError::Conflict(format!(
            "{} is not empty: restore into a new, empty data directory",
            data.display()
        )));
    }
    check(from)?;
    std::fs::create_dir_all(data)?;
    let open = open_sled(data)?;
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    let header = read_file(from, |k, v| {
        batch.insert(k, v);
        in_batch += 1;
        if in_batch >= RESTORE_BATCH {
            open.tree.apply_batch(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
        Ok(())
    })?;
    open.tree.apply_batch(batch)?;
    let state =
        Integrity { seq: header.commit, count: header.records, digest: header.digest, bytes: header.bytes };
    open.tree.insert(META_KEY, state.encoded())?;
    while open.db.generate_id()? < header.next_id {}
    open.db.flush()?;
    drop(open);
    write_watermark(data, header.commit, true)?;
    super::layout::sync_generation(data)?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::scim::resource::normalize;
    use crate::scim::schema::ResourceKind;
    use crate::store::testing::temp_store;
    use crate::store::{Actor, DurabilityMode, Store, StoreOptions};

    /// A writer that makes the store change under the backup, between its chunks.
    struct Meddling<'a> {
        bytes: Vec<u8>,
        during: &'a mut dyn FnMut(),
    }

    impl std::io::Write for Meddling<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            (self.during)();
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_backup_is_the_store_as_it_began_whatever_is_written_meanwhile() {
        let (store, _dir) = temp_store();
        let acct = store.ensure_account("acme").unwrap().0.id;
        let registry = store.registry(acct);
        let schema = registry.resource(ResourceKind::User);
        let create = |name: String| {
            let input = normalize(schema, &json!({"userName": name})).unwrap();
            store.create_user(acct, schema, &input, &Actor::engine()).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let ids: Vec<String> = (0..2_000).map(|i| create(format!("u{i}@example.com"))).collect();
        let before: Vec<(sled::IVec, sled::IVec)> = store.tree().iter().map(Result::unwrap).collect();
        let mut n = 0;
        let mut during = || {
            n += 1;
            if n % 3 == 0 {
                // deletes (of records yet to be copied and already copied) and creates
                let victim = &ids[(n * 37) % ids.len()];
                let _ = store.delete_user(acct, victim, None, &Actor::engine());
                create(format!("during{n}@example.com"));
            }
        };
        let mut out = Meddling { bytes: Vec::new(), during: &mut during };
        let header = store.backup(&mut out).unwrap();
        let bytes = std::mem::take(&mut out.bytes);
        assert!(n > 50, "writes happened during the backup");
        assert_eq!(header.records as usize, before.len());
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &bytes).unwrap();
        let target = tempfile::tempdir().unwrap();
        let restored_dir = target.path().join("restored");
        super::restore(file.path(), &restored_dir).unwrap();
        let clock = std::sync::Arc::new(crate::clock::SystemClock);
        let options = StoreOptions { path: restored_dir.clone(), durability: DurabilityMode::Flush, clock };
        let restored = Store::open(options).expect("the restored store passes the start-up check");
        let after: Vec<(sled::IVec, sled::IVec)> = restored.tree().iter().map(Result::unwrap).collect();
        assert_eq!(after.len(), before.len());
        assert!(after == before, "the restored records are exactly those when the backup began");
        assert_eq!(restored.verify().unwrap(), Vec::<String>::new());
        assert_eq!(restored.count(acct, ResourceKind::User), 2_000);

        // a truncated or changed file is refused, and nothing is written
        for (what, damaged) in [
            ("truncated", bytes[..bytes.len() - 40].to_vec()),
            ("damaged", {
                let mut b = bytes.clone();
                let at = b.len() / 2;
                b[at] ^= 0x01;
                b
            }),
        ] {
            std::fs::write(file.path(), &damaged).unwrap();
            let into = target.path().join(what);
            let e = super::restore(file.path(), &into).unwrap_err().to_string();
            assert!(e.contains(what), "{what}: {e}");
            assert!(!into.exists(), "nothing restored from a {what} file");
        }
        let e = super::restore(file.path(), &restored_dir).unwrap_err().to_string();
        assert!(e.contains("not empty"), "{e}");
    }
}
