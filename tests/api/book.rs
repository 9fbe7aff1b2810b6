//! `POST /book`, the seed-compatible booking of one night.

use crate::helpers::{LOCK_WAITS, TestApp, test_limits, wait_until};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{Days, NaiveDate, Utc};
use room_booking::Limits;
use room_booking::domain::Role;
use serde_json::json;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn in_days(days: u64) -> NaiveDate {
    today() + Days::new(days)
}

async fn app_with_room_and_user() -> TestApp {
    app_with_room_and_user_and(test_limits()).await
}

/// ROOM7 and user3, under `limits`.
async fn app_with_room_and_user_and(limits: Limits) -> TestApp {
    let app = TestApp::with_limits(limits, 4).await;
    app.create_room("ROOM7").await;
    app.create_user("user3").await;
    app
}

#[tokio::test]
async fn books_a_night_in_each_accepted_date_format() {
    let app = app_with_room_and_user().await;
    let cases = [
        (in_days(1).format("%d.%m.%y").to_string(), in_days(1)),
        (in_days(2).format("%d/%m/%y").to_string(), in_days(2)),
        (in_days(3).format("%Y-%m-%d").to_string(), in_days(3)),
    ];
    for (text, night) in cases {
        let response = app
            .post(
                "/book",
                json!({"room_name": "ROOM7", "user_name": "user3", "date": text}),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "{text}: {}",
            response.body
        );
        let id = response.body["id"].as_str().expect("an id").to_owned();
        assert_eq!(response.body["room_name"], "ROOM7");
        assert_eq!(response.body["user_name"], "user3");
        assert_eq!(response.body["date"], night.to_string());
        assert_eq!(response.body["status"], "confirmed");
        assert_eq!(response.header("location"), format!("/bookings/{id}"));

        let (stay, status, check_in, check_out): (String, String, String, String) = sqlx::query_as(
            "select b.stay::text, b.status::text,
                    to_char(b.check_in_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
                    to_char(b.check_out_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
             from bookings b join rooms r on r.id = b.room_id join users u on u.id = b.user_id
             where b.id = $1::uuid and r.name = 'ROOM7' and u.name = 'user3'",
        )
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .expect("the booking is stored");
        let next = night + Days::new(1);
        assert_eq!(stay, format!("[{night},{next})"));
        assert_eq!(status, "confirmed");
        // The default hotel is in UTC with check-in at 14:00 and check-out at 11:00.
        assert_eq!(check_in, format!("{night} 14:00"));
        assert_eq!(check_out, format!("{next} 11:00"));
    }
    assert_eq!(app.count("select count(*) from bookings").await, 3);
}

#[tokio::test]
async fn today_can_be_booked() {
    let app = app_with_room_and_user().await;
    let date = today().format("%d.%m.%y").to_string();
    let response = app
        .post(
            "/book",
            json!({"room_name": "ROOM7", "user_name": "user3", "date": date}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    assert_eq!(response.body["date"], today().to_string());
}

#[tokio::test]
async fn a_taken_night_is_a_conflict_and_changes_nothing() {
    let app = app_with_room_and_user().await;
    app.create_user("user4").await;
    let date = in_days(5).format("%d.%m.%y").to_string();
    let first = app
        .post(
            "/book",
            json!({"room_name": "ROOM7", "user_name": "user3", "date": date}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);

    for user in ["user3", "user4"] {
        let again = app
            .post(
                "/book",
                json!({"room_name": "ROOM7", "user_name": user, "date": date}),
            )
            .await;
        again.assert_problem(StatusCode::CONFLICT, "room_already_booked");
    }
    let owners: Vec<String> =
        sqlx::query_scalar("select u.name from bookings b join users u on u.id = b.user_id")
            .fetch_all(&app.pool)
            .await
            .expect("bookings");
    assert_eq!(owners, ["user3"]);

    // The next night and another room are still free.
    app.create_room("ROOM8").await;
    let next = in_days(6).format("%d.%m.%y").to_string();
    let response = app
        .post(
            "/book",
            json!({"room_name": "ROOM7", "user_name": "user4", "date": next}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
    let response = app
        .post(
            "/book",
            json!({"room_name": "ROOM8", "user_name": "user4", "date": date}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(app.count("select count(*) from bookings").await, 3);
}

#[tokio::test]
async fn unknown_room_or_user_is_not_found() {
    let app = app_with_room_and_user().await;
    let date = in_days(1).format("%d.%m.%y").to_string();
    let response = app
        .post(
            "/book",
            json!({"room_name": "ROOM99", "user_name": "user3", "date": date}),
        )
        .await;
    response.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert!(
        response.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("ROOM99")
    );

    let response = app
        .post(
            "/book",
            json!({"room_name": "ROOM7", "user_name": "nobody", "date": date}),
        )
        .await;
    response.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert!(
        response.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("nobody")
    );
    assert_eq!(app.count("select count(*) from bookings").await, 0);
}

#[tokio::test]
async fn bad_and_past_dates_are_unprocessable() {
    let app = app_with_room_and_user().await;
    for date in [
        "31.02.27",
        "29.02.27",
        "32.01.27",
        "24.13.27",
        "tomorrow",
        "",
        "2027-02-30",
        "24.11.2027",
    ] {
        let response = app
            .post(
                "/book",
                json!({"room_name": "ROOM7", "user_name": "user3", "date": date}),
            )
            .await;
        response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_date");
    }
    let yesterday = (today() - Days::new(1)).format("%d.%m.%y").to_string();
    let response = app
        .post(
            "/book",
            json!({"room_name": "ROOM7", "user_name": "user3", "date": yesterday}),
        )
        .await;
    response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "date_in_past");
    assert_eq!(app.count("select count(*) from bookings").await, 0);
}

#[tokio::test]
async fn malformed_requests_are_refused() {
    let app = app_with_room_and_user().await;
    let date = in_days(1).format("%d.%m.%y").to_string();
    let malformed = [
        r#"{"room_name": "ROOM7", "user_name": "user3", "date": "#.to_owned(),
        "not json".to_owned(),
        r#"{"room_name": "ROOM7", "user_name": "user3"}"#.to_owned(),
        format!(r#"{{"room_name": 7, "user_name": "user3", "date": "{date}"}}"#),
        "[]".to_owned(),
    ];
    for body in &malformed {
        let response = app.send_raw(Method::POST, "/book", body).await;
        response.assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }

    let no_content_type = Request::builder()
        .method(Method::POST)
        .uri("/book")
        .header("authorization", format!("Bearer {}", app.admin_token()))
        .body(Body::from(
            json!({"room_name": "ROOM7", "user_name": "user3", "date": date}).to_string(),
        ))
        .expect("a request");
    app.send(no_content_type)
        .await
        .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    let huge =
        json!({"room_name": "R".repeat(100_000), "user_name": "user3", "date": date}).to_string();
    app.send_raw(Method::POST, "/book", &huge)
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    assert_eq!(app.count("select count(*) from bookings").await, 0);
}

#[tokio::test]
async fn unknown_routes_answer_a_problem_document() {
    let app = TestApp::new().await;
    app.get("/nowhere")
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_racing_clients_get_exactly_one_night() {
    let app = app_with_room_and_user().await;
    let base = app.serve().await;
    let client = app.http_client();
    let date = in_days(10).format("%d.%m.%y").to_string();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (client, url, date, barrier) = (
                client.clone(),
                format!("{base}/book"),
                date.clone(),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let response = client
                    .post(url)
                    .json(&json!({"room_name": "ROOM7", "user_name": "user3", "date": date}))
                    .send()
                    .await
                    .expect("the server answers");
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.expect("a JSON body");
                (status, body)
            })
        })
        .collect();

    let mut created = 0;
    let mut conflicts = 0;
    for task in tasks {
        let (status, body) = task.await.expect("the task finishes");
        match status {
            201 => created += 1,
            409 => {
                assert_eq!(body["code"], "room_already_booked");
                conflicts += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!((created, conflicts), (1, 99));
    assert_eq!(app.count("select count(*) from bookings").await, 1);
}

/// A keyless booking to send: room, user, night, the guest's token it is sent
/// with (else the admin's), and the status and problem code it must answer
/// (`None`: one of the racers for the same night, `201` or `409`).
struct Wanted {
    room: &'static str,
    user: &'static str,
    night: NaiveDate,
    guest: bool,
    expected: Option<(u16, &'static str)>,
}

/// Makes keyless bookings wait: those sent after this block on the lock of
/// `rooms`, each on a connection of `POST /book`'s pool (10, as the pool's).
async fn hold_the_bookings(app: &TestApp) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = app.pool.begin().await.expect("a transaction");
    sqlx::query("lock table rooms in access exclusive mode")
        .execute(&mut *lock)
        .await
        .expect("lock rooms");
    lock
}

/// Sends `wanted` at once through HTTP; answers each one's status and body.
async fn send_all(
    app: &TestApp,
    base: &str,
    guest_token: &str,
    wanted: &[Wanted],
) -> Vec<tokio::task::JoinHandle<(u16, serde_json::Value)>> {
    let client = app.http_client();
    wanted
        .iter()
        .map(|wanted| {
            let mut request = client.post(format!("{base}/book")).json(&json!({
                "room_name": wanted.room,
                "user_name": wanted.user,
                "date": wanted.night.to_string(),
            }));
            if wanted.guest {
                request = request.bearer_auth(guest_token);
            }
            tokio::spawn(async move {
                let response = request.send().await.expect("the server answers");
                let status = response.status().as_u16();
                (status, response.json().await.expect("a JSON body"))
            })
        })
        .collect()
}

/// Sends `wanted` while [`hold_the_bookings`] holds the lock: the first ten
/// take the ten connections of `POST /book` and wait for the lock, the others
/// queue. Answers the requests in the order of `wanted`.
async fn send_ten_then_queue(
    app: &TestApp,
    base: &str,
    guest_token: &str,
    wanted: &[Wanted],
) -> Vec<tokio::task::JoinHandle<(u16, serde_json::Value)>> {
    let mut sent = send_all(app, base, guest_token, &wanted[..10]).await;
    wait_until("ten bookings to wait for the lock", async || {
        app.count(LOCK_WAITS).await == 10
    })
    .await;
    sent.extend(send_all(app, base, guest_token, &wanted[10..]).await);
    let queued = wanted.len() - 10;
    wait_until(&format!("{queued} bookings to queue"), async || {
        app.state.book_queue.waiting() == queued
    })
    .await;
    sent
}

/// The value of the line of `/metrics` that starts with `name`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let metrics = app.request_as(None, Method::GET, "/metrics", None).await;
    let text = metrics.body.as_str().expect("text").to_owned();
    text.lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no line {name} in\n{text}"))
}

/// ROOM7 and user3, and one worker for the queue of `POST /book`, so that
/// the nights waiting go into one statement.
async fn one_worker_app() -> TestApp {
    app_with_room_and_user_and(Limits {
        book_workers: 1,
        ..test_limits()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nights_booked_together_each_get_their_own_answer() {
    let app = one_worker_app().await;
    app.create_room("ROOM8").await;
    let (_, guest_token) = app.user_with_role("guest1", Role::Guest).await;
    let base = app.serve().await;
    let want = |room, user, night, guest, expected| Wanted {
        room,
        user,
        night,
        guest,
        expected,
    };
    let mut wanted = Vec::new();
    for n in 1..=10 {
        wanted.push(want("ROOM8", "user3", in_days(n), false, Some((201, ""))));
    }
    for _ in 0..40 {
        wanted.push(want("ROOM7", "user3", in_days(10), false, None));
    }
    for _ in 0..5 {
        let yesterday = today() - Days::new(1);
        wanted.push(want(
            "NOPE",
            "user3",
            in_days(3),
            false,
            Some((404, "not_found")),
        ));
        wanted.push(want(
            "ROOM8",
            "user3",
            yesterday,
            false,
            Some((422, "date_in_past")),
        ));
        wanted.push(want(
            "ROOM7",
            "NOBODY",
            in_days(20),
            false,
            Some((404, "not_found")),
        ));
        wanted.push(want(
            "ROOM7",
            "user3",
            in_days(800),
            false,
            Some((422, "beyond_horizon")),
        ));
    }
    for n in 20..25 {
        wanted.push(want("ROOM7", "user3", in_days(n), false, Some((201, ""))));
    }

    // The first ten take the ten connections and wait for the lock; the 65
    // others queue up, and the one worker books them in one statement on the
    // first connection that comes free. (A guest's bookings do not queue:
    // `a_guests_concurrent_bookings_stop_at_its_limit`.)
    let lock = hold_the_bookings(&app).await;
    let sent = send_ten_then_queue(&app, &base, &guest_token, &wanted).await;
    lock.commit().await.expect("release the lock");

    let mut racers = Vec::new();
    for (task, wanted) in sent.into_iter().zip(&wanted) {
        let (status, body) = task.await.expect("the request finishes");
        match wanted.expected {
            None => racers.push((status, body)),
            Some((201, _)) => {
                assert_eq!(status, 201, "{body}");
                assert_eq!(body["room_name"], wanted.room);
                assert_eq!(body["date"], wanted.night.to_string());
            }
            Some((expected, code)) => {
                assert_eq!(status, expected, "{body}");
                assert_eq!(body["code"], code, "{body}");
            }
        }
    }
    let created = racers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "{racers:?}");
    for (status, body) in racers.iter().filter(|(status, _)| *status != 201) {
        assert_eq!(*status, 409, "{body}");
        assert_eq!(body["code"], "room_already_booked");
    }
    assert_eq!(app.count("select count(*) from bookings").await, 16);
    assert_eq!(
        app.count(
            "select count(*) from bookings b join rooms r on r.id = b.room_id
             join users u on u.id = b.user_id
             where (r.name, u.name) in (('ROOM8', 'user3'), ('ROOM7', 'user3'))"
        )
        .await,
        16
    );
    // Ten statements of one night, and one of 65.
    assert_eq!(metric(&app, "book_statements_total").await, 11.0);
    assert_eq!(metric(&app, "book_statement_nights_total").await, 75.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_night_that_fails_in_the_database_fails_alone() {
    let app = one_worker_app().await;
    app.create_room("CURSED").await;
    // A database error that only the night of room CURSED meets.
    sqlx::raw_sql(
        "create function refuse_cursed() returns trigger language plpgsql as $$
         begin
             if (select name from rooms where id = new.room_id) = 'CURSED' then
                 raise exception 'the room is cursed';
             end if;
             return new;
         end $$;
         create trigger refuse_cursed before insert on bookings
             for each row execute function refuse_cursed();",
    )
    .execute(&app.pool)
    .await
    .expect("create the trigger");
    let base = app.serve().await;
    let mut wanted: Vec<Wanted> = (1..=20)
        .map(|n| Wanted {
            room: "ROOM7",
            user: "user3",
            night: in_days(n),
            guest: false,
            expected: Some((201, "")),
        })
        .collect();
    wanted.insert(
        15,
        Wanted {
            room: "CURSED",
            user: "user3",
            night: in_days(1),
            guest: false,
            expected: Some((500, "internal_error")),
        },
    );

    let lock = hold_the_bookings(&app).await;
    let sent = send_ten_then_queue(&app, &base, "", &wanted).await;
    lock.commit().await.expect("release the lock");

    for (task, wanted) in sent.into_iter().zip(&wanted) {
        let (status, body) = task.await.expect("the request finishes");
        let (expected, code) = wanted.expected.expect("an expected answer");
        assert_eq!(status, expected, "{} {}: {body}", wanted.room, wanted.night);
        if code.is_empty() {
            assert_eq!(body["room_name"], wanted.room);
            assert_eq!(body["date"], wanted.night.to_string());
        } else {
            assert_eq!(body["code"], code);
        }
    }
    assert_eq!(app.count("select count(*) from bookings").await, 20);
    assert_eq!(
        app.count(
            "select count(*) from bookings b join rooms r on r.id = b.room_id where r.name = 'CURSED'"
        )
        .await,
        0
    );
    // Ten alone; then the eleven queued together, which failed, then one by one.
    assert_eq!(metric(&app, "book_statements_total").await, 22.0);
    assert_eq!(metric(&app, "book_statement_nights_total").await, 32.0);
}

/// Ends the sessions of this test's database that wait for a lock (the
/// bookings held by [`hold_the_bookings`]), as a crash of their backends
/// would; answers how many.
async fn end_the_waiting_sessions(app: &TestApp) -> i64 {
    app.count(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
         where datname = current_database() and wait_event_type = 'Lock') ended",
    )
    .await
}

/// Sessions waiting for a lock with a statement of several nights
/// (`book_many.sql`, known by its first line: `query` keeps only the start).
const MANY_WAITS: &str = "select count(*) from pg_stat_activity
                          where datname = current_database() and wait_event_type = 'Lock'
                            and query like '-- POST /book, many nights in one statement%'";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_statement_of_several_whose_connection_ends_books_nothing_and_answers_503() {
    let app = one_worker_app().await;
    let base = app.serve().await;
    let wanted: Vec<Wanted> = (1..=30)
        .map(|n| Wanted {
            room: "ROOM7",
            user: "user3",
            night: in_days(n),
            guest: false,
            expected: Some((201, "")),
        })
        .collect();

    // Ten bookings wait for the lock on the ten connections, twenty queue.
    let lock = hold_the_bookings(&app).await;
    let sent = send_ten_then_queue(&app, &base, "", &wanted).await;
    // The ten lose their connections; the worker then opens a new one and
    // its statement of twenty waits for the lock in turn, and loses it too.
    assert_eq!(end_the_waiting_sessions(&app).await, 10);
    wait_until(
        "the statement of twenty alone to wait for the lock",
        async || {
            app.state.book_queue.waiting() == 0
                && app.count(LOCK_WAITS).await == 1
                && app.count(MANY_WAITS).await == 1
        },
    )
    .await;
    assert_eq!(end_the_waiting_sessions(&app).await, 1);
    wait_until("its session to be gone", async || {
        app.count(LOCK_WAITS).await == 0
    })
    .await;
    lock.commit().await.expect("release the lock");

    for (task, wanted) in sent.into_iter().zip(&wanted) {
        let (status, body) = task.await.expect("the request finishes");
        assert_eq!(status, 503, "{}: {body}", wanted.night);
        assert_eq!(body["code"], "service_unavailable", "{body}");
    }
    assert_eq!(
        app.count("select count(*) from bookings").await,
        0,
        "no night answered 503 is booked"
    );
    assert_eq!(metric(&app, "book_statements_total").await, 11.0);
    assert_eq!(metric(&app, "book_statement_nights_total").await, 30.0);

    // The same thirty again, one after another: the connections recover and
    // every night is free.
    for wanted in &wanted {
        let response = app
            .post(
                "/book",
                json!({"room_name": wanted.room, "user_name": wanted.user, "date": wanted.night.to_string()}),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    }
    assert_eq!(app.count("select count(*) from bookings").await, 30);
}

/// A setting of the session of `conn`.
async fn setting(conn: &mut sqlx::PgConnection, name: &str) -> String {
    sqlx::query_scalar("select current_setting($1)")
        .bind(name)
        .fetch_one(conn)
        .await
        .expect("the setting")
}

#[tokio::test]
async fn the_connections_of_book_plan_generically() {
    // `book_many.sql` would otherwise be planned anew on every execution
    // (its custom plan, for the arrays' lengths, always looks cheaper).
    let app = TestApp::new().await;
    let mut conn = app.state.book_pool.get().await.expect("a connection");
    let mode = setting(&mut conn, "plan_cache_mode").await;
    assert_eq!(mode, "force_generic_plan");
    let timeout = setting(&mut conn, "statement_timeout").await;
    let (_, statement) = room_booking::db::book::book_timeouts(
        test_limits().request_timeout,
        std::time::Duration::from_secs(5),
    );
    assert_eq!(
        timeout,
        format!("{}ms", statement.as_millis()),
        "the statement timeout of a keyless booking"
    );
    let mut pooled = app.pool.acquire().await.expect("a connection");
    let mode = setting(&mut pooled, "plan_cache_mode").await;
    assert_eq!(mode, "auto", "the pool's connections keep the default");
}

#[tokio::test]
async fn the_connections_of_book_find_every_row_by_an_index() {
    // Forty hotels fit in a page or two: without `enable_seqscan` off the
    // planner reads the default hotel and the hotel's row by scanning them all.
    let app = app_with_room_and_user().await;
    for i in 0..40 {
        app.create_hotel(&format!("Hotel {i}"), "Town", "Europe/Berlin")
            .await;
    }
    let mut conn = app.state.book_pool.get().await.expect("a connection");
    assert_eq!(setting(&mut conn, "enable_seqscan").await, "off");
    let statement = |path: &str| {
        let text = std::fs::read_to_string(path).expect("the statement's file");
        text.lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let night = in_days(3);
    let caller = app.admin_id();
    let cases = [
        (
            "book",
            statement("src/db/book.sql"),
            format!("'ROOM7', 'user3', '{night}', '{caller}', 730, 20, 0"),
        ),
        (
            "book_many",
            statement("src/db/book_many.sql"),
            format!(
                "array['ROOM7', 'ROOM7'], array['user3', 'user3'], array['{night}'::date, '{night}'::date + 1], \
                 array['{caller}'::uuid, '{caller}'::uuid], 730, 20, array[0, 0]"
            ),
        ),
    ];
    for (name, text, arguments) in cases {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("prepare {name} as {text}")))
            .execute(&mut *conn)
            .await
            .expect("prepare");
        for mode in ["force_generic_plan", "force_custom_plan"] {
            let mut tx = sqlx::Connection::begin(&mut *conn).await.expect("begin");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "set local plan_cache_mode = {mode}"
            )))
            .execute(&mut *tx)
            .await
            .expect("set");
            let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "explain execute {name}({arguments})"
            )))
            .fetch_all(&mut *tx)
            .await
            .expect("explain");
            let plan = plan.join("\n");
            assert!(!plan.contains("Seq Scan"), "{name}, {mode}:\n{plan}");
            for index in [
                "hotels_one_default",
                "rooms_hotel_id_name_key",
                "users_name_key",
            ] {
                assert!(plan.contains(index), "{name}, {mode}: {index}\n{plan}");
            }
            tx.rollback().await.expect("rollback");
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("deallocate {name}")))
            .execute(&mut *conn)
            .await
            .expect("deallocate");
    }
    let mut pooled = app.pool.acquire().await.expect("a connection");
    assert_eq!(
        setting(&mut pooled, "enable_seqscan").await,
        "on",
        "the pool's connections keep the default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_connections_of_book_are_as_many_as_configured_and_the_rest_queue() {
    let app = app_with_room_and_user_and(Limits {
        book_connections: 2,
        ..test_limits()
    })
    .await;
    assert_eq!(app.state.book_pool.status().max_size, 2);
    // Both connections taken: a booking waits in the queue, not on a third.
    let first = app.state.book_pool.get().await.expect("a connection");
    let second = app.state.book_pool.get().await.expect("a connection");
    let base = app.serve().await;
    let request = app
        .http_client()
        .post(format!("{base}/book"))
        .json(&json!({"room_name": "ROOM7", "user_name": "user3", "date": in_days(4)}))
        .send();
    let booking = tokio::spawn(request);
    wait_until("the booking to queue", async || {
        app.state.book_queue.waiting() == 1
    })
    .await;
    assert_eq!(app.state.book_pool.status().size, 2);
    assert_eq!(
        app.count("select count(*) from bookings").await,
        0,
        "nothing is booked while it waits"
    );
    drop(first);
    let answer = booking.await.expect("ran").expect("answered");
    assert_eq!(answer.status(), reqwest::StatusCode::CREATED);
    assert_eq!(app.count("select count(*) from bookings").await, 1);
    assert_eq!(app.state.book_queue.waiting(), 0);
    drop(second);
}

/// A keyless booking whose request times out is never committed afterwards:
/// its wait for a connection and its statement together end before the
/// request timeout. With a request timeout of 4 s (and the tests' acquire
/// timeout of 5 s) a booking waits at most 1.75 s and its statement runs at
/// most 1.75 s.
async fn a_late_booking(hold_for: std::time::Duration) -> (TestApp, reqwest::StatusCode) {
    let app = app_with_room_and_user_and(Limits {
        request_timeout: std::time::Duration::from_secs(4),
        book_connections: 2,
        ..test_limits()
    })
    .await;
    let lock = hold_the_bookings(&app).await;
    let first = app.state.book_pool.get().await.expect("a connection");
    let second = app.state.book_pool.get().await.expect("a connection");
    let base = app.serve().await;
    let started = std::time::Instant::now();
    let booking = tokio::spawn(
        app.http_client()
            .post(format!("{base}/book"))
            .json(&json!({"room_name": "ROOM7", "user_name": "user3", "date": in_days(4)}))
            .send(),
    );
    wait_until("the booking to queue", async || {
        app.state.book_queue.waiting() == 1
    })
    .await;
    tokio::time::sleep(hold_for.saturating_sub(started.elapsed())).await;
    drop(first);
    let answer = booking.await.expect("ran").expect("answered");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "answered by the request timeout, after {:?}",
        started.elapsed()
    );
    // Nothing waits any more to book the night once the lock is gone.
    assert_eq!(app.count(LOCK_WAITS).await, 0);
    lock.rollback().await.expect("release the lock");
    drop(second);
    (app, answer.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyless_booking_whose_statement_outlasts_its_share_answers_503_and_books_nothing() {
    // Taken from the queue after 1.2 s, the statement waits for the lock
    // until it is cancelled, 1.75 s later.
    let (app, status) = a_late_booking(std::time::Duration::from_millis(1200)).await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.count("select count(*) from bookings").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyless_booking_that_waited_too_long_answers_503_and_books_nothing() {
    // A connection comes free after 2.5 s: the worker's wait for one (the
    // booking's 1.75 s) has ended before, and the booking is not booked.
    let (app, status) = a_late_booking(std::time::Duration::from_millis(2500)).await;
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.count("select count(*) from bookings").await, 0);
}

/// A booking whose statement loses a deadlock is run again, as a
/// transaction would be, instead of being refused: keyless (its statement
/// alone) and with an `Idempotency-Key` (its whole transaction, the key's
/// claim included). The deadlock: another transaction holds the user's row
/// (as a guest's `POST /bookings` does); the booking inserts its night and
/// waits for that row (its foreign key); the other transaction then wants
/// the same night and waits for the booking. PostgreSQL ends the statement
/// that waited first, the booking's; run again, it waits for the other
/// transaction, which gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyless_booking_that_loses_a_deadlock_is_run_again() {
    a_booking_that_loses_a_deadlock(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyed_booking_that_loses_a_deadlock_is_run_again() {
    a_booking_that_loses_a_deadlock(Some("deadlock-1")).await;
}

async fn a_booking_that_loses_a_deadlock(key: Option<&str>) {
    let app = app_with_room_and_user().await;
    let base = app.serve().await;
    let night = in_days(4);
    let user3: uuid::Uuid = sqlx::query_scalar("select id from users where name = 'user3'")
        .fetch_one(&app.pool)
        .await
        .expect("user3");
    let mut request = app
        .http_client()
        .post(format!("{base}/book"))
        .json(&json!({"room_name": "ROOM7", "user_name": "user3", "date": night}));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let conflicting = sqlx::query(
        "insert into bookings (room_id, user_id, stay, check_in_at, check_out_at)
         select r.id, u.id, daterange($1::date, $1::date + 1), now(), now() + interval '1 day'
         from rooms r, users u where r.name = 'ROOM7' and u.name = 'user3'",
    )
    .bind(night);
    let answer = app.lose_a_deadlock(user3, request, conflicting).await;
    assert_eq!(
        answer.status(),
        reqwest::StatusCode::CREATED,
        "{:?}",
        answer.text().await
    );
    assert_eq!(app.count("select count(*) from bookings").await, 1);
    if let Some(key) = key {
        // The one transaction that committed recorded its answer: a retry
        // replays it and books nothing more.
        let again = app
            .http_client()
            .post(format!("{base}/book"))
            .header("idempotency-key", key)
            .json(&json!({"room_name": "ROOM7", "user_name": "user3", "date": night}))
            .send()
            .await
            .expect("answered");
        assert_eq!(again.status(), reqwest::StatusCode::CREATED);
        assert_eq!(
            again
                .headers()
                .get("idempotent-replayed")
                .map(|v| v.as_bytes()),
            Some(&b"true"[..])
        );
        assert_eq!(app.count("select count(*) from bookings").await, 1);
        assert_eq!(app.count("select count(*) from idempotency_keys").await, 1);
    }
}

/// A guest's live bookings are counted after every other booking of its has
/// committed: six nights of a guest one below its limit of three, sent at
/// once while ten other bookings hold every connection of `POST /book`,
/// book exactly one night. (Queued into one statement, they all passed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guests_concurrent_bookings_stop_at_its_limit() {
    let app = app_with_room_and_user_and(Limits {
        booking: room_booking::domain::booking::BookingLimits {
            guest_live_bookings: 3,
            ..test_limits().booking
        },
        book_workers: 1,
        ..test_limits()
    })
    .await;
    app.create_room("ROOM8").await;
    let (_, guest_token) = app.user_with_role("guest1", Role::Guest).await;
    let base = app.serve().await;
    for days in [1, 2] {
        let booked = app
            .request_as(
                Some(&guest_token),
                Method::POST,
                "/book",
                Some(json!({"room_name": "ROOM7", "user_name": "guest1", "date": in_days(days)})),
            )
            .await;
        assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    }
    // Ten of user3's nights (the admin's token) take the ten connections of
    // `POST /book` and wait for the lock; the guest's six are sent then, all
    // at once (they wait for the lock, or for the guest's row, or queue).
    let wanted: Vec<Wanted> = (0..16)
        .map(|n| Wanted {
            room: if n < 10 { "ROOM8" } else { "ROOM7" },
            user: if n < 10 { "user3" } else { "guest1" },
            night: in_days(10 + n),
            guest: n >= 10,
            expected: None,
        })
        .collect();
    let lock = hold_the_bookings(&app).await;
    let mut sent = send_all(&app, &base, &guest_token, &wanted[..10]).await;
    wait_until("ten bookings to wait for the lock", async || {
        app.count(LOCK_WAITS).await == 10
    })
    .await;
    sent.extend(send_all(&app, &base, &guest_token, &wanted[10..]).await);
    wait_until("the guest's six bookings to wait", async || {
        app.count(LOCK_WAITS).await + i64::try_from(app.state.book_queue.waiting()).unwrap_or(0)
            == 16
    })
    .await;
    lock.rollback().await.expect("release the lock");
    let mut statuses = Vec::new();
    for sent in sent {
        let (status, body) = sent.await.expect("answered");
        if status != 201 {
            assert_eq!(
                (status, body["code"].as_str()),
                (422, Some("guest_limit")),
                "{body}"
            );
        }
        statuses.push(status);
    }
    assert!(
        statuses[..10].iter().all(|&status| status == 201),
        "{statuses:?}"
    );
    assert_eq!(
        statuses[10..]
            .iter()
            .filter(|&&status| status == 201)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        app.count("select count(*) from bookings b join users u on u.id = b.user_id where u.name = 'guest1'")
            .await,
        3
    );
}
