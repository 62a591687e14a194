//! Whether a write is still wanted. The HTTP layer runs a client's write under [`while_wanted`] with a
//! check that fails once the client has gone; the store asks [`still_wanted`] between the expensive phases
//! of a write (after computing the change, after reading what a whole-list change needs) and last just
//! before the commit, and stops with nothing written when the answer is no. A commit under way always
//! finishes: a write is applied whole or not at all. Work outside any [`while_wanted`] (the rule engine,
//! start-up, the command line) is always wanted.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{StoreError, StoreResult};

type Check = Box<dyn Fn() -> bool>;

thread_local! {
    static WANTED: RefCell<Option<Check>> = const { RefCell::new(None) };
}

/// Writes stopped because their client had gone, since start (for tests and the log).
static ABANDONED: AtomicU64 = AtomicU64::new(0);

/// Runs `work` on this thread with `wanted` telling whether its result is still wanted.
pub fn while_wanted<T>(wanted: impl Fn() -> bool + 'static, work: impl FnOnce() -> T) -> T {
    struct Restore(Option<Check>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            WANTED.with(|w| *w.borrow_mut() = previous);
        }
    }
    let _restore = Restore(WANTED.with(|w| w.replace(Some(Box::new(wanted)))));
    work()
}

/// `Ok` while the work of this thread is wanted; an error that stops it (and writes nothing) otherwise.
pub fn still_wanted() -> StoreResult<()> {
    if WANTED.with(|w| w.borrow().as_ref().is_none_or(|wanted| wanted())) {
        return Ok(());
    }
    ABANDONED.fetch_add(1, Ordering::Relaxed);
    log::debug!("a write was stopped: its client closed the connection");
    Err(StoreError::Rejected("the client closed the connection; nothing was written".into()))
}

/// How many writes [`still_wanted`] stopped since start.
pub fn abandoned_writes() -> u64 {
    ABANDONED.load(Ordering::Relaxed)
}
