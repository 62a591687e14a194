//! The local socket `DATA/usersync.sock` (mode 0600): what only someone who may read the data directory
//! may ask of the running server, without a token. It serves backups: a client writes `backup\n` and reads
//! `ok\n` followed by the backup file (see [`crate::store::backup`]), or `error: <why>\n`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::store::backup::{BackupHeader, check};
use crate::store::{Store, StoreError};

/// The socket's file in the data directory.
pub const SOCKET_FILE: &str = "usersync.sock";
/// Where the socket is bound before it is moved into place, so it is never reachable before its mode is set.
const BINDING_DIR: &str = ".usersync-sock";
/// How long the accepting thread sleeps when nobody is connecting.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// The socket a running server listens on; [`LocalSocket::stop`] closes and removes it.
pub struct LocalSocket {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Listens on the data directory's socket, serving `store`.
pub fn serve(store: &Store) -> std::io::Result<LocalSocket> {
    let data = store.data_dir();
    let path = data.join(SOCKET_FILE);
    // A server that held this store before us (the store's lock says none holds it now) left its socket.
    let _ = std::fs::remove_file(&path);
    let binding = data.join(BINDING_DIR);
    let _ = std::fs::remove_dir_all(&binding);
    std::fs::DirBuilder::new().mode(0o700).create(&binding)?;
    let bound = binding.join(SOCKET_FILE);
    let listener = UnixListener::bind(&bound)?;
    std::fs::set_permissions(&bound, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&bound, &path)?;
    let _ = std::fs::remove_dir(&binding);
    let stop = Arc::new(AtomicBool::new(false));
    let (stopping, store) = (stop.clone(), store.clone());
    // Accepts without blocking, looking at the flag in between: a stop must not depend on reaching the
    // socket by its path, which may be gone by then (a data directory removed under a stopping server).
    listener.set_nonblocking(true)?;
    let thread = std::thread::Builder::new().name("usersync-socket".into()).spawn(move || {
        while !stopping.load(Ordering::SeqCst) {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(ACCEPT_POLL);
                    continue;
                }
                Err(e) => {
                    log::warn!("local socket: {e}");
                    std::thread::sleep(ACCEPT_POLL);
                    continue;
                }
            };
            if stream.set_nonblocking(false).is_err() {
                continue;
            }
            let store = store.clone();
            let spawned = std::thread::Builder::new()
                .name("usersync-backup".into())
                .spawn(move || answer(&store, stream));
            if let Err(e) = spawned {
                log::error!("local socket: could not start a backup: {e}");
            }
        }
    })?;
    Ok(LocalSocket { path, stop, thread: Some(thread) })
}

impl LocalSocket {
    /// Stops listening and removes the socket file.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The answer's stream: `ok\n` goes out before the first byte of the backup.
struct Answer {
    stream: UnixStream,
    started: bool,
}

impl Write for Answer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.started {
            self.started = true;
            self.stream.write_all(b"ok\n")?;
        }
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

fn answer(store: &Store, stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = String::new();
    let Ok(reader) = stream.try_clone() else { return };
    if BufReader::new(reader.take(64)).read_line(&mut line).is_err() {
        return;
    }
    let mut out = Answer { stream, started: false };
    match line.trim() {
        "backup" => match store.backup(&mut out) {
            Ok(header) => log::info!("local socket: backup of commit {} sent", header.commit),
            Err(e) if !out.started => {
                let _ = writeln!(out.stream, "error: {e}");
            }
            Err(e) => log::warn!("local socket: the backup stopped: {e}"),
        },
        other => {
            let _ = writeln!(out.stream, "error: unknown request '{other}' (this socket answers: backup)");
        }
    }
}

/// Asks the server running on `data` for a backup and writes it to `to`, checked; `None` when no server
/// answers on the socket (none runs).
pub fn fetch_backup(data: &Path, to: &Path) -> Result<Option<BackupHeader>, StoreError> {
    let mut stream = match UnixStream::connect(data.join(SOCKET_FILE)) {
        Ok(s) => s,
        Err(e)
            if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(StoreError::Io(e)),
    };
    stream.write_all(b"backup\n")?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    match status.trim_end() {
        "ok" => {}
        "" => {
            return Err(StoreError::Io(std::io::Error::other(
                "the server closed the socket without an answer",
            )));
        }
        other => {
            let why = other.strip_prefix("error: ").unwrap_or(other);
            return Err(StoreError::Io(std::io::Error::other(format!(
                "the server refused the backup: {why}"
            ))));
        }
    }
    let mut file = std::fs::File::create(to)?;
    std::io::copy(&mut reader, &mut file)?;
    file.sync_all()?;
    check(to).map(Some)
}
