//! Hot reload from a file, safe for Kubernetes ConfigMap volumes.
//!
//! The watcher follows the file's *directory* (a watch on the file itself dies at the first
//! ConfigMap `..data` symlink swap), waits for events to settle (debounce), re-reads the
//! path, and swaps the rules only when the content changed and parses. A slow periodic
//! re-check covers missed events. A bad, partial or deleted file never replaces good rules:
//! the error is logged (each distinct refusal; only repeats of one error are
//! rate-limited), counted, kept as the engine's [`last_reload`](crate::Chaos::last_reload)
//! (also in `GET /chaos/rules` and `/chaos/metrics`), and sent as [`Event::ReloadFailed`].
//!
//! ```
//! use chaos_core::Chaos;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("rules.yaml");
//! std::fs::write(&path, "rules:\n  - { id: a, point: server, fault: { abort: 503 } }\n")?;
//!
//! let chaos = Chaos::new();
//! let watch = chaos.watch_file(&path)?; // loaded before this returns; followed afterwards
//! assert_eq!(chaos.rules().rules[0].id, "a");
//! assert_eq!(watch.reloads(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In a service, [`Chaos::from_env`](crate::Chaos::from_env) does this for
//! `CHAOS_RULES=path`.
//!
//! [`Event::ReloadFailed`]: crate::Event::ReloadFailed

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use serde::Serialize;

use super::WeakChaos;
use crate::rules::{Format, RuleSet, RulesError, Timestamp};

/// A watched file's last reload: see [`Chaos::last_reload`](crate::Chaos::last_reload).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Reload {
    /// The file.
    pub source: String,
    /// When it was read.
    pub at: Timestamp,
    /// Loaded or refused.
    #[serde(flatten)]
    pub outcome: ReloadOutcome,
}

impl Reload {
    /// Whether the file was loaded (its rules are the ones in force).
    pub fn is_loaded(&self) -> bool {
        matches!(self.outcome, ReloadOutcome::Loaded { .. })
    }
}

/// What became of a reload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// Its rules are in force, as this version.
    Loaded {
        /// The rules version it made.
        version: u64,
    },
    /// Refused whole (unreadable, or not a valid rules document): the rules in force
    /// before it stay, none if nothing was ever loaded.
    Refused {
        /// Where and why (file, line, field, reason).
        error: String,
    },
}

/// Settings of a file watch.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct WatchOptions {
    /// Quiet time after the last file event before the file is re-read (default 150ms).
    pub debounce: Duration,
    /// Re-check the file this often even without events (default 30s).
    pub recheck: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(150),
            recheck: Duration::from_secs(30),
        }
    }
}

impl WatchOptions {
    /// Sets the debounce.
    #[must_use]
    pub fn debounce(mut self, d: Duration) -> Self {
        self.debounce = d;
        self
    }

    /// Sets the periodic re-check.
    #[must_use]
    pub fn recheck(mut self, d: Duration) -> Self {
        self.recheck = d;
        self
    }
}

enum Msg {
    Event,
    Stop,
}

/// A running file watch. Dropping it stops the watch.
pub struct FileWatch {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    status: Arc<Status>,
}

#[derive(Default)]
struct Status {
    reloads: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileWatch")
            .field("reloads", &self.reloads())
            .field("failures", &self.failures())
            .finish_non_exhaustive()
    }
}

impl FileWatch {
    /// Rules loaded from the file so far (the first load included).
    pub fn reloads(&self) -> u64 {
        self.status.reloads.load(Ordering::SeqCst)
    }

    /// Loads refused so far.
    pub fn failures(&self) -> u64 {
        self.status.failures.load(Ordering::SeqCst)
    }

    /// The last refusal, if the file is bad now (cleared by the next good load).
    pub fn last_error(&self) -> Option<String> {
        self.status
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

impl FileWatch {
    /// Loads `path` into the engine once, then follows it.
    pub(crate) fn start(
        chaos: WeakChaos,
        path: &Path,
        opts: WatchOptions,
    ) -> Result<FileWatch, RulesError> {
        let path = path.to_path_buf();
        let name = path.display().to_string();
        let format = Format::from_path(&path).ok_or_else(|| {
            RulesError::io("unknown rules format, expected a .json, .toml, .yaml or .yml file")
                .with_source(name.clone())
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let mut watcher =
            notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
                let _ = events.send(Msg::Event);
            })
            .map_err(|e| RulesError::io(format!("cannot watch: {e}")).with_source(name.clone()))?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| {
                RulesError::io(format!("cannot watch {}: {e}", dir.display()))
                    .with_source(name.clone())
            })?;
        let status = Arc::new(Status::default());
        let mut worker = Worker {
            chaos,
            path,
            name,
            format,
            applied: None,
            refused: None,
            missing_logged: false,
            status: status.clone(),
        };
        worker.check();
        let thread = std::thread::Builder::new()
            .name("chaos-rules-watch".into())
            .spawn(move || {
                let _watcher = watcher;
                worker.run(&rx, opts);
            })
            .map_err(|e| RulesError::io(format!("cannot start the watch thread: {e}")))?;
        Ok(FileWatch {
            tx,
            thread: Some(thread),
            status,
        })
    }
}

struct Worker {
    chaos: WeakChaos,
    path: PathBuf,
    name: String,
    format: Format,
    applied: Option<u64>,
    refused: Option<u64>,
    missing_logged: bool,
    status: Arc<Status>,
}

impl Worker {
    fn run(&mut self, rx: &mpsc::Receiver<Msg>, opts: WatchOptions) {
        loop {
            match rx.recv_timeout(opts.recheck) {
                Ok(Msg::Event) => loop {
                    match rx.recv_timeout(opts.debounce) {
                        Ok(Msg::Event) => {}
                        Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => break,
                    }
                },
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.chaos.is_gone() {
                return;
            }
            self.check();
        }
    }

    fn check(&mut self) {
        let Some(chaos) = self.chaos.upgrade() else {
            return;
        };
        let bytes = match crate::rules::read_bounded_bytes(&self.path) {
            Ok(b) => b,
            Err(e) => {
                // Deleted, or mid-swap: the rules in force stay; a refusal, once per spell.
                if !self.missing_logged {
                    self.missing_logged = true;
                    self.refused = None;
                    let result =
                        Err(RulesError::io(format!("cannot read: {e}"))
                            .with_source(self.name.clone()));
                    chaos.note_reload(&self.name, &result);
                    self.note(result);
                }
                return;
            }
        };
        self.missing_logged = false;
        let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
        if Some(hash) == self.applied || Some(hash) == self.refused {
            return;
        }
        let result = crate::rules::bounded_text(bytes)
            .map_err(|e| e.with_source(self.name.clone()))
            .and_then(|text| RuleSet::parse_named(self.format, &text, Some(&self.name)))
            .and_then(|set| chaos.replace(set));
        chaos.note_reload(&self.name, &result);
        match &result {
            Ok(_) => self.applied = Some(hash),
            Err(_) => self.refused = Some(hash),
        }
        self.note(result);
    }

    /// Keeps the outcome in the watch's own counters.
    fn note(&mut self, result: Result<u64, RulesError>) {
        match result {
            Ok(_) => {
                self.refused = None;
                self.status.reloads.fetch_add(1, Ordering::SeqCst);
                *self
                    .status
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
            }
            Err(e) => {
                self.status.failures.fetch_add(1, Ordering::SeqCst);
                *self
                    .status
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            }
        }
    }
}
