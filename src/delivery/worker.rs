//! The thread every sender runs on: a runtime of its own (so a slow receiver never holds up SCIM requests or
//! the engine), a stop flag its loops check, and a wake-up for work that arrived early.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What a sender's loops share with the handle that stops and wakes them.
pub struct Shared {
    stop: AtomicBool,
    pub wake: tokio::sync::Notify,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    /// Whether the sender should stop now.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A sender running on its thread; [`Worker::stop`] ends it.
#[derive(Clone)]
pub struct Worker {
    shared: Arc<Shared>,
}

impl Worker {
    /// Runs `sender` on a thread named `name` with a single-threaded runtime of its own.
    pub fn spawn<F, Fut>(name: &str, sender: F) -> std::io::Result<Worker>
    where
        F: FnOnce(Arc<Shared>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            thread: Mutex::new(None),
        });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let worker = shared.clone();
        let handle =
            std::thread::Builder::new().name(name.into()).spawn(move || runtime.block_on(sender(worker)))?;
        if let Ok(mut slot) = shared.thread.lock() {
            *slot = Some(handle);
        }
        Ok(Worker { shared })
    }

    /// Stops sending (an attempt under way is dropped, and made again after a restart) and waits for the
    /// thread to end.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_waiters();
        let handle = self.shared.thread.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Looks for work again now.
    pub fn wake(&self) {
        self.shared.wake.notify_waiters();
    }
}
