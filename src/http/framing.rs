//! Framing errors (a malformed request line, a head over actix's buffer) are answered by actix itself
//! before any handler runs, and logged by it as an ERROR line per connection: anyone could fill the log
//! without a token. This logger wrapper demotes those lines to debug.

use log::{Level, Log, Metadata, Record};

/// Where actix logs a connection's framing errors.
const DISPATCHER: &str = "actix_http::h1::dispatcher";

/// Wraps the process's logger, passing everything through except framing errors, which are logged at
/// debug (and so only when debug is on for actix's dispatcher).
pub struct QuietFraming<L> {
    pub inner: L,
}

impl<L: Log> Log for QuietFraming<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !is_framing_error(record) {
            self.inner.log(record);
            return;
        }
        let demoted = Metadata::builder().level(Level::Debug).target(record.target()).build();
        if self.inner.enabled(&demoted) {
            self.inner.log(
                &Record::builder()
                    .metadata(demoted)
                    .args(*record.args())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            );
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

fn is_framing_error(record: &Record<'_>) -> bool {
    record.level() <= Level::Warn
        && record.target().starts_with(DISPATCHER)
        && record.args().to_string().contains("parse error")
}
