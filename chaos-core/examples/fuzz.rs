//! The long fuzz run (stable toolchain, no nightly): inputs made by mutating the corpus
//! (`fuzz/corpus/TARGET/`) and the inputs that once failed (`fuzz/regressions/TARGET/`),
//! each run through its target (`fuzz/targets.rs`) under `catch_unwind`, with a watchdog
//! for hangs and a check that memory stays flat.
//!
//! ```text
//! scripts/fuzz                       10 million inputs across every target
//! scripts/fuzz --inputs 100000 --target header --seed 7
//! ```
//!
//! An input that panics or hangs is written to `fuzz/found/TARGET/` and the run exits 1;
//! once fixed, move it to `fuzz/regressions/TARGET/`, where the test suite replays it.

#![allow(missing_docs)]

#[path = "../fuzz/targets.rs"]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use targets::Target;

/// Tokens mutations splice in: the grammars' own words and the bytes that end them.
const DICTIONARY: &[&str] = &[
    "scenario=",
    "delay=",
    "abort=",
    "drop=",
    "error=",
    "body=",
    ";point=",
    ";target=",
    ";rate=",
    ";hops=",
    "%",
    "ms",
    "s",
    "..",
    ",",
    ";",
    "=",
    "\\",
    "\"",
    "'",
    "\n",
    "\t",
    " ",
    "t=",
    ",v1=",
    ",h=",
    "rules:",
    "- id: ",
    "point: ",
    "fault: ",
    "{ ",
    " }",
    "[",
    "]",
    ": ",
    "&a ",
    "*a",
    "!!binary ",
    "---",
    "~",
    "null",
    "true",
    "1e309",
    "-1",
    "18446744073709551616",
    "\"rules\":",
    "{\"id\":",
    "[[rules]]",
    "id = ",
    "'''",
    "\u{0}",
    "\u{feff}",
    "é",
    "0x",
    "sqlstate:40001",
    "unavailable",
    "timeout",
    "reset",
    "hang",
    "guard: ",
    "ramp: ",
    "window: ",
    "max_errors: ",
    "vs_control: ",
    "50%",
    "100%",
    "1h",
    "0ms",
    "999999999h",
];

fn corpus(dir: &Path, t: Target) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for sub in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub).join(t.name())) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                out.push(bytes);
            }
        }
    }
    if t == Target::Signature {
        out.extend(signature_seeds());
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

/// Valid signatures (current and previous key, with a hop counter), made here so they
/// stay valid against the fixed "now".
fn signature_seeds() -> Vec<Vec<u8>> {
    let exp = targets::now() + Duration::from_secs(600);
    let old = chaos_core::context::signature::SigningKeys::new("the old key");
    [
        "scenario=gameday-7",
        "delay=300ms;point=client;target=payments",
        "abort=503;hops=2",
    ]
    .iter()
    .flat_map(|v| {
        [
            format!("{v}\n{}", targets::keys().sign(v, exp)).into_bytes(),
            format!("{v}\n{},h=3", old.sign(v, exp)).into_bytes(),
        ]
    })
    .collect()
}

fn mutate(rng: &mut fastrand::Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.u8(..) < 8 {
        let n = rng.usize(..64);
        return (0..n).map(|_| rng.u8(..)).collect();
    }
    let mut v = seeds[rng.usize(..seeds.len())].clone();
    for _ in 0..rng.usize(1..=8) {
        let len = v.len();
        match rng.u8(..7) {
            0 if len > 0 => {
                let i = rng.usize(..len);
                v[i] = rng.u8(..);
            }
            1 => {
                let tok = DICTIONARY[rng.usize(..DICTIONARY.len())].as_bytes();
                let i = rng.usize(..=len);
                v.splice(i..i, tok.iter().copied());
            }
            2 if len > 0 => {
                let i = rng.usize(..len);
                let j = (i + rng.usize(1..=16)).min(len);
                v.drain(i..j);
            }
            3 if len > 0 && len < 8192 => {
                let i = rng.usize(..len);
                let j = (i + rng.usize(1..=32)).min(len);
                let chunk = v[i..j].to_vec();
                let at = rng.usize(..=v.len());
                v.splice(at..at, chunk);
            }
            4 => {
                let other = &seeds[rng.usize(..seeds.len())];
                if !other.is_empty() {
                    let i = rng.usize(..other.len());
                    let j = (i + rng.usize(1..=64)).min(other.len());
                    let at = rng.usize(..=v.len());
                    v.splice(at..at, other[i..j].iter().copied());
                }
            }
            5 if len > 0 => {
                let i = rng.usize(..len);
                v[i] = DICTIONARY[rng.usize(..DICTIONARY.len())].as_bytes()[0];
            }
            _ if len > 1 => v.truncate(rng.usize(..len)),
            _ => {}
        }
    }
    v
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

fn save(dir: &Path, t: Target, input: &[u8], why: &str) -> PathBuf {
    let d = dir.join("found").join(t.name());
    std::fs::create_dir_all(&d).expect("write fuzz/found");
    let p = d.join(format!("{:016x}", xxhash(input)));
    std::fs::write(&p, input).expect("write the input");
    eprintln!(
        "{why}: {} ({} bytes) -> {}",
        t.name(),
        input.len(),
        p.display()
    );
    p
}

fn xxhash(b: &[u8]) -> u64 {
    // FNV-1a: a name for the file, nothing more.
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

struct Args {
    inputs: u64,
    targets: Vec<Target>,
    seed: u64,
}

fn args() -> Args {
    let mut a = Args {
        inputs: 10_000_000,
        targets: Target::ALL.to_vec(),
        seed: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().unwrap_or_default();
        match flag.as_str() {
            "--inputs" => a.inputs = val.replace('_', "").parse().expect("--inputs N"),
            "--seed" => a.seed = val.parse().expect("--seed N"),
            "--target" => {
                a.targets = vec![Target::from_name(&val).unwrap_or_else(|| {
                    let names: Vec<_> = Target::ALL.iter().map(|t| t.name()).collect();
                    panic!("--target one of {names:?}")
                })];
            }
            _ => panic!("usage: fuzz [--inputs N] [--target NAME] [--seed N]"),
        }
    }
    a
}

fn main() {
    let a = args();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    // Panics are expected and reported here; the default hook would print each one.
    std::panic::set_hook(Box::new(|_| {}));
    let seeds: Vec<(Target, Vec<Vec<u8>>)> =
        a.targets.iter().map(|&t| (t, corpus(&dir, t))).collect();
    println!(
        "fuzz: {} inputs over {} targets, seed {} ({} seeds)",
        a.inputs,
        seeds.len(),
        a.seed,
        seeds.iter().map(|s| s.1.len()).sum::<usize>()
    );

    // The watchdog: the input being run, and a heartbeat.
    let current: Arc<Mutex<(Target, Vec<u8>)>> = Arc::new(Mutex::new((seeds[0].0, Vec::new())));
    let beat = Arc::new(AtomicU64::new(0));
    {
        let (current, beat, dir) = (current.clone(), beat.clone(), dir.clone());
        std::thread::spawn(move || {
            let mut last = u64::MAX;
            loop {
                std::thread::sleep(Duration::from_secs(10));
                let now = beat.load(Ordering::Relaxed);
                if now == last {
                    let (t, input) = current.lock().unwrap().clone();
                    save(&dir, t, &input, "hang (no progress for 10 s)");
                    std::process::exit(1);
                }
                last = now;
            }
        });
    }

    let mut rng = fastrand::Rng::with_seed(a.seed);
    let start = Instant::now();
    let rss_start = rss_kib();
    let mut rss_after_warmup = 0;
    let mut rss_max = rss_start;
    let mut runs = vec![0u64; seeds.len()];
    let mut slowest = vec![Duration::ZERO; seeds.len()];
    let mut failures = 0u64;
    // Memory is judged from here on: parsers' first allocations are not growth.
    let warm = (a.inputs / 10).clamp(1, 200_000);
    for n in 0..a.inputs {
        let k = (n as usize) % seeds.len();
        let (t, ref pool) = seeds[k];
        let input = mutate(&mut rng, pool);
        current.lock().unwrap().clone_from(&(t, input.clone()));
        let t0 = Instant::now();
        let ok = catch_unwind(AssertUnwindSafe(|| t.run(&input))).is_ok();
        let took = t0.elapsed();
        beat.fetch_add(1, Ordering::Relaxed);
        runs[k] += 1;
        slowest[k] = slowest[k].max(took);
        if !ok {
            failures += 1;
            save(&dir, t, &input, "panic");
        } else if took > Duration::from_secs(1) {
            failures += 1;
            save(&dir, t, &input, &format!("slow ({took:?})"));
        }
        if n == warm {
            rss_after_warmup = rss_kib();
        }
        if n % 100_000 == 0 {
            let rss = rss_kib();
            rss_max = rss_max.max(rss);
            if n > 0 && n % 1_000_000 == 0 {
                println!(
                    "  {n} inputs, {:.0}/s, rss {} MiB",
                    n as f64 / start.elapsed().as_secs_f64(),
                    rss >> 10
                );
            }
        }
    }
    let rss_end = rss_kib();
    let rss_max = rss_max.max(rss_after_warmup).max(rss_end);
    println!(
        "\n{:<12} {:>12} {:>14}",
        "target", "inputs", "slowest input"
    );
    for (k, (t, _)) in seeds.iter().enumerate() {
        println!("{:<12} {:>12} {:>14?}", t.name(), runs[k], slowest[k]);
    }
    println!(
        "\n{} inputs in {:.1?}; failures {failures}; rss {} MiB at start, {} MiB after warm-up, {} MiB at most, {} MiB at the end",
        a.inputs,
        start.elapsed(),
        rss_start >> 10,
        rss_after_warmup >> 10,
        rss_max >> 10,
        rss_end >> 10,
    );
    // Memory stays flat: after warm-up it may wobble by a few MiB, not grow with inputs.
    let grew = rss_end.saturating_sub(rss_after_warmup.max(rss_start));
    if rss_after_warmup > 0 && grew > 64 << 10 {
        println!("memory grew by {} MiB after warm-up", grew >> 10);
        std::process::exit(1);
    }
    if failures > 0 {
        std::process::exit(1);
    }
}
