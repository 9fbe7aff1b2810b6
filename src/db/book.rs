//! The seed-compatible booking of nights by room and user name, and the
//! queue that books the keyless ones together. The queue answers with the
//! service's [`Error`], as a handler would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use deadpool::managed::{Metrics, RecycleResult};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::domain::booking::BookingLimits;
use crate::domain::{BookingStatus, Role};
use crate::error::{Error, is_connection_error};

/// What became of a `POST /book`.
#[derive(Debug, PartialEq, Eq)]
pub enum NightBooking {
    Booked {
        id: Uuid,
        status: BookingStatus,
    },
    UnknownRoom,
    UnknownUser,
    /// The night is before `today` in the hotel's time zone.
    Past {
        today: NaiveDate,
    },
    /// The night is beyond the booking horizon.
    BeyondHorizon {
        today: NaiveDate,
    },
    /// The room is already booked for that night.
    Taken,
    /// The caller's user no longer exists, or its token is from before a
    /// password or role change.
    UnknownCaller,
    /// A guest may book only for itself.
    NotYours,
    /// A guest holds as many live bookings as it may.
    GuestLimit,
}

/// The caller of a `POST /book`, as its token says.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub id: Uuid,
    pub token_version: i32,
}

/// One night a `POST /book` asks for.
#[derive(Debug, Clone)]
pub struct NightRequest {
    pub room_name: String,
    pub user_name: String,
    pub night: NaiveDate,
    pub caller: Caller,
}

/// Books the nights of `requests` in one statement and one round trip
/// (`book.sql`); each answer is that of its request, as if it had been
/// booked alone after the ones before it.
pub async fn book_nights(
    conn: &mut PgConnection,
    requests: &[NightRequest],
    limits: &BookingLimits,
) -> sqlx::Result<Vec<NightBooking>> {
    let horizon = i32::try_from(limits.horizon_days).unwrap_or(i32::MAX);
    let rooms: Vec<&str> = requests.iter().map(|r| r.room_name.as_str()).collect();
    let users: Vec<&str> = requests.iter().map(|r| r.user_name.as_str()).collect();
    let nights: Vec<NaiveDate> = requests.iter().map(|r| r.night).collect();
    let callers: Vec<Uuid> = requests.iter().map(|r| r.caller.id).collect();
    let versions: Vec<i32> = requests.iter().map(|r| r.caller.token_version).collect();
    let rows = sqlx::query_file!(
        "src/db/book.sql",
        &rooms as &[&str],
        &users as &[&str],
        &nights,
        &callers,
        horizon,
        limits.guest_live_bookings,
        &versions
    )
    .fetch_all(conn)
    .await?;
    if rows.len() != requests.len() {
        return Err(sqlx::Error::Protocol(format!(
            "book.sql answered {} rows for {} nights",
            rows.len(),
            requests.len()
        )));
    }
    Ok(rows
        .into_iter()
        .zip(requests)
        .map(|(row, request)| {
            let (night, caller) = (request.night, request.caller);
            if let (Some(id), Some(status)) = (row.booking_id, row.status) {
                return NightBooking::Booked { id, status };
            }
            match (row.caller_role, row.room_id, row.user_id, row.today) {
                (None, ..) => NightBooking::UnknownCaller,
                (_, None, ..) => NightBooking::UnknownRoom,
                (_, _, None, _) => NightBooking::UnknownUser,
                (Some(Role::Guest), _, Some(user_id), _) if user_id != caller.id => {
                    NightBooking::NotYours
                }
                (_, _, _, Some(today)) if night < today => NightBooking::Past { today },
                (_, _, _, Some(today)) if (night - today).num_days() > limits.horizon_days => {
                    NightBooking::BeyondHorizon { today }
                }
                _ if row.within_limit == Some(false) => NightBooking::GuestLimit,
                _ => NightBooking::Taken,
            }
        })
        .collect())
}

/// The connections of `POST /book` without an `Idempotency-Key`: one
/// statement each, in autocommit, so a connection is clean again as soon as
/// its answer is read. sqlx's pool tests every connection it takes back with
/// a round trip of its own (a `Sync` and its `ReadyForQuery`), which would
/// make each booking two round trips; these connections go back untested,
/// and, like the pool's, are pinged before their next use only when a
/// connection error was seen since they were last taken (a query cut short by
/// the request timeout is drained by the next query on its connection).
/// Anything that opens a transaction stays on the pool, whose test on return
/// also sends a dropped transaction's `ROLLBACK` at once.
pub type BookPool = deadpool::managed::Pool<BookConnections>;

/// Opens [`BookPool`]'s connections as the pool opens its own.
pub struct BookConnections {
    options: Arc<PgConnectOptions>,
}

impl deadpool::managed::Manager for BookConnections {
    type Type = PgConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> sqlx::Result<PgConnection> {
        PgConnection::connect_with(&self.options).await
    }

    async fn recycle(
        &self,
        conn: &mut PgConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if super::connection_error_since(metrics.recycled.unwrap_or(metrics.created)) {
            conn.ping().await?;
        }
        Ok(())
    }
}

/// A [`BookPool`] of `size` connections beside `pool`: the same connection
/// options (its `statement_timeout` included), the same acquire timeout.
pub fn book_pool(pool: &PgPool, size: usize) -> BookPool {
    let options = pool.options();
    let builder = BookPool::builder(BookConnections {
        options: pool.connect_options(),
    })
    .max_size(size.max(1))
    .wait_timeout(Some(options.get_acquire_timeout()))
    .create_timeout(Some(options.get_acquire_timeout()))
    .runtime(deadpool::Runtime::Tokio1);
    match builder.build() {
        Ok(pool) => pool,
        // Only a timeout without a runtime fails, and the runtime is set above.
        Err(error) => unreachable!("{error}"),
    }
}

/// Closes the idle connections of `pool` (a `Terminate` each) and refuses
/// further ones; connections in use are dropped when they come back.
pub async fn close_book_pool(pool: &BookPool) {
    let idle = pool.retain(|_, _| false).removed;
    pool.close();
    for conn in idle {
        let _ = conn.close().await;
    }
}

/// Nights one statement books at most.
const MOST_NIGHTS_PER_STATEMENT: usize = 128;

/// Keyless `POST /book`s waiting for a statement; more wait for room in the queue.
const QUEUE: usize = 4096;

/// `POST /book` without an `Idempotency-Key`: a few workers, each with a
/// connection of [`BookPool`] while it books, take the requests in arrival
/// order. A worker takes every request waiting (up to 128) and books them in
/// one statement (`book.sql`): under load, many bookings cost PostgreSQL one
/// round trip, one transaction and one commit, while a request that finds a
/// worker free is booked at once, alone. A booking that fails is answered as
/// it would be alone; a statement that fails for a reason of the database
/// (not of the connection) is repeated one night at a time, so that no night
/// fails for another's sake. A request given up before its turn (the client
/// went away, or the request timed out) is not booked, and one that waited
/// longer than the pool's acquire timeout answers `503`.
///
/// The workers run as long as a [`BookQueue`] is left; create it in a Tokio
/// runtime.
#[derive(Clone)]
pub struct BookQueue {
    jobs: mpsc::Sender<Job>,
    counts: Arc<QueueCounts>,
}

/// What the workers did, for `/metrics`.
#[derive(Debug, Default)]
pub struct QueueCounts {
    /// Statements run (the repeats of a failed statement included).
    pub statements: AtomicU64,
    /// Nights those statements booked or answered.
    pub nights: AtomicU64,
}

struct Job {
    request: NightRequest,
    queued: Instant,
    answer: oneshot::Sender<Result<NightBooking, Error>>,
}

impl BookQueue {
    /// `workers` workers (at least one) booking on `pool`'s connections.
    pub fn start(pool: BookPool, limits: BookingLimits, workers: usize) -> BookQueue {
        let (jobs, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let counts = Arc::new(QueueCounts::default());
        let wait = pool.timeouts().wait.unwrap_or(Duration::from_secs(5));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(
                pool.clone(),
                receiver.clone(),
                limits,
                wait,
                counts.clone(),
            ));
        }
        BookQueue { jobs, counts }
    }

    /// Books `request` with the others waiting, and answers how it went.
    pub async fn book(&self, request: NightRequest) -> Result<NightBooking, Error> {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            request,
            queued: Instant::now(),
            answer,
        };
        if self.jobs.send(job).await.is_err() {
            return Err(Error::Unavailable);
        }
        answered.await.unwrap_or(Err(Error::Unavailable))
    }

    pub fn counts(&self) -> &QueueCounts {
        &self.counts
    }

    /// Requests waiting for a worker.
    pub fn waiting(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }
}

async fn work(
    pool: BookPool,
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    limits: BookingLimits,
    wait: Duration,
    counts: Arc<QueueCounts>,
) {
    let mut jobs = Vec::with_capacity(MOST_NIGHTS_PER_STATEMENT);
    loop {
        let received = receiver
            .lock()
            .await
            .recv_many(&mut jobs, MOST_NIGHTS_PER_STATEMENT)
            .await;
        if received == 0 {
            // Every `BookQueue` is gone.
            return;
        }
        let mut expired = 0;
        jobs.retain(|job| {
            if job.answer.is_closed() {
                return false;
            }
            if job.queued.elapsed() > wait {
                expired += 1;
                return false;
            }
            true
        });
        // `retain` dropped the given-up and the expired jobs; the latter's
        // requests answer 503 on their own (their answer was dropped unsent).
        if expired > 0 {
            tracing::warn!(
                expired,
                "bookings waited longer than the acquire timeout for a connection"
            );
        }
        if jobs.is_empty() {
            continue;
        }
        let (requests, senders): (Vec<_>, Vec<_>) =
            jobs.drain(..).map(|job| (job.request, job.answer)).unzip();
        let answers = book_together(&pool, &requests, &limits, &counts).await;
        for (sender, answer) in senders.into_iter().zip(answers) {
            // The client may have gone meanwhile; its night stays booked, as
            // when a request is cut short during its statement.
            let _ = sender.send(answer);
        }
    }
}

/// One statement for all of `requests`, or, if it fails for a reason of the
/// database, one per request.
async fn book_together(
    pool: &BookPool,
    requests: &[NightRequest],
    limits: &BookingLimits,
    counts: &QueueCounts,
) -> Vec<Result<NightBooking, Error>> {
    let mut conn = match pool.get().await {
        Ok(conn) => conn,
        Err(error) => return the_same_for_all(Error::from(error), requests.len()),
    };
    counts.statements.fetch_add(1, Ordering::Relaxed);
    counts
        .nights
        .fetch_add(requests.len() as u64, Ordering::Relaxed);
    let error = match book_nights(&mut conn, requests, limits).await {
        Ok(booked) => return booked.into_iter().map(Ok).collect(),
        Err(error) => error,
    };
    // A statement that failed in the database (not a lost connection, not
    // the statement timeout) was rolled back whole: repeat it night by night.
    let repeat = requests.len() > 1
        && !is_connection_error(&error)
        && matches!(&error, sqlx::Error::Database(db) if db.code().as_deref() != Some("57014"));
    if !repeat {
        return the_same_for_all(Error::from(error), requests.len());
    }
    tracing::warn!(%error, nights = requests.len(), "a statement of several bookings failed; booking them one at a time");
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        counts.statements.fetch_add(1, Ordering::Relaxed);
        counts.nights.fetch_add(1, Ordering::Relaxed);
        let answer = match book_nights(&mut conn, std::slice::from_ref(request), limits).await {
            Ok(mut booked) => booked
                .pop()
                .ok_or_else(|| Error::Internal("book.sql answered no row".into())),
            Err(error) => Err(Error::from(error)),
        };
        answers.push(answer);
    }
    answers
}

/// `error` for the first request, and one like it for each of the others.
fn the_same_for_all(error: Error, count: usize) -> Vec<Result<NightBooking, Error>> {
    let unavailable = matches!(error, Error::Unavailable);
    let text = error.to_string();
    let mut answers = Vec::with_capacity(count);
    answers.push(Err(error));
    answers.extend((1..count).map(|_| {
        Err(if unavailable {
            Error::Unavailable
        } else {
            Error::Internal(text.clone())
        })
    }));
    answers
}
