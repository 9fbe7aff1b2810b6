//! The queue that books keyless `POST /book`s together, in one statement,
//! when every connection of the [`BookPool`] is busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use deadpool::managed::{PoolError, TimeoutType, Timeouts};
use sqlx::PgConnection;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{BookFailure, BookPool, NightBooking, NightRequest, book_alone, book_nights};
use crate::db::failure::{Failure, classify, is_connection_error};
use crate::domain::booking::BookingLimits;

/// Nights one statement books at most.
const MOST_NIGHTS_PER_STATEMENT: usize = 128;

/// Keyless `POST /book`s waiting for a connection; more wait for room in the queue.
const QUEUE: usize = 4096;

/// `POST /book` without an `Idempotency-Key`, by staff or an admin (a
/// guest's goes through [`book_guest_night`]). A request that finds a
/// connection of [`BookPool`] free books its night at once, alone
/// (`book.sql`). When every connection is busy, it joins a queue instead of
/// waiting for a connection of its own: a few workers each take the next
/// connection that comes free and book every request then waiting (up to
/// 128) in one statement (`book_many.sql`). Under load, many bookings thus
/// cost PostgreSQL one round trip, one transaction and one commit, and a
/// request that finds the service idle is not delayed at all.
///
/// Each request gets the answer it would get alone. A statement of several
/// that fails for a reason of the database (not of the connection, not the
/// statement timeout) is rolled back whole and repeated night by night, so
/// that no night fails for another's sake. A request given up while it
/// waits (the client went away, or the request timed out) is not booked;
/// one that waited longer than the pool's acquire timeout answers `503`.
///
/// The workers run as long as a [`BookQueue`] is left; create it in a Tokio
/// runtime.
#[derive(Clone)]
pub struct BookQueue {
    pool: BookPool,
    limits: BookingLimits,
    /// A free connection, or none at once (a new one is opened while the
    /// pool is not full).
    at_once: Timeouts,
    /// The longest a request may wait before its statement starts.
    wait: Duration,
    jobs: mpsc::Sender<Job>,
    counts: Arc<QueueCounts>,
}

/// What the queue did, for `/metrics`.
#[derive(Debug, Default)]
pub struct QueueCounts {
    /// Statements run, alone or for the queue (the repeats of a failed one included).
    pub statements: AtomicU64,
    /// Nights those statements booked or answered.
    pub nights: AtomicU64,
    /// Requests in the queue or taken by a worker that waits for a connection.
    pub waiting: AtomicUsize,
}

impl QueueCounts {
    fn ran(&self, nights: usize) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.nights.fetch_add(nights as u64, Ordering::Relaxed);
    }
}

struct Job {
    request: NightRequest,
    queued: Instant,
    answer: oneshot::Sender<Result<NightBooking, BookFailure>>,
}

/// What a worker needs.
struct Worker {
    pool: BookPool,
    limits: BookingLimits,
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    /// The longest a request may wait (the pool's acquire timeout).
    wait: Duration,
    counts: Arc<QueueCounts>,
}

impl BookQueue {
    /// The queue of `pool`, with `workers` workers (at least one).
    pub fn start(pool: BookPool, limits: BookingLimits, workers: usize) -> BookQueue {
        let (jobs, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let counts = Arc::new(QueueCounts::default());
        let timeouts = pool.timeouts();
        let wait = timeouts.wait.unwrap_or(Duration::from_secs(5));
        for _ in 0..workers.max(1) {
            let worker = Worker {
                pool: pool.clone(),
                limits,
                receiver: receiver.clone(),
                wait,
                counts: counts.clone(),
            };
            tokio::spawn(worker.run());
        }
        BookQueue {
            at_once: Timeouts {
                wait: Some(Duration::ZERO),
                ..timeouts
            },
            wait,
            pool,
            limits,
            jobs,
            counts,
        }
    }

    /// Books `request`: at once if a connection is free, else with the
    /// others waiting.
    pub async fn book(&self, request: NightRequest) -> Result<NightBooking, BookFailure> {
        let arrived = Instant::now();
        match self.pool.timeout_get(&self.at_once).await {
            Ok(mut conn) => {
                self.counts.ran(1);
                let share = (arrived, self.wait);
                return Ok(book_alone(&mut conn, &request, &self.limits, share).await?);
            }
            Err(PoolError::Timeout(TimeoutType::Wait)) => {}
            Err(error) => return Err(error.into()),
        }
        let (answer, answered) = oneshot::channel();
        let job = Job {
            request,
            queued: Instant::now(),
            answer,
        };
        // A place in the queue first: a request dropped while it waits for
        // one leaves nothing behind.
        let Ok(place) = self.jobs.reserve().await else {
            return Err(BookFailure::Unavailable);
        };
        self.counts.waiting.fetch_add(1, Ordering::Relaxed);
        place.send(job);
        // A job dropped unanswered (it waited too long, or the workers are
        // gone) answers 503.
        answered.await.unwrap_or(Err(BookFailure::Unavailable))
    }

    pub fn counts(&self) -> &QueueCounts {
        &self.counts
    }

    /// Requests waiting for a connection.
    pub fn waiting(&self) -> usize {
        self.counts.waiting.load(Ordering::Relaxed)
    }
}

impl Worker {
    async fn run(self) {
        let mut jobs = Vec::with_capacity(MOST_NIGHTS_PER_STATEMENT);
        loop {
            let received = self
                .receiver
                .lock()
                .await
                .recv_many(&mut jobs, MOST_NIGHTS_PER_STATEMENT)
                .await;
            if received == 0 {
                // Every `BookQueue` is gone.
                return;
            }
            let conn = self.pool.get().await;
            // Take those that came while this worker waited for the
            // connection. A worker holding the receiver is waiting for a
            // request, so there is none to take.
            if let Ok(mut receiver) = self.receiver.try_lock() {
                while jobs.len() < MOST_NIGHTS_PER_STATEMENT {
                    match receiver.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
            }
            self.counts.waiting.fetch_sub(jobs.len(), Ordering::Relaxed);
            // Requests given up are not booked; those that waited too long are
            // dropped unanswered and answer 503.
            let mut expired = 0;
            jobs.retain(|job| {
                let late = job.queued.elapsed() > self.wait;
                expired += usize::from(late && !job.answer.is_closed());
                !late && !job.answer.is_closed()
            });
            if expired > 0 {
                tracing::warn!(
                    expired,
                    "bookings waited longer than the acquire timeout for a connection"
                );
            }
            if jobs.is_empty() {
                continue;
            }
            let arrivals: Vec<Instant> = jobs.iter().map(|job| job.queued).collect();
            let (requests, senders): (Vec<_>, Vec<_>) =
                jobs.drain(..).map(|job| (job.request, job.answer)).unzip();
            let answers = match conn {
                Ok(mut conn) => self.book_together(&mut conn, &requests, &arrivals).await,
                Err(error) => the_same_for_all(BookFailure::from(error), requests.len()),
            };
            for (sender, answer) in senders.into_iter().zip(answers) {
                // The client may have gone meanwhile; its night stays booked,
                // as when a request is cut short during its statement.
                let _ = sender.send(answer);
            }
        }
    }

    /// One statement for all of `requests` (which arrived at `arrivals`), or,
    /// if it fails for a reason of the database, one per request that is
    /// still within its wait (the others answer `503`, unbooked).
    async fn book_together(
        &self,
        conn: &mut PgConnection,
        requests: &[NightRequest],
        arrivals: &[Instant],
    ) -> Vec<Result<NightBooking, BookFailure>> {
        self.counts.ran(requests.len());
        let error = match (requests, arrivals) {
            ([request], [arrived]) => {
                match book_alone(conn, request, &self.limits, (*arrived, self.wait)).await {
                    Ok(booked) => return vec![Ok(booked)],
                    Err(error) => error,
                }
            }
            _ => match book_nights(conn, requests, &self.limits).await {
                Ok(booked) => return booked.into_iter().map(Ok).collect(),
                Err(error) => error,
            },
        };
        let repeat = requests.len() > 1
            && !is_connection_error(&error)
            && matches!(&error, sqlx::Error::Database(db) if db.code().as_deref() != Some("57014"));
        if !repeat {
            return the_same_for_all(BookFailure::from(error), requests.len());
        }
        tracing::warn!(%error, nights = requests.len(), "a statement of several bookings failed; booking them one at a time");
        let mut answers = Vec::with_capacity(requests.len());
        for (request, &arrived) in requests.iter().zip(arrivals) {
            if arrived.elapsed() > self.wait {
                answers.push(Err(BookFailure::Unavailable));
                continue;
            }
            self.counts.ran(1);
            answers.push(
                book_alone(conn, request, &self.limits, (arrived, self.wait))
                    .await
                    .map_err(BookFailure::from),
            );
        }
        answers
    }
}

/// `error` for the first request, and one like it for each of the others.
fn the_same_for_all(error: BookFailure, count: usize) -> Vec<Result<NightBooking, BookFailure>> {
    let unavailable = match &error {
        BookFailure::Unavailable => true,
        BookFailure::Database(error) => matches!(
            classify(error),
            Failure::ConnectionLost
                | Failure::PoolUnavailable
                | Failure::TimedOut
                | Failure::LockUnavailable
        ),
        BookFailure::Shared(_) => false,
    };
    let text = match &error {
        BookFailure::Database(error) => error.to_string(),
        BookFailure::Shared(text) => text.clone(),
        BookFailure::Unavailable => String::new(),
    };
    let mut answers = Vec::with_capacity(count);
    answers.push(Err(error));
    answers.extend((1..count).map(|_| {
        Err(if unavailable {
            BookFailure::Unavailable
        } else {
            BookFailure::Shared(text.clone())
        })
    }));
    answers
}
