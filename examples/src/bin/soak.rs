//! The soak: a million requests (by default) through a server layer, a reqwest hop and a
//! sqlx (SQLite) statement, with about 1% of each fault kind at each hop, the rules
//! reloaded and the kill switch flipped while traffic runs. At the end it checks what a
//! long-running service relies on, prints a table, and exits 1 if anything is off:
//!
//! * every injection is accounted for: the journal (drained as the run goes) equals the
//!   engine's counter and each rule's own;
//! * no `max_active` slot is left held once traffic stops;
//! * no request is stuck after a kill: a hang in flight when the switch turns on is
//!   released at once, never left to its caller's timeout;
//! * memory is flat after warm-up.
//!
//! `scripts/soak` runs it in release mode; `cargo run -p chaos-examples --bin soak --
//! --requests 20000` is the short form CI runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chaos_core::Chaos;
use chaos_core::rules::{Format, RuleSet};
use chaos_reqwest::ChaosMiddleware;
use chaos_sqlx::ChaosPool;
use chaos_tower::ChaosLayer;
use http::StatusCode;
use reqwest_middleware::ClientWithMiddleware;
use tower_layer::Layer;

/// The rules; `{toggle}` is the one rule whose definition changes at each reload (the
/// others are unchanged, so their state and counters carry over).
const RULES: &str = r#"
limits: { max_hang: 30s }
rules:
  - { id: srv-delay,  point: server, match: { path: /checkout }, fault: { delay: 1ms }, rate: 1%, max_active: 8 }
  - { id: srv-abort,  point: server, match: { path: /checkout }, fault: { abort: 503 }, rate: 1% }
  - { id: srv-reset,  point: server, match: { path: /checkout }, fault: { drop: reset }, rate: 1% }
  - { id: srv-hang,   point: server, match: { path: /checkout }, fault: { drop: hang }, rate: 0.2% }
  - { id: srv-body,   point: server, match: { path: /checkout }, fault: { body: { truncate_after: 2 } }, rate: 1% }
  - { id: srv-shadow, point: server, match: { path: /checkout }, fault: { abort: 500 }, rate: 1%, mode: shadow }
  - { id: pay-delay,  point: client, target: payments, fault: { delay: 1ms }, rate: 1%, max_active: 4 }
  - { id: pay-abort,  point: client, target: payments, fault: { abort: 503 }, rate: 1% }
  - { id: pay-reset,  point: client, target: payments, fault: { drop: reset }, rate: 1% }
  - { id: pay-toggle, point: client, target: payments, fault: { error: timeout }, rate: {toggle} }
  - { id: sql-40001,  point: sql, target: inventory, fault: { error: "sqlstate:40001" }, rate: 1% }
  - { id: sql-delay,  point: sql, target: inventory, fault: { delay: 1ms }, rate: 1% }
  - { id: sql-reset,  point: sql, target: inventory, fault: { drop: reset }, rate: 1% }
"#;

const TOGGLED: &str = "pay-toggle";

fn rules(toggle: &str) -> RuleSet {
    RuleSet::parse(Format::Yaml, &RULES.replace("{toggle}", toggle)).expect("the soak's rules")
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

#[derive(Default)]
struct Outcomes {
    ok: AtomicU64,
    server_error: AtomicU64,
    broken: AtomicU64,
    timed_out: AtomicU64,
    /// Timed out although a kill came after the request started and well before its end.
    stuck: AtomicU64,
}

async fn payments() -> SocketAddr {
    let app = Router::new().route("/pay", get(|| async { "paid" }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

async fn checkout(chaos: &Chaos, payments: SocketAddr) -> SocketAddr {
    let client: ClientWithMiddleware = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder().no_proxy().build().unwrap(),
    )
    .with(ChaosMiddleware::new(chaos, "payments"))
    .build();
    let db = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let db = ChaosPool::new(db, chaos, "inventory");
    let handler = |State((client, db, pay)): State<(
        ClientWithMiddleware,
        ChaosPool<sqlx::Sqlite>,
        SocketAddr,
    )>| async move {
        let paid = client.get(format!("http://{pay}/pay")).send().await;
        let stock = sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&db)
            .await;
        match (paid, stock) {
            (Ok(r), Ok(_)) if r.status().is_success() => (StatusCode::OK, "ok"),
            _ => (StatusCode::BAD_GATEWAY, "degraded"),
        }
    };
    let app = Router::new()
        .route("/checkout", get(handler))
        .with_state((client, db, payments));
    let app = ChaosLayer::new(chaos).layer(app);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            l,
            axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
        )
        .await
        .unwrap()
    });
    addr
}

#[tokio::main]
async fn main() {
    let total: u64 = std::env::args()
        .skip_while(|a| a != "--requests")
        .nth(1)
        .map_or(1_000_000, |n| {
            n.replace('_', "").parse().expect("--requests N")
        });
    let chaos = Chaos::builder().rules(rules("1%")).build().unwrap();
    let addr = checkout(&chaos, payments().await).await;
    let url = format!("http://{addr}/checkout");
    let caller = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let outcomes = Arc::new(Outcomes::default());
    let kills: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (caller, url, sent, done, outcomes, kills) = (
            caller.clone(),
            url.clone(),
            sent.clone(),
            done.clone(),
            outcomes.clone(),
            kills.clone(),
        );
        workers.spawn(async move {
            while sent.fetch_add(1, Ordering::Relaxed) < total {
                let began = Instant::now();
                let res = async {
                    let r = caller.get(&url).send().await?;
                    let status = r.status();
                    r.bytes().await.map(|_| status)
                }
                .await;
                let o = &*outcomes;
                match res {
                    Ok(s) if s.is_success() => o.ok.fetch_add(1, Ordering::Relaxed),
                    Ok(_) => o.server_error.fetch_add(1, Ordering::Relaxed),
                    Err(e) if e.is_timeout() => {
                        let end = Instant::now();
                        let stuck = kills
                            .lock()
                            .unwrap()
                            .iter()
                            .any(|&k| began < k && end > k + Duration::from_millis(100));
                        if stuck {
                            o.stuck.fetch_add(1, Ordering::Relaxed);
                        }
                        o.timed_out.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(_) => o.broken.fetch_add(1, Ordering::Relaxed),
                };
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    // The journal, tallied as it is drained (rule -> injections, shadow decisions), so the
    // soak itself holds no growing list.
    let mut journal: std::collections::HashMap<String, (u64, u64)> = Default::default();
    let tally = |j: &mut std::collections::HashMap<String, (u64, u64)>,
                 entries: Vec<chaos_core::testing::JournalEntry>| {
        for e in entries {
            let c = j.entry(e.rule).or_default();
            if e.shadow {
                c.1 += 1;
            } else {
                c.0 += 1;
            }
        }
    };
    // The operator: reloads, kill switch flips, and the journal drained as it fills.
    let (mut reloads, mut flips) = (0u64, 0u64);
    let (mut next_reload, mut next_kill) = (total / 20, total / 10 + total / 40);
    let mut killed_at: Option<u64> = None;
    let mut rss_warm = 0;
    let mut rss_max = 0;
    let mut last_drain = 0;
    let mut last_print = Instant::now();
    while !workers.is_empty() {
        tokio::select! {
            _ = workers.join_next() => continue,
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
        let n = done.load(Ordering::Relaxed);
        if n >= next_reload {
            reloads += 1;
            chaos
                .replace(rules(if reloads % 2 == 1 { "2%" } else { "1%" }))
                .unwrap();
            next_reload += total / 20;
        }
        if killed_at.is_none() && n >= next_kill {
            kills.lock().unwrap().push(Instant::now());
            chaos.kill();
            killed_at = Some(n);
            flips += 1;
        }
        if let Some(k) = killed_at
            && n >= k + total / 100
        {
            chaos.resume();
            killed_at = None;
            next_kill += total / 5;
        }
        if n >= last_drain + total / 50 {
            tally(&mut journal, chaos.take_journal());
            last_drain = n;
        }
        if rss_warm == 0 && n >= total / 10 {
            rss_warm = rss_kib();
        }
        rss_max = rss_max.max(rss_kib());
        if total >= 100_000 && last_print.elapsed() >= Duration::from_secs(5) {
            last_print = Instant::now();
            eprintln!(
                "  {n}/{total} requests, {:.0}/s",
                n as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    let elapsed = start.elapsed();
    if killed_at.is_some() {
        chaos.resume();
    }
    // Quiescent: every slot given back (a released body or connection may lag an instant).
    let mut active = (u64::MAX, 0);
    for _ in 0..100 {
        let s = chaos.snapshot();
        let rules_active: u64 = s.rules.iter().map(|r| u64::from(r.counters.active)).sum();
        active = (u64::from(s.stats.active), rules_active);
        if active == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tally(&mut journal, chaos.take_journal());
    let rss_end = rss_kib();
    let snap = chaos.snapshot();

    let injected_journal: u64 = journal.values().map(|c| c.0).sum();
    let shadow_journal: u64 = journal.values().map(|c| c.1).sum();
    let mut per_rule_ok = true;
    println!("\n{:<12} {:>10} {:>10}", "rule", "journal", "counter");
    for r in &snap.rules {
        let id = r.rule.id.as_str();
        let j = journal.get(id).map_or(0, |c| c.0 + c.1);
        let c = r.counters.injected + r.counters.shadowed;
        let note = if id == TOGGLED {
            "(redefined at each reload: its counter restarts)"
        } else if j == c {
            ""
        } else {
            per_rule_ok = false;
            "MISMATCH"
        };
        println!("{id:<12} {j:>10} {c:>10} {note}");
    }
    let o = &*outcomes;
    let answered = o.ok.load(Ordering::Relaxed)
        + o.server_error.load(Ordering::Relaxed)
        + o.broken.load(Ordering::Relaxed)
        + o.timed_out.load(Ordering::Relaxed);
    let grew = rss_end.saturating_sub(rss_warm);
    let checks = [
        (
            "every request answered",
            answered == total,
            format!("{answered} of {total}"),
        ),
        (
            "injections: journal = engine counter",
            injected_journal == snap.stats.injected,
            format!("{injected_journal} = {}", snap.stats.injected),
        ),
        (
            "each unchanged rule: journal = its counter",
            per_rule_ok,
            format!("{shadow_journal} shadow decisions among them"),
        ),
        (
            "no max_active slot held",
            active == (0, 0),
            format!("engine {}, rules {}", active.0, active.1),
        ),
        (
            "no request stuck after a kill",
            o.stuck.load(Ordering::Relaxed) == 0,
            format!(
                "{} stuck; {} kill flips",
                o.stuck.load(Ordering::Relaxed),
                flips
            ),
        ),
        (
            "memory flat after warm-up (within 8 MiB)",
            grew <= 8 << 10,
            format!(
                "{} MiB after warm-up, {} MiB at the end, {} MiB at most",
                rss_warm >> 10,
                rss_end >> 10,
                rss_max >> 10
            ),
        ),
    ];
    println!(
        "\n{total} requests in {elapsed:.1?} ({:.0}/s), {reloads} reloads, {flips} kill flips",
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "outcomes: {} ok, {} 5xx, {} broken (reset, truncated), {} timed out (hangs)",
        o.ok.load(Ordering::Relaxed),
        o.server_error.load(Ordering::Relaxed),
        o.broken.load(Ordering::Relaxed),
        o.timed_out.load(Ordering::Relaxed)
    );
    let mut failed = false;
    for (what, ok, detail) in checks {
        println!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
        failed |= !ok;
    }
    if failed {
        std::process::exit(1);
    }
}
