//! The in-flight byte budget on gRPC: one budget for every connection, shared with OTLP/HTTP.
//!
//! tonic reads and decodes a request's message before the handler runs, so the budget is
//! applied below it, as a tower layer ([`InflightBudgetLayer`]) over the server: each request
//! body is wrapped so that every data frame reserves its bytes as it arrives, before tonic
//! buffers it. When the budget is spent, the body fails with `UNAVAILABLE` and a
//! `google.rpc.RetryInfo` detail (the OTLP spec's "retry later"), which tonic answers as the
//! request's status; the client retries after the delay. Nothing waits for budget, so requests
//! that each hold part of it can never wait on each other.
//!
//! The reservations of a request are kept in a [`HeldBudget`] shared through the request's
//! extensions, so the handler holds them until the spans are written and answered, as on HTTP.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::{IngestState, Reservation};

/// The reservations made for one request's body.
#[derive(Clone, Default)]
pub(crate) struct HeldBudget(Arc<Mutex<Vec<Reservation>>>);

impl HeldBudget {
    fn push(&self, reservation: Reservation) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(reservation);
    }
}

/// Applies the global in-flight byte budget to every request of a tonic server; add it with
/// `Server::builder().layer(..)`.
#[derive(Clone)]
pub struct InflightBudgetLayer {
    state: IngestState,
}

impl InflightBudgetLayer {
    pub fn new(state: IngestState) -> InflightBudgetLayer {
        InflightBudgetLayer { state }
    }
}

impl<S> tower::Layer<S> for InflightBudgetLayer {
    type Service = InflightBudget<S>;

    fn layer(&self, inner: S) -> InflightBudget<S> {
        InflightBudget { inner, state: self.state.clone() }
    }
}

/// The service [`InflightBudgetLayer`] makes.
#[derive(Clone)]
pub struct InflightBudget<S> {
    inner: S,
    state: IngestState,
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for InflightBudget<S>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> S::Future {
        let (mut parts, body) = request.into_parts();
        let held = HeldBudget::default();
        parts.extensions.insert(held.clone());
        let body = BudgetedBody { inner: body, state: self.state.clone(), held, failed: false };
        self.inner.call(http::Request::from_parts(parts, tonic::body::Body::new(body)))
    }
}

/// A request body whose data frames reserve their bytes as they arrive.
struct BudgetedBody {
    inner: tonic::body::Body,
    state: IngestState,
    held: HeldBudget,
    failed: bool,
}

impl Body for BudgetedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref()
            && !data.is_empty()
        {
            match this.state.reserve(data.len()) {
                Ok(reservation) => this.held.push(reservation),
                Err(error) => {
                    this.failed = true;
                    tracing::debug!(error = %error, "otlp grpc request over the in-flight budget");
                    return Poll::Ready(Some(Err(super::status_of(&error))));
                }
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
