//! Rules from files: loaded once, or watched and reloaded (see [`reload`](crate::reload)),
//! and the engine [`Chaos::from_env`] configures.

use std::path::Path;

use super::reload::{FileWatch, WatchOptions};
use super::{Builder, Chaos};
use crate::context::signature::SigningKeys;
use crate::rules::{RuleSet, RulesError};

impl Chaos {
    /// An engine configured from the environment:
    ///
    /// * `CHAOS_DISABLED=1` (or `true`): the kill switch is on for good;
    /// * `CHAOS_RULES=path`: rules are loaded from the file and the file is watched
    ///   (a bad or missing file is logged and the engine starts with no rules in force;
    ///   [`Chaos::last_reload`] says how the last read of the file went);
    /// * `CHAOS_SIGNING_KEY`, `CHAOS_SIGNING_KEY_PREVIOUS`: keys for signed directives.
    ///
    /// It never fails: chaos must not stop a service from starting.
    pub fn from_env() -> Chaos {
        let disabled = std::env::var("CHAOS_DISABLED")
            .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        let mut b = Builder::default().disabled(disabled);
        if let Some(k) = SigningKeys::from_env() {
            b = b.signing_keys(k);
        }
        let chaos = b.build().expect("no rules to refuse");
        if let Ok(path) = std::env::var("CHAOS_RULES") {
            match chaos.watch_file(&path) {
                Ok(w) => chaos.keep_alive(Box::new(w)),
                Err(e) => {
                    tracing::error!(target: "chaos", path, error = %e, "cannot watch CHAOS_RULES")
                }
            }
        }
        chaos
    }

    /// Loads rules from a file once (the format comes from its extension).
    ///
    /// # Errors
    ///
    /// The file cannot be read or is refused; the rules in force stay.
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<u64, RulesError> {
        self.replace(RuleSet::from_file(path)?)
    }

    /// Loads rules from a file and keeps them in step with it (see [`reload`](crate::reload)).
    ///
    /// The first load happens before this returns; if it fails the engine keeps its rules
    /// and the watch goes on, so a good file written later is picked up.
    ///
    /// # Errors
    ///
    /// The watch cannot be set up (no such directory, unknown extension).
    pub fn watch_file(&self, path: impl AsRef<Path>) -> Result<FileWatch, RulesError> {
        self.watch_file_with(path, WatchOptions::default())
    }

    /// [`Chaos::watch_file`] with settings.
    ///
    /// # Errors
    ///
    /// The watch cannot be set up (no such directory, unknown extension).
    pub fn watch_file_with(
        &self,
        path: impl AsRef<Path>,
        opts: WatchOptions,
    ) -> Result<FileWatch, RulesError> {
        FileWatch::start(self.downgrade(), path.as_ref(), opts)
    }
}
