//! Carrying the context through a request's code: a tokio task-local.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use super::ChaosContext;

tokio::task_local! {
    static CURRENT: ChaosContext;
}

impl ChaosContext {
    /// The context of the request this task is serving, if any.
    ///
    /// Task-locals are not inherited by `tokio::spawn`; carry the context into spawned
    /// tasks with [`ChaosFutureExt::with_current_chaos_context`].
    pub fn current() -> Option<ChaosContext> {
        CURRENT.try_with(ChaosContext::clone).ok()
    }

    /// Calls `f` with the current context, without cloning it.
    pub fn with_current<R>(f: impl FnOnce(Option<&ChaosContext>) -> R) -> R {
        let mut f = Some(f);
        match CURRENT.try_with(|c| (f.take().expect("called once"))(Some(c))) {
            Ok(r) => r,
            Err(_) => (f.take().expect("called once"))(None),
        }
    }

    /// Runs `fut` with this context as the current one.
    ///
    /// ```
    /// use chaos_core::ChaosContext;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let ctx = ChaosContext::builder().scenario("checkout-test").build();
    /// ctx.scope(async {
    ///     let seen = ChaosContext::current().unwrap();
    ///     assert!(seen.has_scenario("checkout-test"));
    /// })
    /// .await;
    /// assert!(ChaosContext::current().is_none());
    /// # }
    /// ```
    pub fn scope<F: Future>(self, fut: F) -> TaskLocalFuture<ChaosContext, F> {
        CURRENT.scope(self, fut)
    }

    /// Runs `f` with this context as the current one (synchronous code).
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }
}

pin_project! {
    /// A future run inside a chaos context, or plainly when there is none.
    ///
    /// Made by [`ChaosFutureExt`].
    #[derive(Debug)]
    pub struct WithContext<F: Future> {
        #[pin]
        inner: Inner<F>,
    }
}

pin_project! {
    #[project = InnerProj]
    #[derive(Debug)]
    enum Inner<F: Future> {
        Scoped { #[pin] fut: TaskLocalFuture<ChaosContext, F> },
        Plain { #[pin] fut: F },
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project().inner.project() {
            InnerProj::Scoped { fut } => fut.poll(cx),
            InnerProj::Plain { fut } => fut.poll(cx),
        }
    }
}

/// Carries a chaos context into futures that run elsewhere, such as spawned tasks.
///
/// ```
/// use chaos_core::{ChaosContext, ChaosFutureExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = ChaosContext::builder().scenario("s1").build();
/// ctx.scope(async {
///     let handle = tokio::spawn(
///         async { ChaosContext::current().map(|c| c.scenarios().to_vec()) }
///             .with_current_chaos_context(),
///     );
///     assert_eq!(handle.await.unwrap(), Some(vec!["s1".to_owned()]));
/// })
/// .await;
/// # }
/// ```
pub trait ChaosFutureExt: Future + Sized {
    /// Runs this future inside `ctx` (or plainly, for `None`).
    fn with_chaos_context(self, ctx: Option<ChaosContext>) -> WithContext<Self> {
        let inner = match ctx {
            Some(c) => Inner::Scoped { fut: c.scope(self) },
            None => Inner::Plain { fut: self },
        };
        WithContext { inner }
    }

    /// Runs this future inside the context current where this is called.
    fn with_current_chaos_context(self) -> WithContext<Self> {
        self.with_chaos_context(ChaosContext::current())
    }
}

impl<F: Future> ChaosFutureExt for F {}
