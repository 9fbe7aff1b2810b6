//! The one test harness: a PostgreSQL per run of the test binary (the
//! service's own managed PostgreSQL, or the server of `DATABASE_URL` when
//! set), a fresh migrated database per test, dropped when the test ends, and
//! the real Router driven over HTTP from a client address.
//!
//! `#[sqlx::test]` would need `DATABASE_URL` set before the tests start;
//! `cargo test` must work with nothing set, so this does the same job on the
//! service's managed PostgreSQL: migrate a template once, clone it per test.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use room_booking::auth::Keys;
use room_booking::domain::Role;
use room_booking::managed_db::{ClusterOptions, ManagedPostgres};
use room_booking::{AppState, Limits, app, db};
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;
use tower::ServiceExt;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

struct Server {
    options: PgConnectOptions,
    /// A `postgres://` URL of the server, with a password where it needs one.
    url: String,
    template: String,
    /// Kept so the server lives as long as the test binary.
    _managed: Option<ManagedPostgres>,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();
static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);

const TEST_DIR_PREFIX: &str = "room-booking-test-";

async fn server() -> &'static Server {
    SERVER.get_or_init(start_server).await
}

async fn start_server() -> Server {
    let pid = std::process::id();
    let (options, url, managed) = match std::env::var("DATABASE_URL") {
        Ok(url) => (
            url.parse::<PgConnectOptions>()
                .expect("DATABASE_URL is a PostgreSQL URL"),
            url,
            None,
        ),
        Err(_) => {
            remove_stale_clusters();
            let dir = std::env::temp_dir().join(format!("{TEST_DIR_PREFIX}{pid}"));
            let server = ManagedPostgres::start(
                &dir,
                &ClusterOptions {
                    ephemeral: true,
                    ..ClusterOptions::default()
                },
            )
            .await
            .unwrap_or_else(|error| panic!("cannot start the test PostgreSQL: {error}"));
            (
                server.connect_options("postgres"),
                server.url("postgres"),
                Some(server),
            )
        }
    };
    let template = format!("rbtest_{pid}_template");
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .expect("connect to the test server");
    drop_stale_databases(&mut admin).await;
    execute(&mut admin, &format!("create database {template}")).await;
    admin.close().await.ok();

    let pool = PgPool::connect_with(options.clone().database(&template))
        .await
        .expect("connect to the template");
    db::MIGRATOR
        .run(&pool)
        .await
        .expect("migrate the template database");
    pool.close().await;
    Server {
        options,
        url,
        template,
        _managed: managed,
    }
}

/// Test clusters whose test binary is gone.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(TEST_DIR_PREFIX))
        else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Databases of earlier runs against a `DATABASE_URL` server whose test binary is gone.
async fn drop_stale_databases(admin: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where datname like 'rbtest\\_%'")
            .fetch_all(&mut *admin)
            .await
            .expect("list test databases");
    for name in names {
        let pid = name.split('_').nth(1).unwrap_or_default();
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            execute(
                admin,
                &format!("drop database if exists {name} with (force)"),
            )
            .await;
        }
    }
}

async fn execute(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
}

/// The limits of the tests: the defaults, but room for the many sign-ins and
/// searches of one test, refusals at once, a long request timeout for a
/// busy machine, and ten connections for `POST /book` as for the pool,
/// whatever the machine's cores.
pub fn test_limits() -> Limits {
    Limits {
        request_timeout: Duration::from_secs(30),
        book_connections: 10,
        auth_burst: 10_000,
        search_burst: 10_000,
        refusal_delay: Duration::ZERO,
        ..Limits::default()
    }
}

/// The secret tests sign tokens with.
pub const TEST_SECRET: &str = "a test secret of at least thirty-two bytes";

/// The service on a fresh, migrated database of its own. Requests carry an
/// admin's token unless sent with [`TestApp::request_as`].
pub struct TestApp {
    pub pool: PgPool,
    pub keys: Arc<Keys>,
    pub state: AppState,
    /// The app, as [`TestApp::serve`] serves it on a socket.
    served: Router,
    /// The app, for requests sent without a socket, from [`CLIENT`].
    router: Router,
    admin: uuid::Uuid,
    admin_token: String,
    database: String,
}

/// An answer: status, headers and the JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestResponse {
    /// The problem document's `code`.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    /// Asserts an RFC 9457 problem document with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.header("content-type"), "application/problem+json");
        assert_eq!(self.body["status"], status.as_u16());
        assert_eq!(self.code(), code, "body: {}", self.body);
        assert!(
            self.body["title"].is_string()
                && self.body["detail"].is_string()
                && self.body["type"].is_string()
        );
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::with_limits(test_limits(), 4).await
    }

    /// The service with these limits and `hash_slots` password hashes at once.
    pub async fn with_limits(limits: Limits, hash_slots: usize) -> TestApp {
        let server = server().await;
        let name = format!(
            "rbtest_{}_{}",
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect_with(&server.options.clone().database("postgres"))
            .await
            .expect("connect to the test server");
        execute(
            &mut admin,
            &format!("create database {name} template {}", server.template),
        )
        .await;
        admin.close().await.ok();
        // The service's own pool (its statement timeout and its check of
        // connections after a connection error), over the test database.
        let statement_timeout = limits
            .request_timeout
            .saturating_sub(Duration::from_millis(500));
        let pool = db::open_pool(
            server.options.clone().database(&name),
            10,
            Duration::from_secs(5),
            statement_timeout,
        )
        .await
        .expect("connect to the test database");
        let keys = Arc::new(Keys::new(TEST_SECRET.as_bytes()).expect("a long enough secret"));
        let state = AppState::new(pool.clone(), keys.clone(), limits, hash_slots);
        let admin: uuid::Uuid = sqlx::query_scalar(
            "insert into users (name, role) values ('admin', 'admin') returning id",
        )
        .fetch_one(&pool)
        .await
        .expect("create the admin");
        let admin_token = keys.mint(admin, Role::Admin, 0).expect("a token");
        let served = app(state.clone());
        TestApp {
            pool,
            keys,
            // What `into_make_service_with_connect_info` gives a request off a socket.
            router: served.clone().layer(Extension(ConnectInfo(CLIENT))),
            served,
            state,
            admin,
            admin_token,
            database: name,
        }
    }

    /// A `postgres://` URL of this test's database.
    pub fn database_url(&self) -> String {
        let server = SERVER.get().expect("started by TestApp::new");
        with_database(&server.url, &self.database)
    }

    /// The id of the admin whose token requests carry by default.
    pub fn admin_id(&self) -> uuid::Uuid {
        self.admin
    }

    /// The admin's token that requests carry by default.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Creates a user with a role directly in the database and answers its token.
    pub async fn user_with_role(&self, name: &str, role: Role) -> (uuid::Uuid, String) {
        let id: uuid::Uuid =
            sqlx::query_scalar("insert into users (name, role) values ($1, $2) returning id")
                .bind(name)
                .bind(role)
                .fetch_one(&self.pool)
                .await
                .expect("create a user");
        (id, self.keys.mint(id, role, 0).expect("a token"))
    }

    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Sends a request with an optional JSON body through the Router, as the admin.
    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> TestResponse {
        self.request_as(Some(&self.admin_token.clone()), method, path, body)
            .await
    }

    /// Sends a request with this bearer token, or none.
    pub async fn request_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(request.body(body).expect("a valid request"))
            .await
    }

    /// Sends a raw body with `content-type: application/json`.
    pub async fn send_raw(&self, method: Method, path: &str, body: &str) -> TestResponse {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.admin_token),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .expect("a valid request");
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a readable body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> TestResponse {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> TestResponse {
        self.request(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.request(Method::DELETE, path, None).await
    }

    /// An HTTP client for [`TestApp::serve`] that sends the admin's token.
    pub fn http_client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let bearer = format!("Bearer {}", self.admin_token)
            .parse()
            .expect("a header value");
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("an HTTP client")
    }

    /// Serves the app on a real listener (`127.0.0.1:0`) and answers its base URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a test port");
        let addr = listener.local_addr().expect("a local address");
        let router = self.served.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        format!("http://{addr}")
    }

    /// Creates a room in the default hotel through the API.
    pub async fn create_room(&self, name: &str) -> Value {
        let response = self
            .post("/rooms", serde_json::json!({ "name": name }))
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body
    }

    /// `POST /auth/register` without a token.
    pub async fn register(&self, name: &str, password: &str) -> TestResponse {
        let body = serde_json::json!({ "name": name, "password": password });
        self.request_as(None, Method::POST, "/auth/register", Some(body))
            .await
    }

    /// Creates a guest through the API.
    pub async fn create_user(&self, name: &str) -> Value {
        let response = self
            .post("/users", serde_json::json!({ "name": name }))
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body
    }

    /// Creates a hotel in `timezone` through the API.
    pub async fn create_hotel(&self, name: &str, city: &str, timezone: &str) -> Value {
        let body = serde_json::json!({ "name": name, "city": city, "timezone": timezone });
        let response = self.post("/hotels", body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body
    }

    pub async fn create_room_type(&self, hotel_id: &str, name: &str, capacity: i32) -> Value {
        let body = serde_json::json!({ "name": name, "capacity": capacity });
        let response = self
            .post(&format!("/hotels/{hotel_id}/room-types"), body)
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body
    }

    /// `free_cancellation_hours: None` makes it non-refundable.
    pub async fn create_rate_plan(
        &self,
        hotel_id: &str,
        name: &str,
        free_cancellation_hours: Option<i32>,
    ) -> Value {
        let body =
            serde_json::json!({ "name": name, "free_cancellation_hours": free_cancellation_hours });
        let response = self
            .post(&format!("/hotels/{hotel_id}/rate-plans"), body)
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body
    }

    /// Creates a room of a hotel's room type.
    pub async fn create_room_of(&self, hotel_id: &str, room_type_id: &str, name: &str) -> Value {
        let body =
            serde_json::json!({ "name": name, "hotel_id": hotel_id, "room_type_id": room_type_id });
        let response = self.post("/rooms", body).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.body
    }

    /// Prices every night of `[from, to)` (`YYYY-MM-DD`).
    pub async fn put_rates(
        &self,
        hotel_id: &str,
        room_type_id: &str,
        rate_plan_id: &str,
        from: &str,
        to: &str,
        price: &str,
    ) {
        let body = serde_json::json!({
            "room_type_id": room_type_id, "rate_plan_id": rate_plan_id,
            "from": from, "to": to, "price": price, "currency": "EUR",
        });
        let response = self
            .request(
                Method::PUT,
                &format!("/hotels/{hotel_id}/rates"),
                Some(body),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    }

    /// The id of the user named `name`.
    pub async fn user_id(&self, name: &str) -> uuid::Uuid {
        sqlx::query_scalar("select id from users where name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .expect("the user")
    }

    /// A row count, for checking what a request left in the database.
    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count query")
    }

    /// Sets `deadlock_timeout` for this test's database: for the sessions
    /// opened from now on, and for those the service's pool already holds
    /// (they would keep the old value). A test that builds a deadlock sets it
    /// long, so that the side it wants to lose is the one that looks.
    pub async fn set_deadlock_timeout(&self, value: &str) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "alter database {} set deadlock_timeout = '{value}'",
            self.database
        )))
        .execute(&self.pool)
        .await
        .expect("set deadlock_timeout");
        let mut opened = Vec::new();
        for _ in 0..self.pool.size() {
            let mut conn = self.pool.acquire().await.expect("a connection");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "set deadlock_timeout = '{value}'"
            )))
            .execute(&mut *conn)
            .await
            .expect("set deadlock_timeout");
            opened.push(conn);
        }
    }

    /// Makes `request` lose a deadlock and answers what it answered in the
    /// end. Another transaction holds the row of the user `user` (as a
    /// guest's `POST /bookings` does); `request` inserts its nights and waits
    /// for that row (its foreign key); the other transaction then runs
    /// `conflicting`, an insert of the same nights, and waits for `request`.
    /// PostgreSQL looks for a deadlock once per wait, `deadlock_timeout`
    /// after it began: 2 s for the service's sessions (well after the other
    /// transaction has begun to wait, well within the request's time), 60 s
    /// for the other transaction, so the request is the one that loses. Run
    /// again, it waits for the other transaction, which then gives up.
    /// Checks that PostgreSQL counted the deadlock.
    pub async fn lose_a_deadlock(
        &self,
        user: uuid::Uuid,
        request: reqwest::RequestBuilder,
        conflicting: sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> reqwest::Response {
        let deadlocks = "select deadlocks from pg_stat_database where datname = current_database()";
        let before = self.count(deadlocks).await;
        self.set_deadlock_timeout("2s").await;
        let mut other = self.pool.begin().await.expect("a transaction");
        sqlx::query("set local deadlock_timeout = '60s'")
            .execute(&mut *other)
            .await
            .expect("set deadlock_timeout");
        sqlx::query("select 1 from users where id = $1 for update")
            .bind(user)
            .execute(&mut *other)
            .await
            .expect("lock the user");
        let answer = tokio::spawn(request.send());
        wait_until("the request to wait for the user's row", async || {
            self.count(LOCK_WAITS).await == 1
        })
        .await;
        conflicting
            .execute(&mut *other)
            .await
            .expect("the other transaction's nights, once the request lost the deadlock");
        wait_until(
            "the request, run again, to wait for the other nights",
            async || self.count(LOCK_WAITS).await == 1,
        )
        .await;
        other.rollback().await.expect("give up");
        let answer = answer.await.expect("ran").expect("answered");
        // pg_stat_database is updated by the backends now and then; wait for it.
        wait_until("PostgreSQL to count the deadlock", async || {
            self.count(deadlocks).await > before
        })
        .await;
        answer
    }
}

impl Drop for TestApp {
    /// Drops this test's database as the test ends, on a thread of its own
    /// (a `DROP DATABASE` takes a checkpoint's time; the next test need not
    /// wait for it). A failed test's database stays for a look until the run
    /// ends; the managed cluster goes with it, and a `DATABASE_URL` server's
    /// leftovers are dropped by the next run.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let Some(server) = SERVER.get() else { return };
        let options = server.options.clone().database("postgres");
        let sql = format!("drop database if exists {} with (force)", self.database);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let mut admin = PgConnection::connect_with(&options)
                    .await
                    .expect("connect to the test server");
                execute(&mut admin, &sql).await;
                admin.close().await.ok();
            });
        });
    }
}

/// The address the tests' requests come from.
pub const CLIENT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40_000);

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = head.find("://").map_or(0, |at| at + 3);
    let base = match head[authority_start..].find('/') {
        Some(slash) => &head[..authority_start + slash],
        None => head,
    };
    format!("{base}/{database}{query}")
}

/// What the test binary logs, kept for the tests that read it.
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        // Every level of the service, of its HTTP and SQL layers; the
        // connection machinery below them (hyper, tokio) only from `info`.
        let filter = Targets::new()
            .with_target("room_booking", Level::TRACE)
            .with_target("tower_http", Level::TRACE)
            .with_target("sqlx", Level::TRACE)
            .with_default(Level::INFO);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish()
            .with(filter);
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buffer
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("the log buffer")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sessions of this test's database waiting for a lock.
pub const LOCK_WAITS: &str = "select count(*) from pg_stat_activity
                              where datname = current_database() and wait_event_type = 'Lock'";

/// Waits until `done`, at most 20 s.
pub async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "waited 20 s for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The methods an OpenAPI path item may describe.
pub const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// `GET /openapi.json`, the document the app serves.
pub async fn document(app: &TestApp) -> Value {
    let response = app
        .request_as(None, Method::GET, "/openapi.json", None)
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("content-type"), "application/json");
    response.body
}

/// Every (method, path shape) an OpenAPI document describes.
pub fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(|method| (method.to_uppercase(), route_shape(path)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `/hotels/{hotel}/rates?x` → `/hotels/{}/rates`.
pub fn route_shape(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
