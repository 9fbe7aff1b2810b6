//! The seed-compatible booking of nights by room and user name, and the
//! queue that books keyless ones together when every connection is busy. The
//! queue answers what became of each night, or a [`BookFailure`]; the
//! handler makes the HTTP answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use deadpool::managed::{Metrics, PoolError, RecycleResult, TimeoutType, Timeouts};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::failure::{Failure, classify, is_connection_error};
use super::{TRANSACTION_ATTEMPTS, in_transaction, is_retryable};
use crate::domain::booking::BookingLimits;
use crate::domain::{BookingStatus, Role};

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

/// Why the queue could not book a night.
#[derive(Debug)]
pub enum BookFailure {
    /// No connection in time, or the request waited too long for one.
    Unavailable,
    /// The night's statement failed.
    Database(sqlx::Error),
    /// The statement this night shared with others failed (the first of
    /// them has the error itself).
    Shared(String),
}

impl From<sqlx::Error> for BookFailure {
    fn from(error: sqlx::Error) -> Self {
        BookFailure::Database(error)
    }
}

impl From<PoolError<sqlx::Error>> for BookFailure {
    fn from(error: PoolError<sqlx::Error>) -> Self {
        match error {
            PoolError::Backend(error) => BookFailure::Database(error),
            PoolError::Timeout(_) => BookFailure::Database(sqlx::Error::PoolTimedOut),
            PoolError::Closed => BookFailure::Database(sqlx::Error::PoolClosed),
            other => BookFailure::Shared(other.to_string()),
        }
    }
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

/// What `book.sql` and `book_many.sql` found for one night (a row of either).
struct Found {
    room_id: Option<Uuid>,
    user_id: Option<Uuid>,
    today: Option<NaiveDate>,
    booking_id: Option<Uuid>,
    status: Option<BookingStatus>,
    caller_role: Option<Role>,
    within_limit: Option<bool>,
}

impl Found {
    fn outcome(self, request: &NightRequest, limits: &BookingLimits) -> NightBooking {
        let (night, caller) = (request.night, request.caller);
        if let (Some(id), Some(status)) = (self.booking_id, self.status) {
            return NightBooking::Booked { id, status };
        }
        match (self.caller_role, self.room_id, self.user_id, self.today) {
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
            _ if self.within_limit == Some(false) => NightBooking::GuestLimit,
            _ => NightBooking::Taken,
        }
    }
}

fn horizon(limits: &BookingLimits) -> i32 {
    i32::try_from(limits.horizon_days).unwrap_or(i32::MAX)
}

/// Books one night in one statement and one round trip (`book.sql`).
pub async fn book_night(
    conn: &mut PgConnection,
    request: &NightRequest,
    limits: &BookingLimits,
) -> sqlx::Result<NightBooking> {
    let found = sqlx::query_file_as!(
        Found,
        "src/db/book.sql",
        request.room_name,
        request.user_name,
        request.night,
        request.caller.id,
        horizon(limits),
        limits.guest_live_bookings,
        request.caller.token_version
    )
    .fetch_one(conn)
    .await?;
    Ok(found.outcome(request, limits))
}

/// [`book_night`] for a guest: in a transaction (a savepoint inside one)
/// that first locks the guest's user row, as `POST /bookings` does, so that
/// its live bookings are counted after every other booking of the guest has
/// committed or rolled back. Run again after a deadlock.
pub async fn book_guest_night(
    conn: &mut PgConnection,
    request: &NightRequest,
    limits: &BookingLimits,
) -> sqlx::Result<NightBooking> {
    let limits = *limits;
    in_transaction(conn, |tx| {
        let request = request.clone();
        Box::pin(async move {
            sqlx::query!(
                "select id from users where id = $1 for update",
                request.caller.id
            )
            .fetch_optional(&mut *tx)
            .await?;
            book_night(tx, &request, &limits).await
        })
    })
    .await
}

/// [`book_night`] in autocommit, run again when its statement lost a
/// deadlock (it was rolled back whole; the other transaction has gone on),
/// up to [`TRANSACTION_ATTEMPTS`] times in all, as a transaction would be;
/// but only while the request that `arrived` is within its `wait` (see
/// [`book_timeouts`]): every statement starts within it and ends within the
/// statement timeout, so the booking never outlives its request.
async fn book_alone(
    conn: &mut PgConnection,
    request: &NightRequest,
    limits: &BookingLimits,
    (arrived, wait): (Instant, Duration),
) -> sqlx::Result<NightBooking> {
    let mut attempt = 1;
    loop {
        match book_night(conn, request, limits).await {
            Err(error)
                if attempt < TRANSACTION_ATTEMPTS
                    && is_retryable(&error)
                    && arrived.elapsed() <= wait =>
            {
                tracing::info!(attempt, %error, "a booking lost a deadlock; running it again");
                attempt += 1;
            }
            booked => return booked,
        }
    }
}

/// Books the nights of `requests` in one statement and one round trip
/// (`book_many.sql`); each answer is the one `book_night` would give, as if
/// the requests had been booked one after the other.
pub async fn book_nights(
    conn: &mut PgConnection,
    requests: &[NightRequest],
    limits: &BookingLimits,
) -> sqlx::Result<Vec<NightBooking>> {
    let rooms: Vec<&str> = requests.iter().map(|r| r.room_name.as_str()).collect();
    let users: Vec<&str> = requests.iter().map(|r| r.user_name.as_str()).collect();
    let nights: Vec<NaiveDate> = requests.iter().map(|r| r.night).collect();
    let callers: Vec<Uuid> = requests.iter().map(|r| r.caller.id).collect();
    let versions: Vec<i32> = requests.iter().map(|r| r.caller.token_version).collect();
    let found = sqlx::query_file_as!(
        Found,
        "src/db/book_many.sql",
        &rooms as &[&str],
        &users as &[&str],
        &nights,
        &callers,
        horizon(limits),
        limits.guest_live_bookings,
        &versions
    )
    .fetch_all(conn)
    .await?;
    if found.len() != requests.len() {
        return Err(sqlx::Error::Protocol(format!(
            "book_many.sql answered {} rows for {} nights",
            found.len(),
            requests.len()
        )));
    }
    Ok(found
        .into_iter()
        .zip(requests)
        .map(|(found, request)| found.outcome(request, limits))
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
/// options, generic plans only, no sequential scans, and the timeouts of
/// [`book_timeouts`]. `book_many.sql` takes arrays: its custom
/// plan (for the arrays' lengths) always looks cheaper than its generic plan
/// (which assumes a hundred elements), so PostgreSQL would plan it anew on
/// every execution, about half a millisecond each time. These connections run
/// only `book.sql` and `book_many.sql`, whose every lookup has an index (by
/// a unique key, or a guest's bookings by user): with `enable_seqscan` off
/// every one uses it, the default hotel and the hotel's row too, which the
/// planner would otherwise read by scanning `hotels` whole while its
/// statistics say it is a few pages (at 201 hotels: two scans, 9 of the
/// statement's 43 buffers, 400 rows filtered out).
/// `wrk/bench.sh` checks both plans with these settings.
pub fn book_pool(pool: &PgPool, size: usize, request_timeout: Duration) -> BookPool {
    let (wait, statement) = book_timeouts(request_timeout, pool.options().get_acquire_timeout());
    let statement = format!("{}ms", statement.as_millis());
    let connect = pool.connect_options().as_ref().clone().options([
        ("plan_cache_mode", "force_generic_plan"),
        ("enable_seqscan", "off"),
        ("statement_timeout", statement.as_str()),
    ]);
    let builder = BookPool::builder(BookConnections {
        options: Arc::new(connect),
    })
    .max_size(size.max(1))
    .wait_timeout(Some(wait))
    .create_timeout(Some(wait))
    .runtime(deadpool::Runtime::Tokio1);
    match builder.build() {
        Ok(pool) => pool,
        // Only a timeout without a runtime fails, and the runtime is set above.
        Err(error) => unreachable!("{error}"),
    }
}

/// How long a keyless `POST /book` waits at most for a connection (free or
/// new, or in the queue), and how long its statement may run: together half
/// a second under `request_timeout`, as the pool's statement timeout is, so
/// that a booking is never committed after its request has timed out and
/// answered `503` (in autocommit nothing else would stop it). The wait is
/// the pool's `acquire_timeout`, but at most half of that time.
pub fn book_timeouts(request_timeout: Duration, acquire_timeout: Duration) -> (Duration, Duration) {
    let budget = request_timeout
        .saturating_sub(Duration::from_millis(500))
        .max(Duration::from_millis(200));
    let wait = acquire_timeout.min(budget / 2);
    (wait, budget - wait)
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
