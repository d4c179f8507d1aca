//! The wait of a delay, a hang or a pause point, as a named future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::{InjectedFault, Injection};
use crate::rules::{DropKind, Fault};

#[cfg(feature = "test-util")]
pin_project! {
    /// A pause point's gate and the wake-up for its opening.
    struct Held {
        gate: crate::pause::PauseGate,
        #[pin]
        opened: tokio::sync::futures::OwnedNotified,
    }
}

/// Boxed: only pause points (tests) have one.
#[cfg(feature = "test-util")]
type Hold = Pin<Box<Held>>;
#[cfg(not(feature = "test-util"))]
type Hold = std::convert::Infallible;

pin_project! {
    struct Waiting {
        injection: Option<Injection>,
        // Both made at the first poll.
        #[pin]
        killed: Option<crate::sync::OwnedNotified>,
        #[pin]
        sleep: Option<Sleep>,
        // Until the delay is over, or the hang or pause reaches its ceiling.
        limit: Duration,
        hold: Option<Hold>,
        hang: bool,
        started: bool,
    }
}

/// Holds work back as an injected delay, hang or pause point asks, then says whether
/// the work may go on. Made by [`Injection::action`] and [`Injection::http_action`].
///
/// It resolves to the injection (keep it while the work runs: it holds the rule's
/// `max_active` slot) and:
///
/// * `Ok(())` when the delay elapsed, a pause point was released or reached
///   `limits.max_hang`, or the kill switch was flipped (the work goes on as if nothing
///   was injected);
/// * `Err` ([`InjectedFault::is_timeout`]) when a `drop: hang` reached `limits.max_hang`.
///
/// A hang lasts until then unless the caller gives up first: dropping the future
/// cancels the wait and frees the slot. Honours `tokio::time::pause`.
///
/// Two words wide: its timer and wake-ups live in one allocation, made with it, except
/// for a wait with nothing to wait for (a zero delay), which allocates nothing.
#[must_use = "futures do nothing unless polled"]
pub struct Wait {
    inner: Inner,
}

enum Inner {
    /// Nothing to wait for: ready at the first poll.
    Now(Option<Injection>),
    Timed(Pin<Box<Waiting>>),
}

impl fmt::Debug for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (injection, hang) = match &self.inner {
            Inner::Now(i) => (i.as_ref(), false),
            Inner::Timed(w) => (w.injection.as_ref(), w.hang),
        };
        f.debug_struct("Wait")
            .field("injection", &injection)
            .field("hang", &hang)
            .finish_non_exhaustive()
    }
}

impl Wait {
    pub(super) fn new(injection: Injection) -> Wait {
        let i = &injection.i;
        let hang = matches!(&*i.fault, Fault::Drop(DropKind::Hang));
        #[cfg(feature = "test-util")]
        let hold: Option<Hold> = i.gate.clone().map(|gate| {
            let opened = gate.opened();
            Box::pin(Held { gate, opened })
        });
        #[cfg(not(feature = "test-util"))]
        let hold: Option<Hold> = None;
        let limit = match i.delay {
            _ if hang || hold.is_some() => i.max_hang,
            Some(d) if !d.is_zero() => d,
            // A zero delay does not wait for the timer's next tick.
            _ => return Wait::ready(injection),
        };
        let inner = Box::pin(Waiting {
            killed: None,
            sleep: None,
            limit,
            hold,
            hang,
            started: false,
            injection: Some(injection),
        });
        Wait {
            inner: Inner::Timed(inner),
        }
    }

    /// A wait with nothing to wait for: ready at the first poll.
    pub(super) fn ready(injection: Injection) -> Wait {
        Wait {
            inner: Inner::Now(Some(injection)),
        }
    }

    /// Whether it takes time (a zero delay is ready at once).
    pub fn takes_time(&self) -> bool {
        matches!(self.inner, Inner::Timed(_))
    }

    /// The error of the waited work timing out (the caller's own timeout ran out first),
    /// attributed to the rule.
    pub fn timeout_error(&self) -> InjectedFault {
        let inj = match &self.inner {
            Inner::Now(i) => i.as_ref(),
            Inner::Timed(w) => w.injection.as_ref(),
        };
        inj.expect("Wait polled to completion").timeout_error()
    }

    /// Gives up the wait and hands back its injection (to fail instead, for instance).
    ///
    /// # Panics
    ///
    /// If the wait already ended.
    pub fn into_injection(self) -> Injection {
        let inj = match self.inner {
            Inner::Now(i) => i,
            Inner::Timed(mut w) => w.as_mut().project().injection.take(),
        };
        inj.expect("Wait polled to completion")
    }
}

impl Future for Wait {
    type Output = (Injection, Result<(), InjectedFault>);

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.inner {
            Inner::Now(i) => {
                let inj = i.take().expect("Wait polled after completion");
                Poll::Ready((inj, Ok(())))
            }
            Inner::Timed(w) => w.as_mut().poll(cx),
        }
    }
}

impl Future for Waiting {
    type Output = (Injection, Result<(), InjectedFault>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inj) = this.injection.as_ref() else {
            panic!("Wait polled after completion");
        };
        if !*this.started {
            // The wake-up and the timer are made at the first poll, so a wait can be made
            // outside a runtime.
            *this.started = true;
            this.killed.set(Some(inj.i.kill.notified()));
            if let Some(k) = this.killed.as_mut().as_pin_mut() {
                k.enable();
            }
            this.sleep.set(Some(tokio::time::sleep(*this.limit)));
            #[cfg(feature = "test-util")]
            if let Some(h) = this.hold.as_mut() {
                let h = h.as_mut().project();
                h.opened.enable();
                h.gate.arrive();
            }
        }
        // The kill switch first: flipping it releases every wait at once.
        // A pause point's gate, when it opens, lets the work go on too.
        let go_on = inj.i.kill.is_on()
            || this
                .killed
                .as_mut()
                .as_pin_mut()
                .is_some_and(|k| k.poll(cx).is_ready())
            || released(this.hold, cx);
        let outcome = if go_on {
            Ok(())
        } else {
            // The timer was made at the first poll, above.
            let timer = this.sleep.as_mut().as_pin_mut();
            match timer.map_or(Poll::Ready(()), |s| s.poll(cx)) {
                Poll::Pending => return Poll::Pending,
                // A hang at its ceiling times out; a pause point there goes on.
                Poll::Ready(()) if *this.hang && this.hold.is_none() => Err(inj.timeout_error()),
                Poll::Ready(()) => Ok(()),
            }
        };
        let inj = this.injection.take().expect("checked above");
        Poll::Ready((inj, outcome))
    }
}

/// Whether a pause point's gate is open.
#[cfg(feature = "test-util")]
fn released(hold: &mut Option<Hold>, cx: &mut Context<'_>) -> bool {
    match hold {
        Some(h) => {
            let h = h.as_mut().project();
            h.gate.is_released() || h.opened.poll(cx).is_ready()
        }
        None => false,
    }
}

#[cfg(not(feature = "test-util"))]
fn released(_: &mut Option<Hold>, _: &mut Context<'_>) -> bool {
    false
}
