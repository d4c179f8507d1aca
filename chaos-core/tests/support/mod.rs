//! What the tests read of the engine's logs.
//!
//! [`Logs::capture`] reads what one test's thread logs through a single global subscriber,
//! never through `set_default`. Tracing caches, per callsite, whether anyone listens; while
//! one subscriber is registered it works that out from the default of whichever thread hits
//! the callsite first. A test beside a capturing one, with no subscriber of its own, then
//! fixes the answer at "never", and the capturing test reads nothing (a test that did so
//! failed 163 of 300 runs). One global subscriber gives every thread the same answer; it
//! hands each line to the capture of the thread that wrote it.
#![allow(unreachable_pub)]

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

/// The text logged to a [`Logs::subscriber`], or by a thread while it holds a [`Capture`].
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    static CAPTURE: RefCell<Option<Logs>> = const { RefCell::new(None) };
}

/// Writes to the capture of the thread that logs, if it holds one.
struct ThisThread;

impl Write for ThisThread {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with_borrow_mut(|logs| match logs {
            Some(logs) => logs.write(b),
            None => Ok(b.len()),
        })
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What this thread logs while it is held; see [`Logs::capture`].
#[must_use = "the capture ends when this is dropped"]
pub struct Capture(Logs);

impl std::ops::Deref for Capture {
    type Target = Logs;
    fn deref(&self) -> &Logs {
        &self.0
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURE.set(None);
    }
}

impl Logs {
    /// Reads what this thread logs (INFO and above, no colours) until the guard drops,
    /// through the binary's one global subscriber. Use it on a `current_thread` runtime,
    /// where everything a test drives runs on its own thread.
    #[allow(dead_code)] // not every test binary captures
    pub fn capture() -> Capture {
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            let global = tracing_subscriber::fmt()
                .with_writer(|| ThisThread)
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            tracing::subscriber::set_global_default(global)
                .expect("a binary that captures logs sets no other global subscriber");
        });
        let logs = Logs::default();
        CAPTURE.set(Some(logs.clone()));
        Capture(logs)
    }

    /// A subscriber (INFO and above, no colours) writing here, from any thread: for a
    /// binary of one test that reads what other threads log.
    #[allow(dead_code)] // not every test binary reads other threads
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let out = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish()
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines logged so far that contain `needle`.
    #[allow(dead_code)] // not every test binary counts lines
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}
