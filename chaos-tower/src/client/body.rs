//! The client layer's response body: the inner body, a fault around it, or bytes made here.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use chaos_core::body::FaultBody;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use chaos_core::BoxError;

pin_project! {
    /// The response body of [`ChaosClient`](super::ChaosClient): the inner service's body
    /// untouched, that body with a body fault applied, or the body of an answer chaos made
    /// (an `abort`, a gRPC status). Any body of `Bytes` can be inside, so the layer wraps
    /// hyper's `Incoming`, tonic's body or a boxed body alike, as tower-http's middleware
    /// do.
    pub struct ChaosResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Fault { #[pin] body: FaultBody<B> },
        Full { bytes: Option<Bytes> },
    }
}

impl<B> ChaosResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        ChaosResponseBody {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn fault(body: FaultBody<B>) -> Self {
        ChaosResponseBody {
            kind: Kind::Fault { body },
        }
    }

    pub(crate) fn full(bytes: Bytes) -> Self {
        ChaosResponseBody {
            kind: Kind::Full {
                bytes: (!bytes.is_empty()).then_some(bytes),
            },
        }
    }

    /// Whether chaos made or changed this body.
    pub fn is_injected(&self) -> bool {
        !matches!(self.kind, Kind::Inner { .. })
    }
}

impl<B> fmt::Debug for ChaosResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosResponseBody")
            .field("injected", &self.is_injected())
            .finish_non_exhaustive()
    }
}

impl<B> Body for ChaosResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Fault { body } => body.poll_frame(cx),
            KindProj::Full { bytes } => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Fault { body } => body.is_end_stream(),
            Kind::Full { bytes } => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Fault { body } => body.size_hint(),
            Kind::Full { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
