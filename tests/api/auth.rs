//! Authentication and roles (SPEC 4.6): who may call what, which tokens are
//! refused, registration and sign-in over HTTP, and that no password, hash
//! or secret ever leaves the service in an answer or a log line.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{Days, NaiveDate, Utc};
use std::collections::BTreeSet;

use crate::helpers::{
    TEST_SECRET, TestApp, TestResponse, captured_logs, document, documented, route_shape,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use room_booking::auth::Claims;
use room_booking::domain::Role;
use serde_json::{Value, json};
use uuid::Uuid;

fn day(offset: u64) -> NaiveDate {
    Utc::now().date_naive() + Days::new(offset)
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// Row counts and a digest of every row of every table, to show that a
/// refused request changed nothing.
const SNAPSHOT: &str = "
    select 'hotels', count(*), coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from hotels t
    union all select 'room_types', count(*), coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from room_types t
    union all select 'rooms', count(*), coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from rooms t
    union all select 'rate_plans', count(*), coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from rate_plans t
    union all select 'daily_rates', count(*), coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from daily_rates t
    union all select 'users', count(*), coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from users t
    union all select 'bookings', count(*), coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from bookings t
    union all select 'invoices', count(*), coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from invoices t
    union all select 'invoice_lines', count(*), coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from invoice_lines t";

async fn snapshot(app: &TestApp) -> Vec<(String, i64, String)> {
    sqlx::query_as(SNAPSHOT)
        .fetch_all(&app.pool)
        .await
        .expect("a snapshot of the database")
}

/// Asserts the problem document a refusal of this status carries.
#[track_caller]
fn assert_refusal(response: &TestResponse, status: StatusCode) {
    let code = match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        other => panic!("no refusal code for {other}"),
    };
    response.assert_problem(status, code);
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(response.header("www-authenticate"), "Bearer");
    }
}

// ---------------------------------------------------------------------------
// The authorization table
// ---------------------------------------------------------------------------

/// Everything the table refers to, built through the API as the admin: a
/// hotel with priced rooms, inventory nobody uses (to delete), four users
/// and six bookings (three of `guest`, three of `other`), all starting
/// today so that the front desk may check them in or mark them no-show.
struct Fixture {
    values: Vec<(&'static str, String)>,
    guest: (Uuid, String),
    staff: (Uuid, String),
}

impl Fixture {
    async fn build(app: &TestApp) -> Fixture {
        let hotel = id(&app.create_hotel("Grand", "Testville", "UTC").await);
        let hotel2 = id(&app.create_hotel("Empty", "Nowhere", "UTC").await);
        let room_type = id(&app.create_room_type(&hotel, "Double", 2).await);
        let room_type2 = id(&app.create_room_type(&hotel, "Unused", 2).await);
        let plan = id(&app.create_rate_plan(&hotel, "Flex", Some(24)).await);
        let plan2 = id(&app.create_rate_plan(&hotel, "Unused", None).await);
        let mut rooms = Vec::new();
        for n in 1..=6 {
            rooms.push(id(&app
                .create_room_of(&hotel, &room_type, &format!("G-{n}"))
                .await));
        }
        app.put_rates(
            &hotel,
            &room_type,
            &plan,
            &day(0).to_string(),
            &day(60).to_string(),
            "100.00",
        )
        .await;
        // In the default hotel: `SEED` for `POST /book`, `SPARE` is never booked.
        app.create_room("SEED").await;
        let spare_room = id(&app.create_room("SPARE").await);

        let guest = app.user_with_role("guest", Role::Guest).await;
        let other = app.user_with_role("other", Role::Guest).await;
        let staff = app.user_with_role("staff", Role::Staff).await;
        let doomed = app.user_with_role("doomed", Role::Guest).await;

        let book = |user: Uuid, from: u64, to: u64| {
            let body = json!({
                "hotel_id": hotel, "room_type_id": room_type, "rate_plan_id": plan,
                "check_in": day(from).to_string(), "check_out": day(to).to_string(),
                "user_id": user,
            });
            async move {
                let response = app.post("/bookings", body).await;
                assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
                id(&response.body)
            }
        };
        let guest_booking = book(guest.0, 1, 3).await;
        let guest_desk = book(guest.0, 0, 1).await;
        let guest_noshow = book(guest.0, 0, 1).await;
        let other_booking = book(other.0, 1, 3).await;
        let other_desk = book(other.0, 0, 1).await;
        let other_noshow = book(other.0, 0, 1).await;

        let mut values = vec![
            ("hotel", hotel),
            ("hotel2", hotel2),
            ("room_type", room_type),
            ("room_type2", room_type2),
            ("plan", plan),
            ("plan2", plan2),
            ("room", rooms[0].clone()),
            ("spare_room", spare_room),
            ("guest", guest.0.to_string()),
            ("other", other.0.to_string()),
            ("doomed", doomed.0.to_string()),
            ("guest_booking", guest_booking),
            ("guest_desk", guest_desk),
            ("guest_noshow", guest_noshow),
            ("other_booking", other_booking),
            ("other_desk", other_desk),
            ("other_noshow", other_noshow),
        ];
        for (key, offset) in [
            ("d0", 0),
            ("d4", 4),
            ("d5", 5),
            ("d6", 6),
            ("d10", 10),
            ("d12", 12),
            ("d20", 20),
            ("d22", 22),
            ("d30", 30),
            ("d32", 32),
            ("d100", 100),
            ("d110", 110),
        ] {
            values.push((key, day(offset).to_string()));
        }
        Fixture {
            values,
            guest,
            staff,
        }
    }

    /// Replaces every `{key}` of a template; `{me}` and `{me_name}` are the caller.
    fn fill(&self, template: &str, me: Uuid, me_name: &str) -> String {
        let mut text = template
            .replace("{me}", &me.to_string())
            .replace("{me_name}", me_name);
        for (key, value) in &self.values {
            text = text.replace(&format!("{{{key}}}"), value);
        }
        assert!(
            !text.contains("{me") && !text.contains("\"{") && !text.contains("/{"),
            "a placeholder is left in {text}"
        );
        text
    }
}

#[derive(Debug, Clone, Copy)]
enum Caller {
    Anonymous,
    Guest,
    Staff,
    Admin,
}

/// A request, with the status expected for a guest, staff and an admin
/// (without a token it is always `401`). `{me}` is the caller's own id.
/// Rows run in this order against one set of fixtures per caller: reads,
/// then writes that leave the later rows' targets usable, deletes last.
#[rustfmt::skip]
const TABLE: &[(&str, &str, &str, [u16; 3])] = &[
    // Rooms (SPEC 4.1).
    ("GET",    "/rooms", "", [200, 200, 200]),
    ("GET",    "/rooms/{room}", "", [200, 200, 200]),
    ("POST",   "/rooms", r#"{"name": "NEW"}"#, [403, 201, 201]),
    ("PATCH",  "/rooms/{spare_room}", r#"{"name": "SPARE-2"}"#, [403, 200, 200]),
    // Hotels and inventory (SPEC 4.2).
    ("GET",    "/hotels/{hotel}", "", [200, 200, 200]),
    ("GET",    "/hotels/{hotel}/room-types", "", [200, 200, 200]),
    ("GET",    "/hotels/{hotel}/rate-plans", "", [200, 200, 200]),
    ("GET",    "/hotels/{hotel}/rates?room_type_id={room_type}&rate_plan_id={plan}&from={d0}&to={d10}", "", [200, 200, 200]),
    ("POST",   "/hotels", r#"{"name": "New", "city": "Paris", "timezone": "Europe/Paris"}"#, [403, 201, 201]),
    ("PATCH",  "/hotels/{hotel}", r#"{"city": "Elsewhere"}"#, [403, 200, 200]),
    ("POST",   "/hotels/{hotel}/room-types", r#"{"name": "Suite", "capacity": 4}"#, [403, 201, 201]),
    ("PATCH",  "/hotels/{hotel}/room-types/{room_type}", r#"{"capacity": 3}"#, [403, 200, 200]),
    ("POST",   "/hotels/{hotel}/rate-plans", r#"{"name": "Saver", "free_cancellation_hours": null}"#, [403, 201, 201]),
    ("PATCH",  "/hotels/{hotel}/rate-plans/{plan}", r#"{"free_cancellation_hours": 48}"#, [403, 200, 200]),
    ("PUT",    "/hotels/{hotel}/rates", r#"{"room_type_id": "{room_type}", "rate_plan_id": "{plan}", "from": "{d100}", "to": "{d110}", "price": "90.00", "currency": "EUR"}"#, [403, 200, 200]),
    // Users: a guest has its own record, staff read all, an admin changes all.
    ("GET",    "/users", "", [403, 200, 200]),
    ("GET",    "/users/{me}", "", [200, 200, 200]),
    ("GET",    "/users/{other}", "", [404, 200, 200]),
    ("POST",   "/users", r#"{"name": "newcomer"}"#, [403, 403, 201]),
    ("PATCH",  "/users/{me}", r#"{"email": "me@example.com"}"#, [200, 200, 200]),
    // Nobody raises its own role.
    ("PATCH",  "/users/{me}", r#"{"role": "admin"}"#, [403, 403, 200]),
    ("PATCH",  "/users/{other}", r#"{"email": "o@example.com"}"#, [404, 403, 200]),
    ("PATCH",  "/users/{other}", r#"{"role": "staff"}"#, [404, 403, 200]),
    // Bookings: a guest's own, everyone's for staff; others' are 404 to a guest.
    ("GET",    "/bookings", "", [200, 200, 200]),
    ("GET",    "/bookings/{guest_booking}", "", [200, 200, 200]),
    ("GET",    "/bookings/{other_booking}", "", [404, 200, 200]),
    ("GET",    "/bookings/{guest_booking}/invoice", "", [200, 200, 200]),
    ("GET",    "/bookings/{other_booking}/invoice", "", [404, 200, 200]),
    ("POST",   "/bookings", r#"{"hotel_id": "{hotel}", "room_type_id": "{room_type}", "rate_plan_id": "{plan}", "check_in": "{d10}", "check_out": "{d12}"}"#, [201, 201, 201]),
    ("POST",   "/bookings", r#"{"hotel_id": "{hotel}", "room_type_id": "{room_type}", "rate_plan_id": "{plan}", "check_in": "{d20}", "check_out": "{d22}", "user_id": "{me}"}"#, [201, 201, 201]),
    ("POST",   "/bookings", r#"{"hotel_id": "{hotel}", "room_type_id": "{room_type}", "rate_plan_id": "{plan}", "check_in": "{d30}", "check_out": "{d32}", "user_id": "{other}"}"#, [403, 201, 201]),
    ("PATCH",  "/bookings/{guest_booking}", r#"{"check_out": "{d4}"}"#, [200, 200, 200]),
    ("PATCH",  "/bookings/{other_booking}", r#"{"check_out": "{d4}"}"#, [404, 200, 200]),
    // The life cycle is the front desk's.
    ("POST",   "/bookings/{guest_desk}/check-in", "", [403, 200, 200]),
    ("POST",   "/bookings/{guest_desk}/check-out", "", [403, 200, 200]),
    ("POST",   "/bookings/{guest_noshow}/no-show", "", [403, 200, 200]),
    ("POST",   "/bookings/{other_desk}/check-in", "", [404, 200, 200]),
    ("POST",   "/bookings/{other_desk}/check-out", "", [404, 200, 200]),
    ("POST",   "/bookings/{other_noshow}/no-show", "", [404, 200, 200]),
    // The seed-compatible booking: a guest books for itself only.
    ("POST",   "/book", r#"{"room_name": "SEED", "user_name": "{me_name}", "date": "{d5}"}"#, [201, 201, 201]),
    ("POST",   "/book", r#"{"room_name": "SEED", "user_name": "other", "date": "{d6}"}"#, [403, 201, 201]),
    // Deletes last.
    ("DELETE", "/bookings/{other_booking}", "", [404, 204, 204]),
    ("DELETE", "/bookings/{guest_booking}", "", [204, 204, 204]),
    ("DELETE", "/rooms/{spare_room}", "", [403, 204, 204]),
    ("DELETE", "/hotels/{hotel}/room-types/{room_type2}", "", [403, 204, 204]),
    ("DELETE", "/hotels/{hotel}/rate-plans/{plan2}", "", [403, 204, 204]),
    ("DELETE", "/hotels/{hotel2}", "", [403, 204, 204]),
    ("DELETE", "/users/{doomed}", "", [403, 403, 204]),
    // Last: a new password ends the caller's token.
    ("PATCH",  "/users/{me}", r#"{"password": "a new password"}"#, [200, 200, 200]),
];

/// Routes anyone may call; `public_routes_need_no_token` covers them.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/auth/register"),
    ("POST", "/auth/token"),
    ("GET", "/hotels"),
    ("GET", "/hotels/{id}/availability"),
];

/// Runs the whole table as one caller on fresh fixtures; every refusal
/// answers its problem document and leaves the database as it was.
async fn check_table(caller: Caller) {
    let app = TestApp::new().await;
    let fixture = Fixture::build(&app).await;
    let admin_id: Uuid = sqlx::query_scalar("select id from users where name = 'admin'")
        .fetch_one(&app.pool)
        .await
        .expect("the admin");
    let (token, me, me_name) = match caller {
        // Without a token, `{me}` is the guest: its own record is still refused.
        Caller::Anonymous => (None, fixture.guest.0, "guest"),
        Caller::Guest => (Some(fixture.guest.1.clone()), fixture.guest.0, "guest"),
        Caller::Staff => (Some(fixture.staff.1.clone()), fixture.staff.0, "staff"),
        Caller::Admin => (Some(app.admin_token().to_owned()), admin_id, "admin"),
    };
    for &(method, path, body, expected) in TABLE {
        let path = fixture.fill(path, me, me_name);
        let body = (!body.is_empty()).then(|| {
            serde_json::from_str::<Value>(&fixture.fill(body, me, me_name)).expect("a JSON body")
        });
        let expected = match caller {
            Caller::Anonymous => 401,
            Caller::Guest => expected[0],
            Caller::Staff => expected[1],
            Caller::Admin => expected[2],
        };
        let expected = StatusCode::from_u16(expected).expect("a status");
        let before = snapshot(&app).await;
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let response = app
            .request_as(token.as_deref(), method.clone(), &path, body)
            .await;
        assert_eq!(
            response.status, expected,
            "{caller:?} {method} {path}: {}",
            response.body
        );
        if expected.is_client_error() {
            assert_refusal(&response, expected);
            assert_eq!(
                snapshot(&app).await,
                before,
                "{caller:?} {method} {path} was refused but changed the database"
            );
        }
    }
}

#[tokio::test]
async fn without_a_token_every_private_route_answers_401() {
    check_table(Caller::Anonymous).await;
}

#[tokio::test]
async fn a_guest_reaches_its_own_records_only() {
    check_table(Caller::Guest).await;
}

#[tokio::test]
async fn staff_run_inventory_and_every_booking_but_not_users() {
    check_table(Caller::Staff).await;
}

#[tokio::test]
async fn an_admin_may_do_everything() {
    check_table(Caller::Admin).await;
}

#[tokio::test]
async fn the_table_covers_every_route() {
    let app = TestApp::new().await;
    let routes = documented(&document(&app).await);
    assert!(routes.len() >= 30, "{routes:?}");
    let covered: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|(method, path, ..)| (method.to_string(), route_shape(path)))
        .chain(
            PUBLIC
                .iter()
                .map(|(method, path)| (method.to_string(), route_shape(path))),
        )
        .collect();
    let missing: Vec<_> = routes
        .iter()
        .filter(|route| !covered.contains(route))
        .collect();
    assert!(missing.is_empty(), "routes without a row: {missing:?}");
    let unknown: Vec<_> = covered
        .iter()
        .filter(|route| !routes.contains(route))
        .collect();
    assert!(unknown.is_empty(), "rows for no route: {unknown:?}");
}

#[tokio::test]
async fn public_routes_need_no_token() {
    let app = TestApp::new().await;
    let hotel = id(&app.create_hotel("Grand", "Testville", "UTC").await);
    let room_type = id(&app.create_room_type(&hotel, "Double", 2).await);
    let plan = id(&app.create_rate_plan(&hotel, "Flex", Some(24)).await);
    app.create_room_of(&hotel, &room_type, "G-1").await;
    let (from, to) = (day(1).to_string(), day(3).to_string());
    app.put_rates(&hotel, &room_type, &plan, &from, &to, "100.00")
        .await;

    let app = &app;
    let get = |path: String| async move { app.request_as(None, Method::GET, &path, None).await };
    assert_eq!(get("/health".into()).await.status, StatusCode::OK);
    assert_eq!(get("/ready".into()).await.status, StatusCode::OK);

    let list = get("/hotels".into()).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["total"], 2, "the default hotel and Grand");

    let search = get(format!(
        "/hotels?city=Testville&check_in={from}&check_out={to}&guests=2"
    ))
    .await;
    assert_eq!(search.status, StatusCode::OK, "{}", search.body);
    assert_eq!(search.body["items"][0]["id"], hotel.as_str());
    assert_eq!(search.body["items"][0]["cheapest_total"], "200.00");

    let availability = get(format!(
        "/hotels/{hotel}/availability?check_in={from}&check_out={to}&guests=2"
    ))
    .await;
    assert_eq!(availability.status, StatusCode::OK, "{}", availability.body);
    assert_eq!(availability.body["items"][0]["rooms_free"], 1);

    // What is not public stays closed, even next to a public route.
    assert_refusal(
        &get(format!("/hotels/{hotel}")).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_refusal(
        &get(format!("/hotels/{hotel}/room-types")).await,
        StatusCode::UNAUTHORIZED,
    );
}

#[tokio::test]
async fn a_guest_sees_and_books_only_for_itself() {
    let app = TestApp::new().await;
    let fixture = Fixture::build(&app).await;
    let (guest, token) = &fixture.guest;
    let token = Some(token.as_str());

    let own = app.request_as(token, Method::GET, "/bookings", None).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(own.body["total"], 3);
    let items = own.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|booking| booking["user_id"] == guest.to_string())
    );
    let all = app
        .request_as(Some(&fixture.staff.1), Method::GET, "/bookings", None)
        .await;
    assert_eq!(all.body["total"], 6, "staff see every booking");

    // Someone else's booking looks exactly like one that does not exist.
    let other = fixture.fill("{other_booking}", *guest, "guest");
    let hidden = app
        .request_as(token, Method::GET, &format!("/bookings/{other}"), None)
        .await;
    assert_refusal(&hidden, StatusCode::NOT_FOUND);
    assert_eq!(hidden.body["detail"], format!("no booking with id {other}"));

    // Booking without `user_id` books for the caller, not for anyone else.
    let body = json!({
        "hotel_id": fixture.fill("{hotel}", *guest, "guest"),
        "room_type_id": fixture.fill("{room_type}", *guest, "guest"),
        "rate_plan_id": fixture.fill("{plan}", *guest, "guest"),
        "check_in": day(10).to_string(), "check_out": day(11).to_string(),
    });
    let booked = app
        .request_as(token, Method::POST, "/bookings", Some(body))
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    assert_eq!(booked.body["user_id"], guest.to_string());
    assert_eq!(booked.body["user_name"], "guest");

    // Another name is refused alike whether that user exists or not: the
    // answer is no way to learn the names there are.
    let for_name =
        |name: &str| json!({"room_name": "SEED", "user_name": name, "date": day(6).to_string()});
    let existing = app
        .request_as(token, Method::POST, "/book", Some(for_name("staff")))
        .await;
    let missing = app
        .request_as(
            token,
            Method::POST,
            "/book",
            Some(for_name("nobody-by-this-name")),
        )
        .await;
    assert_refusal(&existing, StatusCode::FORBIDDEN);
    assert_eq!(existing.body, missing.body);

    let night = json!({"room_name": "SEED", "user_name": "guest", "date": day(5).to_string()});
    let booked = app
        .request_as(token, Method::POST, "/book", Some(night))
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    assert_eq!(
        app.count(
            "select count(*) from bookings b join users u on u.id = b.user_id
             where u.name = 'guest' and b.rate_plan_id is null"
        )
        .await,
        1
    );
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

fn sign(claims: &impl serde::Serialize, secret: &[u8], algorithm: Algorithm) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("a token")
}

fn claims(sub: Uuid, role: Role, exp_from_now: i64) -> Claims {
    let now = Utc::now().timestamp();
    Claims {
        sub,
        role,
        ver: 0,
        iat: now - 60,
        exp: now + exp_from_now,
    }
}

/// Base64url without padding, as JWTs use it.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, byte)| n | (u32::from(*byte) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Sends a request with this exact `Authorization` header value.
async fn with_authorization(
    app: &TestApp,
    authorization: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> TestResponse {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, authorization)
        .header(header::CONTENT_TYPE, "application/json");
    let body = body.map_or_else(Body::empty, |json| Body::from(json.to_string()));
    app.send(request.body(body).expect("a valid request")).await
}

#[tokio::test]
async fn refuses_every_token_that_is_not_a_valid_one() {
    let app = TestApp::new().await;
    app.create_room("SEED").await;
    let admin: Uuid = sqlx::query_scalar("select id from users where name = 'admin'")
        .fetch_one(&app.pool)
        .await
        .expect("the admin");
    let (_, guest_token) = app.user_with_role("guest", Role::Guest).await;
    let admin_read = format!("/users/{admin}");
    let book = json!({"room_name": "SEED", "user_name": "admin", "date": day(1).to_string()});

    // The forging helpers make tokens the service accepts when nothing is wrong.
    let valid = sign(
        &claims(admin, Role::Admin, 60),
        TEST_SECRET.as_bytes(),
        Algorithm::HS256,
    );
    let ok = with_authorization(
        &app,
        &format!("Bearer {valid}"),
        Method::GET,
        &admin_read,
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    // The scheme name is case-insensitive (RFC 9110).
    let lower = with_authorization(
        &app,
        &format!("bearer {valid}"),
        Method::GET,
        &admin_read,
        None,
    )
    .await;
    assert_eq!(lower.status, StatusCode::OK, "{}", lower.body);
    let [header, _, signature]: [&str; 3] = guest_token
        .split('.')
        .collect::<Vec<_>>()
        .try_into()
        .expect("three parts");
    let admin_payload = valid.split('.').nth(1).expect("a payload");
    for (bytes, encoded) in [
        (&b"f"[..], "Zg"),
        (b"fo", "Zm8"),
        (b"foobar", "Zm9vYmFy"),
        (&[0xfb, 0xff], "-_8"),
    ] {
        assert_eq!(base64url(bytes), encoded);
    }

    let now = Utc::now().timestamp();
    let mut refused = vec![
        (
            "expired",
            format!(
                "Bearer {}",
                sign(
                    &claims(admin, Role::Admin, -5),
                    TEST_SECRET.as_bytes(),
                    Algorithm::HS256
                )
            ),
        ),
        (
            "signed with another secret",
            format!(
                "Bearer {}",
                sign(
                    &claims(admin, Role::Admin, 60),
                    b"another secret of at least thirty-two bytes",
                    Algorithm::HS256
                )
            ),
        ),
        (
            "signed with HS384",
            format!(
                "Bearer {}",
                sign(
                    &claims(admin, Role::Admin, 60),
                    TEST_SECRET.as_bytes(),
                    Algorithm::HS384
                )
            ),
        ),
        (
            "without exp",
            format!(
                "Bearer {}",
                sign(
                    &json!({"sub": admin, "role": "admin", "iat": now}),
                    TEST_SECRET.as_bytes(),
                    Algorithm::HS256
                )
            ),
        ),
        (
            "a guest's token with the admin's payload",
            format!("Bearer {header}.{admin_payload}.{signature}"),
        ),
        (
            "alg none",
            format!(
                "Bearer {}.{admin_payload}.",
                base64url(br#"{"alg":"none","typ":"JWT"}"#)
            ),
        ),
        ("garbage", "Bearer garbage".to_owned()),
        ("three garbage parts", "Bearer a.b.c".to_owned()),
        ("empty", "Bearer ".to_owned()),
        ("no Bearer prefix", valid.clone()),
        ("another scheme", format!("Token {valid}")),
        ("basic", "Basic YWRtaW46cGFzc3dvcmQ=".to_owned()),
    ];
    // A well-signed token of nobody.
    refused.push((
        "an unknown user",
        format!(
            "Bearer {}",
            sign(
                &claims(Uuid::new_v4(), Role::Admin, 60),
                TEST_SECRET.as_bytes(),
                Algorithm::HS256
            )
        ),
    ));

    let before = snapshot(&app).await;
    for (what, authorization) in &refused {
        let read = with_authorization(&app, authorization, Method::GET, &admin_read, None).await;
        assert_eq!(
            read.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            read.body
        );
        assert_refusal(&read, StatusCode::UNAUTHORIZED);
        // `POST /book` checks the token without the `AuthUser` extractor.
        let booked = with_authorization(
            &app,
            authorization,
            Method::POST,
            "/book",
            Some(book.clone()),
        )
        .await;
        assert_eq!(
            booked.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            booked.body
        );
        assert_refusal(&booked, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(snapshot(&app).await, before);

    let booked = with_authorization(
        &app,
        &format!("Bearer {valid}"),
        Method::POST,
        "/book",
        Some(book),
    )
    .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
}

#[tokio::test]
async fn a_deleted_users_token_stops_working() {
    let app = TestApp::new().await;
    app.create_room("SEED").await;
    let (id, token) = app.user_with_role("leaving", Role::Guest).await;
    let token = Some(token.as_str());
    let own = format!("/users/{id}");
    assert_eq!(
        app.request_as(token, Method::GET, &own, None).await.status,
        StatusCode::OK
    );

    assert_eq!(app.delete(&own).await.status, StatusCode::NO_CONTENT);
    let before = snapshot(&app).await;
    assert_refusal(
        &app.request_as(token, Method::GET, &own, None).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_refusal(
        &app.request_as(token, Method::GET, "/rooms", None).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_refusal(
        &app.request_as(token, Method::PATCH, &own, Some(json!({"name": "back"})))
            .await,
        StatusCode::UNAUTHORIZED,
    );
    let night = json!({"room_name": "SEED", "user_name": "admin", "date": day(1).to_string()});
    assert_refusal(
        &app.request_as(token, Method::POST, "/book", Some(night))
            .await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn the_role_is_the_databases_not_the_tokens() {
    let app = TestApp::new().await;
    app.create_room("SEED").await;
    app.create_user("other").await;
    let (staff, staff_token) = app.user_with_role("staff", Role::Staff).await;
    let (guest, _) = app.user_with_role("guest", Role::Guest).await;
    let staff_bearer = format!("Bearer {staff_token}");
    let staff_token = Some(staff_token.as_str());
    assert_eq!(
        app.request_as(staff_token, Method::GET, "/users", None)
            .await
            .status,
        StatusCode::OK
    );

    // A demotion ends the token already handed out...
    let demoted = app
        .patch(&format!("/users/{staff}"), json!({"role": "guest"}))
        .await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.body);
    assert_refusal(
        &app.request_as(staff_token, Method::GET, "/users", None)
            .await,
        StatusCode::UNAUTHORIZED,
    );
    // Nor does it book, not even for its own user (keyless: the one
    // statement checks the caller's version; with a key: the same).
    for key in [None, Some("ended-token")] {
        let night = json!({"room_name": "SEED", "user_name": "staff", "date": day(2).to_string()});
        let mut request = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/book")
            .header("authorization", &staff_bearer)
            .header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let answer = app
            .send(request.body(night.to_string().into()).expect("a request"))
            .await;
        assert_refusal(&answer, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.count("select count(*) from bookings").await, 0);
    // ...and a token of the new version carries the new role.
    let version: i32 = sqlx::query_scalar("select token_version from users where id = $1")
        .bind(staff)
        .fetch_one(&app.pool)
        .await
        .expect("the version");
    assert_eq!(version, 1);
    let renewed = app.keys.mint(staff, Role::Staff, version).expect("a token");
    assert_refusal(
        &app.request_as(Some(&renewed), Method::GET, "/users", None)
            .await,
        StatusCode::FORBIDDEN,
    );

    // A validly signed token that claims `admin` for a guest gives a guest.
    let boasting = app.keys.mint(guest, Role::Admin, 0).expect("a token");
    let boasting = Some(boasting.as_str());
    let before = snapshot(&app).await;
    assert_refusal(
        &app.request_as(boasting, Method::GET, "/users", None).await,
        StatusCode::FORBIDDEN,
    );
    assert_refusal(
        &app.request_as(boasting, Method::POST, "/users", Some(json!({"name": "x"})))
            .await,
        StatusCode::FORBIDDEN,
    );
    let night = json!({"room_name": "SEED", "user_name": "other", "date": day(1).to_string()});
    assert_refusal(
        &app.request_as(boasting, Method::POST, "/book", Some(night))
            .await,
        StatusCode::FORBIDDEN,
    );
    assert_eq!(snapshot(&app).await, before);
}

// ---------------------------------------------------------------------------
// Registration and sign-in
// ---------------------------------------------------------------------------

async fn sign_in(app: &TestApp, name: &str, password: &str) -> TestResponse {
    app.request_as(
        None,
        Method::POST,
        "/auth/token",
        Some(json!({"name": name, "password": password})),
    )
    .await
}

#[tokio::test]
async fn registers_signs_in_and_uses_the_token() {
    let app = TestApp::new().await;
    let registered = app.register("alice", "correct horse").await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let alice = id(&registered.body);
    assert_eq!(registered.header("location"), format!("/users/{alice}"));
    assert_eq!(registered.body["name"], "alice");
    assert_eq!(registered.body["role"], "guest");
    assert!(registered.body.get("password").is_none());
    assert!(registered.body.get("password_hash").is_none());
    assert_eq!(
        app.count(
            "select count(*) from users
             where name = 'alice' and role = 'guest' and password_hash like '$argon2id$%'"
        )
        .await,
        1
    );

    let signed_in = sign_in(&app, "alice", "correct horse").await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.body["token_type"], "Bearer");
    assert_eq!(signed_in.body["expires_in"], 3600);
    let token = signed_in.body["access_token"].as_str().expect("a token");
    let claims = app.keys.verify(token).expect("a token the service accepts");
    assert_eq!(claims.sub.to_string(), alice);
    assert_eq!(claims.role, Role::Guest);
    assert_eq!(claims.exp - claims.iat, 3600);

    let own = app
        .request_as(Some(token), Method::GET, &format!("/users/{alice}"), None)
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(own.body["role"], "guest");
    assert_refusal(
        &app.request_as(Some(token), Method::GET, "/users", None)
            .await,
        StatusCode::FORBIDDEN,
    );

    // A changed password: the old one stops working, the new one works.
    let changed = app
        .request_as(
            Some(token),
            Method::PATCH,
            &format!("/users/{alice}"),
            Some(json!({"password": "battery staple", "current_password": "correct horse"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    // ...and the token issued before the change has ended.
    assert_eq!(
        app.request_as(Some(token), Method::GET, &format!("/users/{alice}"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&app, "alice", "correct horse").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&app, "alice", "battery staple").await.status,
        StatusCode::OK
    );

    // Boundaries: exactly 8 characters of password, exactly 100 of name.
    let name = "n".repeat(100);
    let edge = app
        .request_as(
            None,
            Method::POST,
            "/auth/register",
            Some(json!({"name": name, "password": "12345678"})),
        )
        .await;
    assert_eq!(edge.status, StatusCode::CREATED, "{}", edge.body);
    assert_eq!(
        sign_in(&app, &name, "12345678").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn refuses_bad_registrations_and_stores_nothing() {
    let app = TestApp::new().await;
    let register = |body: Value| app.request_as(None, Method::POST, "/auth/register", Some(body));
    assert_eq!(
        register(json!({"name": "alice", "password": "correct horse"}))
            .await
            .status,
        StatusCode::CREATED
    );
    let before = snapshot(&app).await;

    for name in ["alice", "  alice ", "admin"] {
        register(json!({"name": name, "password": "another password"}))
            .await
            .assert_problem(StatusCode::CONFLICT, "already_exists");
    }
    for body in [
        json!({"name": "bob", "password": ""}),
        json!({"name": "bob", "password": "1234567"}),
        json!({"name": "bob", "password": "p".repeat(257)}),
        json!({"name": "", "password": "correct horse"}),
        json!({"name": "   ", "password": "correct horse"}),
        json!({"name": "b".repeat(101), "password": "correct horse"}),
    ] {
        register(body)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    for body in [
        json!({"name": "bob", "password": "correct horse", "role": "admin"}),
        json!({"name": "bob"}),
        json!({"name": "bob", "password": 12345678}),
    ] {
        register(body)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    }
    assert_eq!(snapshot(&app).await, before);
    // The first registration's password is untouched by the refused ones.
    assert_eq!(
        sign_in(&app, "alice", "correct horse").await.status,
        StatusCode::OK
    );
    assert_eq!(
        sign_in(&app, "alice", "another password").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_wrong_name_and_a_wrong_password_get_the_same_answer() {
    let app = TestApp::new().await;
    let registered = app.register("alice", "correct horse").await;
    assert_eq!(registered.status, StatusCode::CREATED);
    // A user made without a password cannot sign in with any.
    app.create_user("nopassword").await;
    let before = snapshot(&app).await;

    let wrong_password = sign_in(&app, "alice", "wrong horse").await;
    assert_refusal(&wrong_password, StatusCode::UNAUTHORIZED);
    for (name, password) in [
        ("nobody", "correct horse"),
        ("nobody", "wrong horse"),
        ("ALICE", "correct horse"),
        ("nopassword", "correct horse"),
        ("nopassword", ""),
    ] {
        let refused = sign_in(&app, name, password).await;
        assert_refusal(&refused, StatusCode::UNAUTHORIZED);
        assert_eq!(refused.body, wrong_password.body, "{name}");
        assert_eq!(refused.header("www-authenticate"), "Bearer");
    }
    assert_eq!(snapshot(&app).await, before);
}

// ---------------------------------------------------------------------------
// Secrets stay secret
// ---------------------------------------------------------------------------

#[tokio::test]
async fn no_answer_or_log_line_carries_a_password_a_hash_or_the_secret() {
    let logs = captured_logs();
    let app = TestApp::new().await;
    let password = "pw-Zebra-7341-first";
    let wrong = "pw-Otter-5512-wrong";
    let changed = "pw-Heron-9931-second";
    let carols = "pw-Lynx-2208-carol";
    let short = "pw-1";
    let mut answers = Vec::new();
    let mut keep = |response: TestResponse| {
        answers.push(format!("{:?} {}", response.headers, response.body));
        response
    };

    let register = |name: &str, password: &str| {
        app.request_as(
            None,
            Method::POST,
            "/auth/register",
            Some(json!({"name": name, "password": password})),
        )
    };
    let registered = keep(register("alice", password).await);
    assert_eq!(registered.status, StatusCode::CREATED);
    let alice = id(&registered.body);
    let first_hash: String =
        sqlx::query_scalar("select password_hash from users where name = 'alice'")
            .fetch_one(&app.pool)
            .await
            .expect("a hash");
    keep(register("alice", password).await);
    keep(register("bob", short).await);
    keep(
        app.request_as(
            None,
            Method::POST,
            "/auth/register",
            Some(json!({"name": "bob", "password": password, "role": "admin"})),
        )
        .await,
    );

    let signed_in = keep(sign_in(&app, "alice", password).await);
    assert_eq!(signed_in.status, StatusCode::OK);
    let token = signed_in.body["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    keep(sign_in(&app, "alice", wrong).await);
    keep(sign_in(&app, "nobody", password).await);
    let patched = keep(
        app.request_as(
            Some(&token),
            Method::PATCH,
            &format!("/users/{alice}"),
            Some(json!({"password": changed, "current_password": password})),
        )
        .await,
    );
    assert_eq!(patched.status, StatusCode::OK);
    // The change ended the old token; sign in again for the next call.
    let token: String = keep(sign_in(&app, "alice", changed).await).body["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    keep(
        app.request_as(
            Some(&token),
            Method::PATCH,
            &format!("/users/{alice}"),
            Some(json!({"password": short})),
        )
        .await,
    );
    assert_eq!(
        keep(sign_in(&app, "alice", changed).await).status,
        StatusCode::OK
    );
    keep(
        app.post("/users", json!({"name": "carol", "password": carols}))
            .await,
    );
    keep(app.get("/users").await);
    keep(app.get(&format!("/users/{alice}")).await);

    let hashes: Vec<String> =
        sqlx::query_scalar("select password_hash from users where password_hash is not null")
            .fetch_all(&app.pool)
            .await
            .expect("the hashes");
    assert_eq!(hashes.len(), 2, "alice's and carol's");
    let mut secrets: Vec<String> = [password, wrong, changed, carols, short, TEST_SECRET]
        .map(str::to_owned)
        .to_vec();
    for hash in hashes.iter().chain([&first_hash]) {
        secrets.push(hash.clone());
        // The salt and the digest alone, should a log print the parts.
        secrets.extend(
            hash.split('$')
                .filter(|part| part.len() >= 16)
                .map(str::to_owned),
        );
    }

    let logs = String::from_utf8_lossy(&logs.lock().expect("the log buffer")).into_owned();
    // The capture works: the request spans of these calls are in it.
    assert!(
        logs.contains("finished processing request") && logs.contains("/auth/token"),
        "nothing was captured: {logs}"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a log line carries {secret}"
        );
        for answer in &answers {
            assert!(
                !answer.contains(secret.as_str()),
                "{answer} carries {secret}"
            );
        }
    }
}

/// The managed database's JWT secret: made once (mode 0600), kept, and an
/// empty file (a crash of an older version between creating and writing
/// it) replaced, with no draft left beside it.
#[test]
fn the_managed_secret_is_made_once_and_never_left_empty() {
    use room_booking::auth::load_or_create_secret;
    use std::os::unix::fs::PermissionsExt;

    let dir = std::env::temp_dir().join(format!("rb-secret-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).expect("a directory");
    let path = dir.join("jwt-secret");
    let secret = load_or_create_secret(&path).expect("made");
    assert_eq!(secret.len(), 96);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    let mode = std::fs::metadata(&path)
        .expect("the file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(load_or_create_secret(&path).expect("kept"), secret);

    std::fs::write(&path, "").expect("empty it");
    let remade = load_or_create_secret(&path).expect("remade");
    assert_eq!(remade.len(), 96);
    assert_ne!(remade, secret);
    assert_eq!(std::fs::read_to_string(&path).expect("the file"), remade);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("the directory")
        .map(|entry| entry.expect("an entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["jwt-secret", "jwt-secret.lock"]);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

/// Processes that start at once on a data directory without a secret, or
/// with the empty file of an older version's crash, all get the one secret
/// that ends up in the file (each thread opens the lock file apart, as a
/// process would).
#[test]
fn processes_starting_at_once_agree_on_one_secret() {
    use room_booking::auth::load_or_create_secret;

    let dir = std::env::temp_dir().join(format!("rb-secret-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).expect("a directory");
    let path = dir.join("jwt-secret");
    for round in 0..40 {
        if round % 2 == 0 {
            let _ = std::fs::remove_file(&path);
        } else {
            std::fs::write(&path, "").expect("empty it");
        }
        let start = std::sync::Barrier::new(8);
        let secrets: Vec<String> = std::thread::scope(|scope| {
            let starters: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        load_or_create_secret(&path).expect("a secret")
                    })
                })
                .collect();
            starters
                .into_iter()
                .map(|starter| starter.join().expect("no panic"))
                .collect()
        });
        let kept = std::fs::read_to_string(&path).expect("the file");
        assert_eq!(kept.len(), 96, "round {round}");
        for secret in &secrets {
            assert_eq!(
                secret, &kept,
                "round {round}: every starter uses the kept secret"
            );
        }
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}
