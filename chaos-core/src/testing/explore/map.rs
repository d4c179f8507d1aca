//! What an exploration found, hop × fault, as a table and as a map file a team reviews:
//! reading the file, comparing, and rewriting it on request (`CHAOS_EXPLORE=update`).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::PLAN_VAR;
use super::plan::{HopId, PlanId};

/// The environment variable that rewrites a map file with what was found: `update`.
pub const UPDATE_VAR: &str = "CHAOS_EXPLORE";

/// The schema a map file names on its `schema:` line.
const SCHEMA: &str = "chaos-resilience-map/1";

/// What one plan did to the test.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tried {
    /// The test passed with the fault in: its caller got what it must.
    Tolerated,
    /// The test failed with the fault in (the message kept): a missing fallback.
    Fails(String),
    /// The test did not finish within the plan's time limit: the hop has no timeout.
    Hangs,
    /// The fault was never injected: the calls differed from the run without faults.
    /// Never a pass.
    NotReached(String),
}

impl Tried {
    /// The fault went in, whatever the test made of it.
    pub(crate) fn was_injected(&self) -> bool {
        !matches!(self, Tried::NotReached(_))
    }

    fn verdict(&self) -> Option<Verdict> {
        match self {
            Tried::Tolerated => Some(Verdict::Tolerated),
            Tried::Fails(_) => Some(Verdict::Fails),
            Tried::Hangs => Some(Verdict::Hangs),
            Tried::NotReached(_) => None,
        }
    }
}

impl fmt::Display for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tried::Tolerated => f.write_str("tolerated"),
            Tried::Fails(why) => write!(f, "fails: {why}"),
            Tried::Hangs => f.write_str("hangs (no timeout)"),
            Tried::NotReached(why) => write!(f, "not reached: {why}"),
        }
    }
}

/// One plan's result.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PlanResult {
    /// The plan's name; set it in `CHAOS_EXPLORE_PLAN` to run the plan alone.
    pub id: PlanId,
    /// The hop it failed.
    pub hop: HopId,
    /// The fault, as a map writes it (`abort 503`).
    pub fault: String,
    /// The faults kept in place that revealed this hop (empty for a hop of the run
    /// without faults), as `HOP × FAULT`.
    pub after: Vec<String>,
    /// What it did to the test.
    pub tried: Tried,
    /// How long its run took.
    pub took: Duration,
}

impl PlanResult {
    /// The hop as its map file names it: `client payments`, or for a hop revealed by
    /// other faults, `cache users (after client payments × abort 503)`.
    pub fn hop_key(&self) -> String {
        if self.after.is_empty() {
            self.hop.to_string()
        } else {
            format!("{} (after {})", self.hop, self.after.join(" → "))
        }
    }
}

pub(crate) struct Settings {
    pub(crate) max_plans: usize,
    pub(crate) concurrency: usize,
    pub(crate) only: bool,
}

/// What an exploration found: the hops, each plan's result, and what it could not try.
/// Its [`Display`](fmt::Display) is the table a failing test prints.
pub struct Exploration {
    hops: Vec<HopId>,
    unstable: Vec<String>,
    results: Vec<PlanResult>,
    over_budget: Vec<PlanId>,
    settings: Settings,
    took: Duration,
}

impl fmt::Debug for Exploration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// How a map file says a hop takes a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Tolerated,
    Fails,
    Hangs,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Tolerated => "tolerated",
            Verdict::Fails => "fails",
            Verdict::Hangs => "hangs",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resilience map, as read from its file: hop → fault → `tolerated`, `fails` or
/// `hangs`. [`Exploration::assert_map`] reads one; this reads one on its own, to check a
/// file a tool wrote.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResilienceMap {
    schema: String,
    #[serde(default)]
    hops: BTreeMap<String, BTreeMap<String, Verdict>>,
}

impl ResilienceMap {
    /// Reads a map from its text.
    ///
    /// # Errors
    ///
    /// Not YAML, not a map's shape, or another schema: with its line and column.
    pub fn parse(text: &str) -> Result<ResilienceMap, MapError> {
        parse_map("map", text)
    }

    /// Every hop × fault in it, with what it says: `tolerated`, `fails` or `hangs`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &'static str)> {
        self.hops.iter().flat_map(|(hop, faults)| {
            faults
                .iter()
                .map(move |(fault, v)| (hop.as_str(), fault.as_str(), v.as_str()))
        })
    }
}

/// A map file that cannot be used: unreadable, not YAML, or of another schema.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MapError {
    /// The file.
    pub path: String,
    /// Line and column, from 1, where known.
    pub position: Option<(usize, usize)>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", self.path, self.reason),
            None => write!(f, "{}: {}", self.path, self.reason),
        }
    }
}

impl std::error::Error for MapError {}

impl Exploration {
    pub(crate) fn new(
        hops: Vec<HopId>,
        unstable: Vec<String>,
        results: Vec<PlanResult>,
        over_budget: Vec<super::PlanId>,
        settings: Settings,
        took: Duration,
    ) -> Exploration {
        Exploration {
            hops,
            unstable,
            results,
            over_budget,
            settings,
            took,
        }
    }

    /// The hops the run without faults reached (both times), in the order reached.
    pub fn hops(&self) -> &[HopId] {
        &self.hops
    }

    /// Hops reached in one run and not in another of the same plan (or of the run
    /// without faults), named as a map names them: reported and not tried, never a
    /// difference from the map. The table lists them.
    pub fn unstable(&self) -> &[String] {
        &self.unstable
    }

    /// Every plan's result.
    pub fn results(&self) -> &[PlanResult] {
        &self.results
    }

    /// The result of the plan named `id` (`client payments × abort 503`).
    pub fn result(&self, id: &str) -> Option<&PlanResult> {
        self.results.iter().find(|r| r.id.as_str() == id)
    }

    /// Plans past `max_plans`, not run.
    pub fn over_budget(&self) -> &[PlanId] {
        &self.over_budget
    }

    /// How long the whole exploration took, discovery included.
    pub fn took(&self) -> Duration {
        self.took
    }

    /// Plans whose fault was never injected.
    fn not_reached(&self) -> impl Iterator<Item = &PlanResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.tried, Tried::NotReached(_)))
    }

    /// What was found, as a map file's hops, in the order of the results: each hop's
    /// faults with how it took them (plans not reached are not in it).
    fn found(&self) -> Vec<(String, Vec<(&str, Verdict)>)> {
        let mut hops = Vec::<(String, Vec<(&str, Verdict)>)>::new();
        for r in &self.results {
            let Some(v) = r.tried.verdict() else {
                continue;
            };
            let key = r.hop_key();
            match hops.iter_mut().find(|(k, _)| *k == key) {
                Some((_, faults)) => faults.push((&r.fault, v)),
                None => hops.push((key, vec![(&r.fault, v)])),
            }
        }
        hops
    }

    /// The map file this exploration writes: hops in the order reached, each fault with
    /// `tolerated`, `fails` or `hangs`.
    pub fn map_file(&self) -> String {
        let mut out = String::from(
            "# What each failure at each hop does to this test: tolerated (the test passed\n\
             # with it), fails, or hangs (no timeout). Reviewed by hand; rewrite it with\n\
             # CHAOS_EXPLORE=update and review the diff.\n",
        );
        let _ = writeln!(out, "schema: {SCHEMA}");
        out.push_str("hops:\n");
        for (hop, faults) in self.found() {
            let _ = writeln!(out, "  {}:", yaml_key(&hop));
            for (fault, v) in faults {
                let _ = writeln!(out, "    {}: {v}", yaml_key(fault));
            }
        }
        out
    }

    /// Writes [`map_file`](Self::map_file) to `path`, making its folder if needed: what
    /// `CHAOS_EXPLORE=update` does.
    ///
    /// # Errors
    ///
    /// The file or its folder cannot be written.
    pub fn write_map(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.map_file())
    }

    /// Checks what was found against the reviewed map at `path`; with
    /// `CHAOS_EXPLORE=update`, writes it there instead.
    ///
    /// # Panics
    ///
    /// On any difference (a readable diff), on a hop or fault the map does not have yet,
    /// on a plan not reached or not run (over `max_plans`); and on a map file that cannot
    /// be read. The message ends with the table. Unstable hops are reported, on standard
    /// error, not failed on: they are the test's nondeterminism, not the map's.
    #[track_caller]
    pub fn assert_map(&self, path: impl AsRef<Path>) {
        if let Err(why) = self.check_map(path) {
            panic!("{why}\n\n{self}");
        }
    }

    /// [`assert_map`](Self::assert_map) as a `Result`: `Err` with what differs.
    ///
    /// # Errors
    ///
    /// What `assert_map` panics with.
    pub fn check_map(&self, path: impl AsRef<Path>) -> Result<(), String> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let update = std::env::var(UPDATE_VAR).is_ok_and(|v| v == "update");
        let mut problems = Vec::new();
        if update && !self.settings.only {
            self.write_map(path).map_err(|e| format!("{shown}: {e}"))?;
        } else {
            let map = read_map(path).map_err(|e| e.to_string())?;
            self.diff(&map, &mut problems);
        }
        for r in self.not_reached() {
            problems.push(format!("{}: {}", r.id, r.tried));
        }
        for p in &self.over_budget {
            problems.push(format!(
                "{p}: not run: over max_plans ({})",
                self.settings.max_plans
            ));
        }
        if !self.unstable.is_empty() {
            eprintln!(
                "chaos explore: unstable hops, reported and not tried: {}",
                self.unstable.join("; ")
            );
        }
        if problems.is_empty() {
            return Ok(());
        }
        let mut why = format!("the resilience map {shown} does not hold:\n");
        for p in &problems {
            let _ = writeln!(why, "  {p}");
        }
        if !update {
            let _ = write!(
                why,
                "After a review, rewrite it with {UPDATE_VAR}=update and review its diff."
            );
        }
        Err(why)
    }

    fn diff(&self, map: &ResilienceMap, problems: &mut Vec<String>) {
        for r in &self.results {
            let Some(got) = r.tried.verdict() else {
                continue;
            };
            let key = r.hop_key();
            match map.hops.get(&key).and_then(|m| m.get(&r.fault)) {
                Some(want) if *want == got => {}
                Some(want) => problems.push(format!(
                    "{key} × {}: the map says {want}, the test now {}",
                    r.fault, r.tried
                )),
                None => problems.push(format!(
                    "{key} × {}: not in the map; the test {}: review it",
                    r.fault, r.tried
                )),
            }
        }
        if self.settings.only {
            return;
        }
        for (hop, fault, want) in map.entries() {
            // A plan not reached is said as such, not as gone from the test.
            if !self
                .results
                .iter()
                .any(|r| r.hop_key() == hop && r.fault == fault)
            {
                problems.push(format!(
                    "{hop} × {fault}: in the map ({want}), not tried this run: the test no longer reaches it"
                ));
            }
        }
    }
}

/// A key as YAML reads it back: plain where it can be, quoted where it must.
fn yaml_key(k: &str) -> String {
    let plain = k.starts_with(|c: char| c.is_alphanumeric())
        && !k.ends_with([' ', ':'])
        && !k.contains(['#', ',', '[', ']', '{', '}', '"', '\'', '\n', '\t', '\\'])
        && !k.contains(": ");
    if plain {
        k.to_owned()
    } else {
        serde_json::to_string(k).expect("a string serializes")
    }
}

fn read_map(path: &Path) -> Result<ResilienceMap, MapError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| MapError {
        path: shown.clone(),
        position: None,
        reason: format!(
            "cannot read the map ({e}); write it with {UPDATE_VAR}=update and review it"
        ),
    })?;
    parse_map(&shown, &text)
}

fn parse_map(shown: &str, text: &str) -> Result<ResilienceMap, MapError> {
    let err = |position, reason: String| MapError {
        path: shown.to_owned(),
        position,
        reason,
    };
    let map: ResilienceMap = serde_saphyr::from_str(text).map_err(|e| {
        let position = e
            .location()
            .filter(|l| l.line() > 0)
            .map(|l| (l.line() as usize, l.column() as usize));
        err(position, e.without_snippet().to_string())
    })?;
    if map.schema != SCHEMA {
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with("schema:"))
            .map(|i| (i + 1, 1));
        return Err(err(
            line,
            format!(
                "schema `{}` is not `{SCHEMA}`: this is not a resilience map this version reads",
                map.schema
            ),
        ));
    }
    Ok(map)
}

impl fmt::Display for Exploration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "explored {} plan{} in {:.2} s ({} at a time, the longest {:.2} s) over {} hops: {}",
            self.results.len(),
            if self.results.len() == 1 { "" } else { "s" },
            self.took.as_secs_f64(),
            self.settings.concurrency,
            self.results
                .iter()
                .map(|r| r.took)
                .max()
                .unwrap_or_default()
                .as_secs_f64(),
            self.hops.len(),
            self.hops
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        let hop_w = self
            .results
            .iter()
            .map(|r| r.hop_key().chars().count())
            .max()
            .unwrap_or(3)
            .max(3);
        let fault_w = self
            .results
            .iter()
            .map(|r| r.fault.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(f, "  {:hop_w$}  {:fault_w$}  result", "hop", "fault")?;
        let test = std::thread::current()
            .name()
            .filter(|n| *n != "main")
            .map(|n| n.rsplit("::").next().unwrap_or(n).to_owned());
        for r in &self.results {
            writeln!(
                f,
                "  {:hop_w$}  {:fault_w$}  {}",
                r.hop_key(),
                r.fault,
                r.tried
            )?;
            if !matches!(r.tried, Tried::Tolerated) {
                writeln!(
                    f,
                    "  {:hop_w$}  {:fault_w$}  re-run alone: {PLAN_VAR}='{}' cargo test {}",
                    "",
                    "",
                    r.id,
                    test.as_deref().unwrap_or("<the test>")
                )?;
            }
        }
        for h in &self.unstable {
            writeln!(
                f,
                "  unstable, not tried: {h} (reached in one run and not in another alike)"
            )?;
        }
        if !self.over_budget.is_empty() {
            writeln!(
                f,
                "  over max_plans ({}), not run: {}",
                self.settings.max_plans,
                self.over_budget
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )?;
        }
        Ok(())
    }
}
