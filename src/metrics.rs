//! Prometheus metrics (`GET /metrics`): requests by matched route, method and
//! status with a latency histogram, the pools, the queue of `POST /book` and
//! its statements, bookings created, conflicts, idempotent replays and
//! database restarts. Each [`Metrics`] has its own
//! recorder, so that tests (many apps in one process) do not mix figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use sqlx::PgPool;

use crate::db::book::{BookPool, BookQueue};

use crate::error::ErrorCode;
use crate::idempotency::REPLAYED;

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Latency buckets, in seconds: from a fast `POST /book` to the request timeout.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of a request that matched no route: one series for all,
/// so that a scanner cannot create series.
const UNMATCHED: &str = "unmatched";

/// Put on a response by the handler that created a booking.
#[derive(Debug, Clone, Copy)]
pub struct BookingCreated;

#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// Times the managed PostgreSQL was seen to die and come back.
    pub db_restarts: Arc<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        // The buckets are constants and valid; without them, a summary.
        let builder = match builder.set_buckets(&LATENCY_BUCKETS) {
            Ok(builder) => builder,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        Metrics {
            recorder: Arc::new(recorder),
            handle,
            db_restarts: Arc::new(AtomicU64::new(0)),
        }
    }

    fn count(&self, name: &'static str, labels: Vec<Label>) {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
            .increment(1);
    }

    fn gauge(&self, name: &'static str, value: f64) {
        self.recorder
            .register_gauge(&Key::from_name(name), &METADATA)
            .set(value);
    }

    fn absolute(&self, name: &'static str, count: &AtomicU64) {
        self.recorder
            .register_counter(&Key::from_name(name), &METADATA)
            .absolute(count.load(Ordering::Relaxed));
    }

    /// The Prometheus text, with the pools' gauges as of now.
    pub fn render(&self, pool: &PgPool, book_pool: &BookPool, book_queue: &BookQueue) -> String {
        let size = f64::from(pool.size());
        let idle = pool.num_idle() as f64;
        self.gauge("db_pool_connections", size);
        self.gauge("db_pool_idle", idle);
        self.gauge("db_pool_in_use", (size - idle).max(0.0));
        let book = book_pool.status();
        self.gauge("db_book_pool_connections", book.size as f64);
        self.gauge("db_book_pool_idle", book.available as f64);
        self.gauge(
            "db_book_pool_in_use",
            book.size.saturating_sub(book.available) as f64,
        );
        self.gauge("book_queue_waiting", book_queue.waiting() as f64);
        let counts = book_queue.counts();
        self.absolute("book_statements_total", &counts.statements);
        self.absolute("book_statement_nights_total", &counts.nights);
        self.absolute("db_restarts_total", &self.db_restarts);
        self.handle.render()
    }
}

/// The method label: a method of RFC 9110 (or `PATCH`) by its name, any other
/// (HTTP allows any token) as `other`, so that a client cannot create series.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

/// Counts and times every request (a layer of the whole Router).
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    let labels = vec![
        Label::from_static_parts("method", method),
        Label::new("route", route.clone()),
        Label::new("status", status.as_str().to_owned()),
    ];
    metrics
        .recorder
        .register_histogram(
            &Key::from_parts("http_request_duration_seconds", labels.clone()),
            &METADATA,
        )
        .record(started.elapsed().as_secs_f64());
    metrics.count("http_requests_total", labels);
    let replayed = response.headers().contains_key(REPLAYED);
    if replayed {
        metrics.count(
            "idempotent_replays_total",
            vec![Label::new("route", route.clone())],
        );
    } else if response.extensions().get::<BookingCreated>().is_some() {
        metrics.count("bookings_created_total", vec![Label::new("route", route)]);
    } else if response.extensions().get::<ErrorCode>() == Some(&ErrorCode::RoomAlreadyBooked) {
        metrics.count("booking_conflicts_total", vec![Label::new("route", route)]);
    }
    response
}
