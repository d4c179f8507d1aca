//! Failure injection for [reqwest] clients: chosen outbound calls fail on purpose, per
//! request, under the rules and the request context of [`chaos_core`], and the chaos
//! context travels on to the next service.
//!
//! * [`ChaosMiddleware`], a [`reqwest_middleware::Middleware`] at the injection point
//!   `client`, named by the dependency it calls (the rules' `target`; default: the host).
//!   [`ChaosMiddleware::client`] makes a client and its middleware together, with one
//!   timeout both take ([`ChaosClientBuilder`]).
//! * [`ChaosConnectLayer`], the genuine route: a `connector_layer` whose faults reqwest
//!   reports as its own connect errors (point `connect`, new connections only).
//! * [`ChaosErrorExt`] finds the injected fault behind an error, however wrapped;
//!   [`ChaosRetryableStrategy`] (feature `retry`) lets reqwest-retry retry injected
//!   transient errors as it retries real ones.
//!
//! ```
//! use std::time::Duration;
//! use chaos_core::Chaos;
//! use chaos_reqwest::ChaosMiddleware;
//!
//! let chaos = Chaos::from_env(); // CHAOS_RULES=rules.yaml, watched
//! let payments = ChaosMiddleware::client(&chaos, "payments")
//!     .timeout(Duration::from_millis(150)) // reqwest's timeout, and it cuts injected delays
//!     .build()?;
//! # let _ = payments;
//! # Ok::<(), reqwest::Error>(())
//! ```
//!
//! A client you build yourself takes the middleware the usual way,
//! `reqwest_middleware::ClientBuilder::new(client).with(ChaosMiddleware::new(&chaos,
//! "payments"))`; give the middleware the client's timeout too
//! ([`ChaosMiddlewareBuilder::timeout`]), which it cannot read from the client, or an
//! injected delay runs in full however short the timeout (the middleware says so, once,
//! the first time it happens).
//!
//! With that, a rule such as
//!
//! ```yaml
//! rules:
//!   - id: payments-slow
//!     point: client
//!     target: payments
//!     match: { method: [POST], path: /v1/charge, host: "*.internal", scenario: gameday-7 }
//!     fault: { delay: 300ms..800ms }
//! ```
//!
//! slows `POST /v1/charge` calls made through this client, for requests tagged with the
//! scenario. Rules at point `client` match on the method, the path, the host (`match.host`,
//! case-insensitive, no port), the headers of the outbound request, the dependency name
//! (`target`) and the request's chaos context.
//!
//! # What a caller sees
//!
//! | fault | result of `send().await` |
//! |---|---|
//! | `delay` | `Ok`, the real response, later. When the call has a timeout (the request's own, or the client's, given to [`ChaosClientBuilder::timeout`] or [`ChaosMiddlewareBuilder::timeout`]) the delay counts against it, and a delay longer than it ends, when the timeout runs out, in `Err` whose fault `is_timeout()`, as a slow server's answer would |
//! | `abort` | `Ok`, a response made here: the rule's status, body, `content-type` and headers, a `content-length`, the request's URL, and `x-chaos-injected: RULE_ID`. `error_for_status()` fails with that status and URL, `json()` decodes the body, retry policies see the status. For a gRPC request (`content-type: application/grpc`), a trailers-only response |
//! | `error: unavailable` | `Err(reqwest_middleware::Error::Middleware)`: `is_middleware()`, no status, no URL; [`injected_fault()`](ChaosErrorExt::injected_fault) is `is_unavailable()`. The request never leaves the process |
//! | `error: timeout` | the same, `is_timeout()` on the fault, at once (use `drop: hang` to spend the time) |
//! | `drop: reset` | the same, `is_reset()` on the fault |
//! | `drop: hang` | nothing until the caller gives up: the call's timeout, as above (then `Err`, `is_timeout()` on the fault), a `tokio::time::timeout` around the call, the kill switch (then the real call goes ahead) or `limits.max_hang` (then `Err` as on a timeout) |
//! | `body` | `Ok`, the real response; reading its body stops after `truncate_after` bytes with a `reqwest::Error` (`is_body()` or `is_decode()`, the fault is `is_reset()`), holds after `stall_after` bytes until the kill switch or `limits.max_hang`, or trickles at `bytes_per_sec` |
//!
//! reqwest has no public constructor for its own error, so the three error faults are
//! middleware errors. They are what the caller sees of a failure before any response, and
//! reqwest-retry classes them `Fatal` unless told otherwise: use
//! [`ChaosRetryableStrategy`] to retry them like the connection errors they stand for, or
//! [`ChaosConnectLayer`] for errors reqwest makes itself (`is_connect()`, `is_timeout()`).
//!
//! # Where to put it
//!
//! The middleware runs where it is attached: `ClientBuilder::with` attaches outermost
//! first.
//!
//! * **Inside retry, to test retries.** Each attempt passes through chaos, so a rule with
//!   `first: 2` fails twice and the third attempt succeeds:
//!
//! ```
//! use chaos_core::Chaos;
//! use chaos_reqwest::{ChaosMiddleware, ChaosRetryableStrategy};
//! use reqwest_middleware::ClientBuilder;
//! use reqwest_retry::{RetryTransientMiddleware, policies::ExponentialBackoff};
//!
//! let chaos = Chaos::from_env();
//! let policy = ExponentialBackoff::builder().build_with_max_retries(3);
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     // Outermost: tracing (e.g. reqwest-tracing's TracingMiddleware) sees the whole
//!     // call, retries included.
//!     // .with(reqwest_tracing::TracingMiddleware::default())
//!     .with(RetryTransientMiddleware::new_with_policy_and_strategy(
//!         policy,
//!         ChaosRetryableStrategy::default(),
//!     ))
//!     // Innermost: every attempt can be failed.
//!     .with(ChaosMiddleware::new(&chaos, "payments"))
//!     .build();
//! # let _ = client;
//! ```
//!
//! * **Outermost, to test the caller.** The fault reaches your code as it is, retries and
//!   all other middleware never see the call: what your fallback gets when the dependency
//!   is down however hard the client tried.
//!
//! ```
//! # use chaos_core::Chaos;
//! # use chaos_reqwest::ChaosMiddleware;
//! # use reqwest_middleware::ClientBuilder;
//! # use reqwest_retry::{RetryTransientMiddleware, policies::ExponentialBackoff};
//! # let chaos = Chaos::from_env();
//! # let policy = ExponentialBackoff::builder().build_with_max_retries(3);
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(ChaosMiddleware::new(&chaos, "payments"))
//!     .with(RetryTransientMiddleware::new_with_policy(policy))
//!     .build();
//! # let _ = client;
//! ```
//!
//! Tracing middleware placed *inside* chaos does not see injected failures (they never
//! reach it); place it outside to record them. The propagation headers are added by
//! chaos, so they are on the request whatever is inside it.
//!
//! # Propagation
//!
//! Every call, armed or not, carries the chaos context on: `x-chaos` (directives' hop
//! budgets advanced, spent directives dropped, untrusted directives never forwarded; a
//! signed context byte for byte with its `x-chaos-signature`) and `x-test-traffic`. The
//! context is, in order: a [`ChaosContext`](chaos_core::ChaosContext) in the request's
//! extensions (`with_extension(ctx)`), the task's (set by chaos-tower's server layer for
//! the request being served), then (feature `otel`) OpenTelemetry baggage (`chaos`,
//! `test-traffic`, `chaos-signature`), checked like headers. A request that already has
//! `x-chaos` or `x-test-traffic` of its own keeps them. With `otel`, the context is also
//! written as those W3C `baggage` members, merged with the request's own `baggage` (see
//! [`chaos_core::otel`]); to keep them when reqwest-tracing injects the OpenTelemetry
//! context, attach this middleware after (inside) its `TracingMiddleware`. Turn
//! forwarding off for calls that leave your fleet with [`ChaosMiddlewareBuilder::forward`].
//!
//! Per call, [`SkipChaos`] in the extensions leaves the call alone (no fault, no headers)
//! and [`ChaosTarget`] names its dependency.
//!
//! # Cost
//!
//! When nothing matches: one look-up in the request's extensions, one in the task-local,
//! one relaxed atomic load, and with rules loaded a read of the rules in force and an
//! indexed match;
//! no allocation, lock or random draw of its own. With the `otel` feature, a call whose
//! request and task carry no context adds one baggage look-up. (The middleware trait
//! itself boxes each call's future, as every reqwest-middleware does.)
//!
//! # Feature flags
//!
//! Name | Description | Default?
//! ---|---|---
//! `retry` | [`ChaosRetryableStrategy`] for reqwest-retry, and `RetryError` unwrapping in [`ChaosErrorExt`] | no
//! `otel` | the context from OpenTelemetry baggage when the request and task carry none, written to outbound `baggage` too; the engine's OpenTelemetry metrics ([`chaos_core::otel`]) | no

#![cfg_attr(docsrs, feature(doc_cfg))]
// The docs link to `ChaosRetryableStrategy`, which exists with the `retry` feature.
#![cfg_attr(not(feature = "retry"), allow(rustdoc::broken_intra_doc_links))]

mod client;
mod connect;
mod error;
mod middleware;
#[cfg(feature = "retry")]
mod retry;

pub use self::client::ChaosClientBuilder;
pub use self::connect::{CONNECT_POINT, ChaosConnect, ChaosConnectLayer, ConnectFuture};
pub use self::error::ChaosErrorExt;
pub use self::middleware::{ChaosMiddleware, ChaosMiddlewareBuilder, ChaosTarget, SkipChaos};
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub use self::retry::ChaosRetryableStrategy;

/// A type-erased error, as tower and reqwest's connector use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
