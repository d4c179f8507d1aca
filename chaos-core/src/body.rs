//! Body faults for HTTP adapters (feature `http-body`): a response body that resets,
//! truncates, stalls or throttles.
//!
//! [`FaultBody`] wraps any [`http_body::Body`] with `Bytes` data. The adapters (the
//! chaos-tower layers, the chaos-reqwest middleware) wrap a response body in one when
//! the decision was a `body` fault or a `drop: reset` whose response must still be sent.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::inject::Injection;
use crate::kill::KillSwitch;
use crate::rules::{BodyFault, DropKind, Fault};

/// The error of a body: the inner body's, or the fault's.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Wait = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

pin_project! {
    /// A response body with a fault applied: reset before the first byte, cut after some
    /// bytes, stalled after some bytes, or throttled to some bytes per second.
    ///
    /// A reset body errors on its first poll, so hyper closes an HTTP/1 connection having written
    /// nothing and resets an HTTP/2 stream. Flipping the kill switch ends stalls and
    /// throttling: the rest of the body flows untouched.
    pub struct FaultBody<B> {
        #[pin]
        inner: B,
        mode: Mode,
        sent: u64,
        held: Option<Bytes>,
        wait: Option<Wait>,
        kill: Arc<KillSwitch>,
        // The concurrency slot of the rule, held until the body ends.
        injection: Option<Injection>,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Error at once.
    Reset,
    /// Let what was sent be flushed (one yield), then error.
    Cut,
    /// Error after this many bytes.
    Truncate(u64),
    /// Hold after this many bytes.
    Stall(u64),
    /// This many bytes per second.
    Throttle(u64),
    /// The fault is spent or the kill switch is on: pass the rest through.
    Off,
    /// An error was returned; the body is over.
    Done,
}

impl<B: fmt::Debug> fmt::Debug for FaultBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultBody")
            .field("inner", &self.inner)
            .field("mode", &self.mode)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// How long a throttled body waits between chunks, at most: chunks are sized so that a
/// second's worth of bytes goes out in about ten steps.
const THROTTLE_STEPS_PER_SEC: u64 = 10;

impl<B> FaultBody<B> {
    /// `inner` with the injection's fault applied: a `body` fault as written, a
    /// `drop: reset` as an error on the first poll; any other fault passes the body
    /// through. The body holds the injection (its rule's concurrency slot) until it ends.
    pub fn new(inner: B, injection: Injection) -> FaultBody<B> {
        let mode = match injection.fault() {
            Fault::Body(BodyFault::TruncateAfter(n)) => Mode::Truncate(*n),
            Fault::Body(BodyFault::StallAfter(n)) => Mode::Stall(*n),
            Fault::Body(BodyFault::BytesPerSec(r)) => Mode::Throttle((*r).max(1)),
            Fault::Drop(DropKind::Reset) => Mode::Reset,
            // New kinds are passed through by this version.
            _ => Mode::Off,
        };
        FaultBody::with_mode(inner, mode, injection)
    }

    /// A body that fails on its first poll (a dropped connection), whatever the fault.
    pub fn reset(inner: B, injection: Injection) -> FaultBody<B> {
        FaultBody::with_mode(inner, Mode::Reset, injection)
    }

    fn with_mode(inner: B, mode: Mode, injection: Injection) -> FaultBody<B> {
        FaultBody {
            inner,
            mode,
            sent: 0,
            held: None,
            wait: None,
            kill: injection.kill_switch().clone(),
            injection: Some(injection),
        }
    }
}

/// The error of a reset or cut body: a broken connection, attributed to its rule.
fn cut(injection: Option<&Injection>) -> BoxError {
    match injection {
        Some(i) => Box::new(i.reset_error()),
        // The injection is only given up with the last frame; kept for robustness.
        None => "injected fault: connection reset".into(),
    }
}

/// A wait that ends after `d`, or at once when the kill switch is flipped.
fn wait(kill: &Arc<KillSwitch>, d: Duration) -> Wait {
    let kill = kill.clone();
    Box::pin(async move {
        tokio::select! {
            biased;
            () = kill.wait() => {}
            () = tokio::time::sleep(d) => {}
        }
    })
}

impl<B> http_body::Body for FaultBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let Some(w) = this.wait.as_mut() {
                ready!(w.as_mut().poll(cx));
                *this.wait = None;
            }
            match *this.mode {
                Mode::Done => return Poll::Ready(None),
                Mode::Reset => {
                    *this.mode = Mode::Done;
                    let err = cut(this.injection.as_ref());
                    *this.injection = None;
                    return Poll::Ready(Some(Err(err)));
                }
                Mode::Cut => {
                    // Yield once so the server writes out the bytes sent so far; an error
                    // in the same poll would make hyper drop them with the connection.
                    *this.mode = Mode::Reset;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Mode::Throttle(rate) if !this.kill.is_on() => {
                    if let Some(mut rest) = this.held.take() {
                        let step = (rate / THROTTLE_STEPS_PER_SEC).max(1) as usize;
                        let chunk = rest.split_to(step.min(rest.len()));
                        if !rest.is_empty() {
                            *this.held = Some(rest);
                        }
                        *this.sent += chunk.len() as u64;
                        let secs = chunk.len() as f64 / rate as f64;
                        *this.wait = Some(wait(this.kill, Duration::from_secs_f64(secs)));
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                }
                Mode::Throttle(_) => {
                    // Killed: the rest flows untouched.
                    *this.mode = Mode::Off;
                    if let Some(rest) = this.held.take() {
                        return Poll::Ready(Some(Ok(Frame::data(rest))));
                    }
                }
                Mode::Stall(_) if this.held.is_some() => {
                    // The stall is over: the kill switch lets the rest through, the hang
                    // ceiling cuts the body.
                    let rest = this.held.take().unwrap_or_default();
                    if this.kill.is_on() {
                        *this.mode = Mode::Off;
                        return Poll::Ready(Some(Ok(Frame::data(rest))));
                    }
                    *this.mode = Mode::Cut;
                    continue;
                }
                _ => {}
            }
            let frame = match ready!(this.inner.as_mut().poll_frame(cx)) {
                None => {
                    *this.mode = Mode::Done;
                    *this.injection = None;
                    return Poll::Ready(None);
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Some(Ok(f)) => f,
            };
            let mut data = match frame.into_data() {
                Ok(d) => d,
                Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
            };
            match *this.mode {
                Mode::Truncate(n) | Mode::Stall(n) if *this.sent + data.len() as u64 > n => {
                    let rest = data.split_off((n - *this.sent) as usize);
                    *this.sent += data.len() as u64;
                    if let Mode::Stall(_) = *this.mode {
                        let limit = this
                            .injection
                            .as_ref()
                            .map_or(Duration::from_secs(300), Injection::max_hang);
                        *this.held = Some(rest);
                        *this.wait = Some(wait(this.kill, limit));
                    } else {
                        *this.mode = Mode::Cut;
                    }
                    if data.has_remaining() {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Mode::Throttle(_) if !data.is_empty() => *this.held = Some(data),
                _ => {
                    *this.sent += data.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.mode {
            Mode::Done => true,
            Mode::Off => self.inner.is_end_stream(),
            _ => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.mode {
            Mode::Off | Mode::Throttle(_) => self.inner.size_hint(),
            _ => SizeHint::default(),
        }
    }
}
