//! `/bookings`: allocation, pricing, invoices, changes, cancellation, the
//! status life cycle, time zones and races.

use crate::helpers::{LOCK_WAITS, TestApp, test_limits, wait_until};
use axum::http::{Method, StatusCode};
use chrono::{Datelike, Days, NaiveDate, Utc, Weekday};
use room_booking::Limits;
use serde_json::{Value, json};

fn day(offset: u64) -> NaiveDate {
    Utc::now().date_naive() + Days::new(offset)
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// A hotel with one room type of `rooms` rooms, a rate plan priced at 100.00
/// for the next 60 nights (the first night of a stay costs 100.00 too), a guest.
struct Hotel {
    hotel: String,
    room_type: String,
    plan: String,
    user: String,
}

async fn hotel(
    app: &TestApp,
    timezone: &str,
    rooms: usize,
    free_cancellation_hours: Option<i32>,
) -> Hotel {
    hotel_called(
        app,
        &format!("Hotel {timezone}"),
        timezone,
        rooms,
        free_cancellation_hours,
    )
    .await
}

async fn hotel_called(
    app: &TestApp,
    name: &str,
    timezone: &str,
    rooms: usize,
    free_cancellation_hours: Option<i32>,
) -> Hotel {
    let hotel = id(&app.create_hotel(name, "Testville", timezone).await);
    let room_type = id(&app.create_room_type(&hotel, "Double", 2).await);
    let plan = id(&app
        .create_rate_plan(&hotel, "Flex", free_cancellation_hours)
        .await);
    for n in 0..rooms {
        app.create_room_of(&hotel, &room_type, &format!("{timezone}-{n}"))
            .await;
    }
    // Rates from yesterday on, so that zones ahead of UTC are priced too.
    let from = (day(0) - Days::new(1)).to_string();
    app.put_rates(
        &hotel,
        &room_type,
        &plan,
        &from,
        &day(60).to_string(),
        "100.00",
    )
    .await;
    let user = id(&app
        .create_user(&format!("guest-{}", uuid::Uuid::new_v4()))
        .await);
    Hotel {
        hotel,
        room_type,
        plan,
        user,
    }
}

impl Hotel {
    fn stay(&self, check_in: NaiveDate, check_out: NaiveDate) -> Value {
        json!({
            "hotel_id": self.hotel, "room_type_id": self.room_type, "rate_plan_id": self.plan,
            "check_in": check_in.to_string(), "check_out": check_out.to_string(), "guests": 2, "user_id": self.user,
        })
    }
}

async fn book(app: &TestApp, body: Value) -> Value {
    let response = app.post("/bookings", body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    response.body
}

/// What a refused request must leave alone: bookings and invoices as they were.
async fn snapshot(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "select concat_ws(' ', b.id, b.room_id, b.stay, b.status, b.total_price, i.status, i.total,
                          (select string_agg(concat_ws(':', l.date, l.amount), ',' order by l.position)
                           from invoice_lines l where l.invoice_id = i.id))
         from bookings b left join invoices i on i.booking_id = b.id order by b.id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("snapshot")
}

#[tokio::test]
async fn books_a_priced_stay_with_its_invoice() {
    let app = TestApp::new().await;
    let h = hotel(&app, "UTC", 2, Some(48)).await;
    app.put_rates(
        &h.hotel,
        &h.room_type,
        &h.plan,
        &day(11).to_string(),
        &day(12).to_string(),
        "120.50",
    )
    .await;

    let response = app.post("/bookings", h.stay(day(10), day(13))).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    let booking = &response.body;
    let booking_id = id(booking);
    assert_eq!(
        response.header("location"),
        format!("/bookings/{booking_id}")
    );
    assert_eq!(booking["hotel_id"], h.hotel.as_str());
    assert_eq!(booking["room_type_id"], h.room_type.as_str());
    assert_eq!(booking["rate_plan_id"], h.plan.as_str());
    assert_eq!(booking["user_id"], h.user.as_str());
    assert_eq!(booking["check_in"], day(10).to_string());
    assert_eq!(booking["check_out"], day(13).to_string());
    assert_eq!(booking["check_in_at"], format!("{}T14:00:00Z", day(10)));
    assert_eq!(booking["check_out_at"], format!("{}T11:00:00Z", day(13)));
    assert_eq!(booking["guests"], 2);
    assert_eq!(booking["status"], "confirmed");
    assert_eq!(booking["total_price"], "320.50");
    assert_eq!(booking["currency"], "EUR");
    assert_eq!(booking["room_name"], "UTC-0");

    let read = app.get(&format!("/bookings/{booking_id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(&read.body, booking);

    let invoice = app.get(&format!("/bookings/{booking_id}/invoice")).await;
    assert_eq!(invoice.status, StatusCode::OK, "{}", invoice.body);
    assert_eq!(invoice.body["booking_id"], booking_id.as_str());
    assert_eq!(invoice.body["status"], "open");
    assert_eq!(invoice.body["total"], "320.50");
    assert_eq!(invoice.body["currency"], "EUR");
    let amounts: Vec<&str> = invoice.body["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l["amount"].as_str())
        .collect();
    assert_eq!(amounts, ["100.00", "120.50", "100.00"]);
    assert_eq!(invoice.body["lines"][1]["date"], day(11).to_string());

    let stored: (String, String, String) = sqlx::query_as(
        "select b.stay::text, b.total_price::text, (select sum(amount)::text from invoice_lines l where l.invoice_id = i.id)
         from bookings b join invoices i on i.booking_id = b.id where b.id = $1::uuid",
    )
    .bind(&booking_id)
    .fetch_one(&app.pool)
    .await
    .expect("booking and invoice are stored");
    assert_eq!(
        stored,
        (
            format!("[{},{})", day(10), day(13)),
            "320.50".into(),
            "320.50".into()
        )
    );

    // A specific room can be asked for instead of a type.
    let room = app.get("/rooms?per_page=100").await.body["items"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|room| room["name"] == "UTC-1")
        .map(id)
        .expect("room UTC-1");
    let mut by_room = h.stay(day(10), day(11));
    by_room["room_type_id"] = Value::Null;
    by_room["room_id"] = json!(room);
    let booked = book(&app, by_room.clone()).await;
    assert_eq!(booked["room_id"], room.as_str());
    app.post("/bookings", by_room)
        .await
        .assert_problem(StatusCode::CONFLICT, "room_already_booked");
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

#[tokio::test]
async fn refuses_what_cannot_be_booked_and_stores_nothing() {
    let app = TestApp::new().await;
    let h = hotel(&app, "UTC", 1, Some(48)).await;
    let other = hotel(&app, "Europe/Paris", 1, Some(48)).await;
    book(&app, h.stay(day(20), day(22))).await;
    let before = snapshot(&app).await;

    let response = app.post("/bookings", h.stay(day(58), day(62))).await;
    response.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "rate_missing");
    assert!(
        response.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(&day(60).to_string()),
        "{}",
        response.body
    );

    let unprocessable = [
        (h.stay(day(0) - Days::new(2), day(1)), "date_in_past"),
        (h.stay(day(5), day(5)), "invalid_stay"),
        (h.stay(day(6), day(5)), "invalid_stay"),
        (
            with(h.stay(day(2), day(3)), "guests", json!(3)),
            "over_capacity",
        ),
        (
            with(h.stay(day(2), day(3)), "guests", json!(0)),
            "validation_failed",
        ),
        (
            with(h.stay(day(2), day(3)), "check_in", json!("2027-02-30")),
            "invalid_date",
        ),
        (
            with(
                h.stay(day(2), day(3)),
                "room_id",
                json!(uuid::Uuid::new_v4()),
            ),
            "validation_failed",
        ),
        (
            with(
                h.stay(day(2), day(3)),
                "room_type_id",
                json!(other.room_type),
            ),
            "validation_failed",
        ),
        (
            with(h.stay(day(2), day(3)), "rate_plan_id", json!(other.plan)),
            "validation_failed",
        ),
        (
            with(
                h.stay(day(2), day(3)),
                "hotel_id",
                json!(uuid::Uuid::new_v4()),
            ),
            "validation_failed",
        ),
        (
            with(
                h.stay(day(2), day(3)),
                "user_id",
                json!(uuid::Uuid::new_v4()),
            ),
            "validation_failed",
        ),
    ];
    for (body, code) in unprocessable {
        app.post("/bookings", body)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    app.post("/bookings", h.stay(day(21), day(23)))
        .await
        .assert_problem(StatusCode::CONFLICT, "room_already_booked");
    app.send_raw(Method::POST, "/bookings", r#"{"hotel_id": "#)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    app.post(
        "/bookings",
        with(h.stay(day(2), day(3)), "guests", json!("two")),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn today_and_the_past_are_the_hotels_own() {
    // Kiritimati (UTC+14) is always a calendar day or two ahead of Pago Pago (UTC-11).
    let app = TestApp::new().await;
    let ahead = hotel(&app, "Pacific/Kiritimati", 1, Some(0)).await;
    let behind = hotel(&app, "Pacific/Pago_Pago", 1, Some(0)).await;
    let pago_today = Utc::now()
        .with_timezone(&chrono_tz::Pacific::Pago_Pago)
        .date_naive();
    let kiritimati_today = Utc::now()
        .with_timezone(&chrono_tz::Pacific::Kiritimati)
        .date_naive();
    assert!(pago_today < kiritimati_today);

    let allowed = book(&app, behind.stay(pago_today, pago_today + Days::new(1))).await;
    assert_eq!(allowed["check_in"], pago_today.to_string());
    assert_eq!(
        allowed["check_in_at"],
        format!("{pago_today}T14:00:00-11:00")
    );

    app.post(
        "/bookings",
        ahead.stay(pago_today, pago_today + Days::new(1)),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "date_in_past");
    let booked = book(
        &app,
        ahead.stay(kiritimati_today, kiritimati_today + Days::new(1)),
    )
    .await;
    assert_eq!(
        booked["check_in_at"],
        format!("{kiritimati_today}T14:00:00+14:00")
    );
    assert_eq!(app.count("select count(*) from bookings").await, 2);
}

/// The last Sunday of March in the first year where it is at least a week away.
fn next_spring_forward() -> NaiveDate {
    (day(0).year()..)
        .filter_map(|year| {
            let last = NaiveDate::from_ymd_opt(year, 3, 31)?;
            let sunday = last - Days::new(u64::from(last.weekday().num_days_from_sunday()));
            (sunday.weekday() == Weekday::Sun && sunday > day(7)).then_some(sunday)
        })
        .next()
        .expect("a future March")
}

#[tokio::test]
async fn instants_carry_the_offset_across_a_dst_change() {
    let app = TestApp::new().await;
    let paris = id(&app.create_hotel("Paris", "Paris", "Europe/Paris").await);
    let room_type = id(&app.create_room_type(&paris, "Double", 2).await);
    let plan = id(&app.create_rate_plan(&paris, "Flex", Some(24)).await);
    app.create_room_of(&paris, &room_type, "P1").await;
    let sunday = next_spring_forward();
    let saturday = sunday - Days::new(1);
    app.put_rates(
        &paris,
        &room_type,
        &plan,
        &saturday.to_string(),
        &(sunday + Days::new(1)).to_string(),
        "90.00",
    )
    .await;
    let user = id(&app.create_user("jean").await);
    let booking = book(
        &app,
        json!({"hotel_id": paris, "room_type_id": room_type, "rate_plan_id": plan, "check_in": saturday.to_string(),
               "check_out": (sunday + Days::new(1)).to_string(), "user_id": user}),
    )
    .await;
    // Check-in on Saturday is still winter time, check-out on Monday summer time.
    assert_eq!(booking["check_in_at"], format!("{saturday}T14:00:00+01:00"));
    assert_eq!(
        booking["check_out_at"],
        format!("{}T11:00:00+02:00", sunday + Days::new(1))
    );
    let utc: (String, String) = sqlx::query_as(
        "select to_char(check_in_at at time zone 'UTC', 'HH24:MI'), to_char(check_out_at at time zone 'UTC', 'HH24:MI')
         from bookings",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the booking");
    assert_eq!(utc, ("13:00".into(), "09:00".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_clients_fill_each_room_once() {
    const ROOMS: usize = 5;
    let app = TestApp::new().await;
    let h = hotel(&app, "UTC", ROOMS, Some(48)).await;
    let base = app.serve().await;
    let client = app.http_client();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(3 * ROOMS));
    let tasks: Vec<_> = (0..3 * ROOMS)
        .map(|_| {
            let (client, url, body, barrier) = (
                client.clone(),
                format!("{base}/bookings"),
                h.stay(day(3), day(5)),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let response = client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .expect("an answer");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.expect("JSON"))
            })
        })
        .collect();
    let mut rooms = std::collections::BTreeSet::new();
    let mut conflicts = 0;
    for task in tasks {
        match task.await.expect("the task ends") {
            (201, body) => {
                assert!(rooms.insert(body["room_id"].as_str().expect("room").to_owned()))
            }
            (409, body) => {
                assert_eq!(body["code"], "room_already_booked");
                conflicts += 1;
            }
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    assert_eq!((rooms.len(), conflicts), (ROOMS, 2 * ROOMS));
    assert_eq!(
        app.count("select count(distinct room_id) from bookings")
            .await,
        ROOMS as i64
    );
    assert_eq!(
        app.count("select count(*) from bookings").await,
        ROOMS as i64
    );
    assert_eq!(
        app.count("select count(*) from invoices").await,
        ROOMS as i64
    );
}

#[tokio::test]
async fn changes_dates_and_room_type_all_or_nothing() {
    let app = TestApp::new().await;
    let h = hotel(&app, "UTC", 2, Some(48)).await;
    let suite = id(&app.create_room_type(&h.hotel, "Suite", 4).await);
    app.create_room_of(&h.hotel, &suite, "S1").await;
    app.put_rates(
        &h.hotel,
        &suite,
        &h.plan,
        &day(0).to_string(),
        &day(30).to_string(),
        "250.00",
    )
    .await;

    let booking = book(&app, h.stay(day(10), day(12))).await;
    let path = format!("/bookings/{}", id(&booking));

    // New dates, room still free: same room, re-priced, invoice rewritten.
    let moved = app
        .patch(
            &path,
            json!({"check_in": day(11).to_string(), "check_out": day(14).to_string()}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body["room_id"], booking["room_id"]);
    assert_eq!(moved.body["check_in"], day(11).to_string());
    assert_eq!(moved.body["total_price"], "300.00");
    let invoice = app.get(&format!("{path}/invoice")).await.body;
    assert_eq!(invoice["total"], "300.00");
    assert_eq!(invoice["lines"].as_array().map(Vec::len), Some(3));

    // Another room type: another room, its price.
    let upgraded = app.patch(&path, json!({"room_type_id": suite})).await;
    assert_eq!(upgraded.status, StatusCode::OK, "{}", upgraded.body);
    assert_eq!(upgraded.body["room_name"], "S1");
    assert_eq!(upgraded.body["total_price"], "750.00");

    // Refusals leave booking, room and invoice exactly as they were.
    let other = book(
        &app,
        with(h.stay(day(25), day(26)), "room_type_id", json!(suite)),
    )
    .await;
    let before = snapshot(&app).await;
    let refusals = [
        (
            json!({"check_in": day(25).to_string(), "check_out": day(35).to_string()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rate_missing",
        ),
        (
            json!({"check_out": day(11).to_string()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_stay",
        ),
        (
            json!({"check_in": day(0).pred_opt().expect("yesterday").to_string()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "date_in_past",
        ),
        (
            json!({"check_in": day(25).to_string(), "check_out": day(26).to_string()}),
            StatusCode::CONFLICT,
            "room_already_booked",
        ),
        (
            json!({"room_type_id": uuid::Uuid::new_v4()}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ];
    for (body, status, code) in refusals {
        app.patch(&path, body).await.assert_problem(status, code);
    }
    app.patch(&path, json!({"check_in": 5}))
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    app.patch(
        &format!("/bookings/{}", uuid::Uuid::new_v4()),
        json!({"check_in": day(3).to_string()}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(other["room_name"], "S1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_racing_a_new_booking_never_overlaps() {
    let app = TestApp::new().await;
    let h = hotel(&app, "UTC", 1, Some(48)).await;
    let base = app.serve().await;
    let client = app.http_client();
    let mut new_bookings = 0;
    for round in 0..10u64 {
        let start = 2 + round * 4;
        let booking = book(&app, h.stay(day(start), day(start + 1))).await;
        let change = client
            .patch(format!("{base}/bookings/{}", id(&booking)))
            .json(&json!({"check_in": day(start + 2).to_string(), "check_out": day(start + 4).to_string()}))
            .send();
        let new_booking = client
            .post(format!("{base}/bookings"))
            .json(&h.stay(day(start + 2), day(start + 4)))
            .send();
        let (change, new_booking) = tokio::join!(change, new_booking);
        let statuses = (
            change.expect("answer").status().as_u16(),
            new_booking.expect("answer").status().as_u16(),
        );
        assert!(
            statuses == (200, 409) || statuses == (409, 201),
            "round {round}: {statuses:?}"
        );
        new_bookings += i64::from(statuses.1 == 201);
    }
    let overlaps = app
        .count(
            "select count(*) from bookings a join bookings b on a.room_id = b.room_id and a.id < b.id and a.stay && b.stay
             where a.status not in ('cancelled', 'no_show') and b.status not in ('cancelled', 'no_show')",
        )
        .await;
    assert_eq!(overlaps, 0);
    assert_eq!(
        app.count("select count(*) from bookings").await,
        10 + new_bookings
    );
}

async fn invoice_of(app: &TestApp, booking: &Value) -> Value {
    app.get(&format!("/bookings/{}/invoice", id(booking)))
        .await
        .body
}

#[tokio::test]
async fn cancellation_frees_the_nights_and_settles_the_invoice() {
    let app = TestApp::new().await;
    let flexible = hotel(&app, "UTC", 1, Some(48)).await;
    let strict = hotel(&app, "Europe/Berlin", 1, None).await;

    // Before the deadline: void, nothing owed.
    let early = book(&app, flexible.stay(day(10), day(12))).await;
    let path = format!("/bookings/{}", id(&early));
    let response = app.delete(&path).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let invoice = invoice_of(&app, &early).await;
    assert_eq!(
        (invoice["status"].as_str(), invoice["total"].as_str()),
        (Some("void"), Some("0.00"))
    );
    assert_eq!(app.get(&path).await.body["status"], "cancelled");
    // The nights are free again.
    book(&app, flexible.stay(day(10), day(12))).await;
    // Repeating it changes nothing.
    let before = snapshot(&app).await;
    assert_eq!(app.delete(&path).await.status, StatusCode::NO_CONTENT);
    assert_eq!(snapshot(&app).await, before);

    // After the deadline (48 hours before tomorrow's check-in): the first night is owed.
    let late = book(&app, flexible.stay(day(1), day(3))).await;
    assert_eq!(
        app.delete(&format!("/bookings/{}", id(&late))).await.status,
        StatusCode::NO_CONTENT
    );
    let invoice = invoice_of(&app, &late).await;
    assert_eq!(
        (invoice["status"].as_str(), invoice["total"].as_str()),
        (Some("cancellation_fee"), Some("100.00"))
    );
    assert_eq!(invoice["lines"].as_array().map(Vec::len), Some(1));
    assert_eq!(invoice["lines"][0]["date"], day(1).to_string());

    // Non-refundable: the first night is owed however early.
    let non_refundable = book(&app, strict.stay(day(30), day(33))).await;
    assert_eq!(
        app.delete(&format!("/bookings/{}", id(&non_refundable)))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let invoice = invoice_of(&app, &non_refundable).await;
    assert_eq!(
        (invoice["status"].as_str(), invoice["total"].as_str()),
        (Some("cancellation_fee"), Some("100.00"))
    );

    app.delete(&format!("/bookings/{}", uuid::Uuid::new_v4()))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let fees: i64 = app
        .count("select count(*) from invoices where status = 'cancellation_fee' and total = 100")
        .await;
    assert_eq!(fees, 2);
}

#[tokio::test]
async fn the_cancellation_deadline_is_the_hotels_check_in_instant() {
    // Same check-in date, 49 hours of free cancellation: Kiritimati's check-in
    // (14:00 at UTC+14) is 25 hours before Pago Pago's (14:00 at UTC-11). Two
    // days ahead in UTC, the deadline has passed in Kiritimati but not in Pago Pago.
    let app = TestApp::new().await;
    let ahead = hotel(&app, "Pacific/Kiritimati", 1, Some(49)).await;
    let behind = hotel(&app, "Pacific/Pago_Pago", 1, Some(49)).await;
    let ahead_booking = book(&app, ahead.stay(day(2), day(3))).await;
    let behind_booking = book(&app, behind.stay(day(2), day(3))).await;
    for booking in [&ahead_booking, &behind_booking] {
        assert_eq!(
            app.delete(&format!("/bookings/{}", id(booking)))
                .await
                .status,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        invoice_of(&app, &ahead_booking).await["status"],
        "cancellation_fee"
    );
    assert_eq!(invoice_of(&app, &behind_booking).await["status"], "void");
}

#[tokio::test]
async fn the_life_cycle_allows_only_its_transitions() {
    let app = TestApp::new().await;
    let h = hotel(&app, "UTC", 3, Some(48)).await;
    let today = book(&app, h.stay(day(0), day(2))).await;
    let later = book(&app, h.stay(day(5), day(6))).await;
    let path = |booking: &Value, action: &str| format!("/bookings/{}/{action}", id(booking));

    app.post(&path(&later, "check-in"), json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "too_early");
    app.post(&path(&later, "no-show"), json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "too_early");
    app.post(&path(&later, "check-out"), json!({}))
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");

    let checked_in = app.post(&path(&today, "check-in"), json!({})).await;
    assert_eq!(checked_in.status, StatusCode::OK, "{}", checked_in.body);
    assert_eq!(checked_in.body["status"], "checked_in");
    for action in ["check-in", "no-show"] {
        app.post(&path(&today, action), json!({}))
            .await
            .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    }
    app.delete(&format!("/bookings/{}", id(&today)))
        .await
        .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    app.patch(
        &format!("/bookings/{}", id(&today)),
        json!({"check_out": day(3).to_string()}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "invalid_transition");
    let checked_out = app.post(&path(&today, "check-out"), json!({})).await;
    assert_eq!(checked_out.body["status"], "checked_out");

    let no_show = book(&app, h.stay(day(0), day(1))).await;
    assert_eq!(
        app.post(&path(&no_show, "no-show"), json!({})).await.body["status"],
        "no_show"
    );
    // A no-show frees the room: the night can be sold again.
    let mut again = with(h.stay(day(0), day(1)), "room_type_id", Value::Null);
    again["room_id"] = no_show["room_id"].clone();
    book(&app, again).await;

    let statuses: Vec<String> =
        sqlx::query_scalar("select status::text from bookings order by created_at")
            .fetch_all(&app.pool)
            .await
            .expect("statuses");
    assert_eq!(
        statuses,
        ["checked_out", "confirmed", "no_show", "confirmed"]
    );
    app.post(
        &format!("/bookings/{}/check-in", uuid::Uuid::new_v4()),
        json!({}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn lists_bookings_with_filters() {
    let app = TestApp::new().await;
    let a = hotel(&app, "UTC", 2, Some(48)).await;
    let b = hotel(&app, "Asia/Tokyo", 2, Some(48)).await;
    let first = book(&app, a.stay(day(3), day(5))).await;
    book(&app, a.stay(day(10), day(12))).await;
    book(&app, b.stay(day(4), day(6))).await;
    app.delete(&format!("/bookings/{}", id(&first))).await;

    let all = app.get("/bookings").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body["total"], 3);
    let of_a = app.get(&format!("/bookings?hotel_id={}", a.hotel)).await;
    assert_eq!(of_a.body["total"], 2);
    let cancelled = app.get("/bookings?status=cancelled").await;
    assert_eq!(cancelled.body["total"], 1);
    assert_eq!(cancelled.body["items"][0]["id"], first["id"]);
    let window = app
        .get(&format!("/bookings?from={}&to={}", day(5), day(10)))
        .await;
    assert_eq!(window.body["total"], 1);
    assert_eq!(window.body["items"][0]["hotel_id"], b.hotel.as_str());
    let page = app.get("/bookings?per_page=2&page=2").await;
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(1));

    app.get("/bookings?status=lost")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "malformed_request");
    app.get("/bookings?from=2027-13-01")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_date");
    app.get(&format!("/bookings/{}", uuid::Uuid::new_v4()))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn seed_bookings_have_no_invoice() {
    let app = TestApp::new().await;
    app.create_room("ROOM1").await;
    app.create_user("user1").await;
    let booked = app
        .post("/book", json!({"room_name": "ROOM1", "user_name": "user1", "date": day(2).format("%d.%m.%y").to_string()}))
        .await;
    assert_eq!(booked.status, StatusCode::CREATED);
    let read = app.get(booked.header("location")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["room_name"], "ROOM1");
    assert_eq!(read.body["total_price"], Value::Null);
    app.get(&format!("{}/invoice", booked.header("location")))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

/// Sends `request` and, `delay` later, the deletion of room `room`; answers
/// the request's status and body, and the deletion's status.
async fn race_with_deletion(
    client: &reqwest::Client,
    base: &str,
    request: reqwest::RequestBuilder,
    room: &str,
    delay: std::time::Duration,
) -> (u16, Value, u16) {
    let deletion = async {
        tokio::time::sleep(delay).await;
        client.delete(format!("{base}/rooms/{room}")).send().await
    };
    let (answer, deletion) = tokio::join!(request.send(), deletion);
    let answer = answer.expect("answer");
    let status = answer.status().as_u16();
    let body = answer.json().await.expect("a JSON body");
    (status, body, deletion.expect("answer").status().as_u16())
}

/// A `POST /bookings` with an `Idempotency-Key` whose transaction loses a
/// deadlock is run again whole (the key's claim, the allocation, the
/// insert), once the savepoint of its allocation has passed the deadlock
/// on, and books the room it would have booked alone. The deadlock: another
/// transaction holds the guest's user row; the booking inserts its nights
/// and waits for that row (its foreign key); the other transaction then
/// wants the same nights and waits for the booking.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyed_booking_that_loses_a_deadlock_is_run_again() {
    let app = TestApp::new().await;
    let base = app.serve().await;
    let h = hotel(&app, "UTC", 1, Some(48)).await;
    let (check_in, check_out) = (day(10), day(12));
    let user = uuid::Uuid::parse_str(&h.user).expect("a uuid");
    let request = app
        .http_client()
        .post(format!("{base}/bookings"))
        .header("idempotency-key", "deadlock-bookings")
        .json(&h.stay(check_in, check_out));
    let conflicting = sqlx::query(
        "insert into bookings (room_id, user_id, stay, check_in_at, check_out_at)
         select r.id, $2, daterange($3, $4), now(), now() + interval '1 day'
         from rooms r where r.hotel_id = $1",
    )
    .bind(uuid::Uuid::parse_str(&h.hotel).expect("a uuid"))
    .bind(user)
    .bind(check_in)
    .bind(check_out);
    let answer = app.lose_a_deadlock(user, request, conflicting).await;
    assert_eq!(
        answer.status(),
        reqwest::StatusCode::CREATED,
        "{:?}",
        answer.text().await
    );
    assert_eq!(app.count("select count(*) from bookings").await, 1);
    assert_eq!(app.count("select count(*) from invoices").await, 1);
    assert_eq!(app.count("select count(*) from idempotency_keys").await, 1);
}

/// A hotel of one room with a booking for `stay` in it, and a spare room of
/// the same type, the only one free for that stay: the hotel and the spare
/// room's id.
async fn hotel_with_a_spare_room(
    app: &TestApp,
    round: u64,
    stay: (NaiveDate, NaiveDate),
) -> (Hotel, String) {
    let h = hotel_called(app, &format!("Race {round}"), "UTC", 1, Some(48)).await;
    book(app, h.stay(stay.0, stay.1)).await;
    let room = id(&app
        .create_room_of(&h.hotel, &h.room_type, &format!("spare-{round}"))
        .await);
    (h, room)
}

/// A change that moves a booking to a free room while that room is deleted:
/// either the change wins (the booking is in that room, which then cannot
/// be deleted) or the deletion does (the change finds no room free and
/// changes nothing). A `200` always carries the stay asked for. The deletion
/// is sent a little later each round, so that some rounds land between the
/// change's search for a free room and its move.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_racing_the_deletion_of_its_new_room_is_all_or_nothing() {
    let app = TestApp::new().await;
    let base = app.serve().await;
    let client = app.http_client();
    let (mut moved, mut deleted) = (0, 0);
    for round in 0..40u64 {
        let start = 1 + round % 10 * 5;
        let (h, room) =
            hotel_with_a_spare_room(&app, round, (day(start + 2), day(start + 4))).await;
        let booking = book(&app, h.stay(day(start), day(start + 1))).await;
        let change = client
            .patch(format!("{base}/bookings/{}", id(&booking)))
            .json(&json!({"check_in": day(start + 2).to_string(), "check_out": day(start + 4).to_string()}));
        let delay = std::time::Duration::from_micros(round * 150);
        let (status, body, deletion) =
            race_with_deletion(&client, &base, change, &room, delay).await;
        let now: (uuid::Uuid, String) =
            sqlx::query_as("select room_id, stay::text from bookings where id = $1")
                .bind(uuid::Uuid::parse_str(&id(&booking)).expect("a uuid"))
                .fetch_one(&app.pool)
                .await
                .expect("the booking");
        match (status, deletion) {
            (200, 409) => {
                assert_eq!(
                    now.0.to_string(),
                    room,
                    "round {round}: moved to the new room"
                );
                assert_eq!(now.1, format!("[{},{})", day(start + 2), day(start + 4)));
                assert_eq!(
                    body["check_in"],
                    day(start + 2).to_string(),
                    "round {round}"
                );
                moved += 1;
            }
            (409, 204) => {
                assert_eq!(body["code"], "room_already_booked", "round {round}: {body}");
                assert_eq!(
                    now.1,
                    format!("[{},{})", day(start), day(start + 1)),
                    "round {round}"
                );
                deleted += 1;
            }
            other => panic!("round {round}: {other:?}, {body}, the booking now {now:?}"),
        }
    }
    assert_eq!(moved + deleted, 40);
}

/// A new booking racing the deletion of the only free room: either the
/// booking wins (the room then cannot be deleted) or the deletion does (no
/// room is free, nothing is booked), never a refusal that blames the booking
/// for the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_booking_racing_the_deletion_of_the_free_room_books_it_or_finds_none() {
    let app = TestApp::new().await;
    let base = app.serve().await;
    let client = app.http_client();
    for round in 0..40u64 {
        let stay = (day(2), day(4));
        let (h, room) = hotel_with_a_spare_room(&app, round, stay).await;
        let booking = client
            .post(format!("{base}/bookings"))
            .json(&h.stay(stay.0, stay.1));
        let delay = std::time::Duration::from_micros(round * 100);
        let (status, body, deletion) =
            race_with_deletion(&client, &base, booking, &room, delay).await;
        let in_the_spare_room: i64 =
            sqlx::query_scalar("select count(*) from bookings where room_id::text = $1")
                .bind(&room)
                .fetch_one(&app.pool)
                .await
                .expect("the spare room's bookings");
        match (status, deletion) {
            (201, 409) => {
                assert_eq!(body["room_id"], room, "round {round}");
                assert_eq!(in_the_spare_room, 1, "round {round}");
            }
            (409, 204) => {
                assert_eq!(body["code"], "room_already_booked", "round {round}: {body}");
                assert_eq!(in_the_spare_room, 0, "round {round}");
            }
            other => panic!("round {round}: {other:?}, {body}"),
        }
    }
}

/// A booking's check-in and check-out instants are the hotel's local times
/// on its dates: a new time zone or new times move those of its confirmed
/// bookings (and with them the cancellation deadline); a cancelled booking
/// keeps the instants it had.
#[tokio::test]
async fn a_hotels_new_time_zone_or_times_move_its_bookings_instants() {
    let app = TestApp::new().await;
    let h = hotel(&app, "UTC", 2, Some(48)).await;
    let booking = book(&app, h.stay(day(10), day(12))).await;
    let cancelled = book(&app, h.stay(day(20), day(21))).await;
    let gone = app.delete(&format!("/bookings/{}", id(&cancelled))).await;
    assert!(gone.status.is_success(), "{}", gone.body);
    let instants = |booking: &Value| {
        let id = uuid::Uuid::parse_str(&id(booking)).expect("a uuid");
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, (String, String)>(
                "select to_char(check_in_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
                        to_char(check_out_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
                 from bookings where id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("the booking")
        }
    };
    let cancelled_before = instants(&cancelled).await;

    // A new name changes no booking.
    let renamed = app
        .patch(&format!("/hotels/{}", h.hotel), json!({"name": "Renamed"}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(
        instants(&booking).await,
        (format!("{} 14:00", day(10)), format!("{} 11:00", day(12)))
    );

    let moved = app
        .patch(
            &format!("/hotels/{}", h.hotel),
            json!({"timezone": "Asia/Tokyo", "check_in_time": "15:00"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    // 15:00 and 11:00 in Tokyo (UTC+9, no summer time) are 06:00 and 02:00 UTC.
    assert_eq!(
        instants(&booking).await,
        (format!("{} 06:00", day(10)), format!("{} 02:00", day(12)))
    );
    let shown = app.get(&format!("/bookings/{}", id(&booking))).await;
    assert_eq!(
        shown.body["check_in_at"],
        format!("{}T15:00:00+09:00", day(10))
    );
    assert_eq!(instants(&cancelled).await, cancelled_before);
}

/// A transaction of the test's own that has written, and not yet committed,
/// the night `night` in the first room of `h`, with the instants of the
/// hotel's zone as it is (computed as the service's statements do): the
/// transaction and the booking's id.
async fn booking_in_progress(
    app: &TestApp,
    h: &Hotel,
    night: NaiveDate,
) -> (sqlx::Transaction<'static, sqlx::Postgres>, uuid::Uuid) {
    let mut writing = app.pool.begin().await.expect("a transaction");
    let id = sqlx::query_scalar(
        "insert into bookings (room_id, user_id, stay, check_in_at, check_out_at)
         select r.id, $2, daterange($3, $3 + 1), ($3 + h.check_in_time) at time zone h.timezone,
                ($3 + 1 + h.check_out_time) at time zone h.timezone
         from rooms r join hotels h on h.id = r.hotel_id
         where r.hotel_id = $1 order by r.name limit 1
         returning id",
    )
    .bind(uuid::Uuid::parse_str(&h.hotel).expect("a uuid"))
    .bind(uuid::Uuid::parse_str(&h.user).expect("a uuid"))
    .bind(night)
    .fetch_one(&mut *writing)
    .await
    .expect("a booking in progress");
    (writing, id)
}

/// A booking's check-in instant in UTC, `YYYY-MM-DD HH:MI`.
async fn check_in_utc(app: &TestApp, id: uuid::Uuid) -> String {
    sqlx::query_scalar(
        "select to_char(check_in_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') from bookings where id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .expect("the booking")
}

/// Holds every change of a hotel's time zone as it moves its first booking
/// (a trigger of the test waits on an advisory lock) until the connection
/// returned lets the lock go ([`let_moves_go`]).
async fn hold_moves(app: &TestApp) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    sqlx::raw_sql(
        "create function hold_moves() returns trigger language plpgsql as $$
         begin
             perform set_config('lock_timeout', '0', true);
             perform pg_advisory_xact_lock_shared(4242);
             return new;
         end $$;
         create trigger hold_moves before update on bookings
             for each row execute function hold_moves();",
    )
    .execute(&app.pool)
    .await
    .expect("the test's trigger");
    let mut holding = app.pool.acquire().await.expect("a connection");
    sqlx::query("select pg_advisory_lock(4242)")
        .execute(&mut *holding)
        .await
        .expect("the advisory lock");
    holding
}

async fn let_moves_go(mut holding: sqlx::pool::PoolConnection<sqlx::Postgres>) {
    sqlx::query("select pg_advisory_unlock(4242)")
        .execute(&mut *holding)
        .await
        .expect("let the change go on");
}

/// A change of a hotel's time zone and a booking at the same moment: the
/// booking ends with the new zone's instants whichever comes first. A
/// transaction writing a booking when the change comes (here one of the
/// test's own, not yet committed) is waited for, and its booking moved; a
/// booking that comes while the change is under way (held here, as it moves
/// a booking, by a trigger of the test) waits for it, and reads the new zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_booking_made_during_a_time_zone_change_gets_the_new_zones_instants() {
    // The change waits for the test's own writer, which commits only once it
    // has seen the change wait: long enough for a busy machine.
    let limits = Limits {
        hotel_change_lock_wait: std::time::Duration::from_secs(20),
        ..test_limits()
    };
    let app = TestApp::with_limits(limits, 4).await;
    let base = app.serve().await;
    let h = hotel(&app, "UTC", 2, Some(48)).await;
    let client = app.http_client();
    let change_zone = |zone: &str| {
        client
            .patch(format!("{base}/hotels/{}", h.hotel))
            .json(&json!({ "timezone": zone }))
            .send()
    };
    // A booking in progress (computed from the hotel as it is: UTC) when the
    // zone changes to Tokyo (UTC+9: 14:00 there is 05:00 UTC).
    let (writing, in_progress) = booking_in_progress(&app, &h, day(30)).await;
    let to_tokyo = tokio::spawn(change_zone("Asia/Tokyo"));
    wait_until(
        "the change to wait for the booking in progress",
        async || app.count(LOCK_WAITS).await == 1,
    )
    .await;
    writing.commit().await.expect("the booking commits");
    let changed = to_tokyo.await.expect("ran").expect("answered");
    assert_eq!(changed.status(), reqwest::StatusCode::OK);
    assert_eq!(
        check_in_utc(&app, in_progress).await,
        format!("{} 05:00", day(30))
    );

    // A booking while the change back to UTC is under way: it has its lock on
    // `bookings`, and a trigger of this test holds it as it moves the first
    // booking, until the test lets an advisory lock go.
    let holding = hold_moves(&app).await;
    let to_utc = tokio::spawn(change_zone("UTC"));
    wait_until("the change to be under way", async || {
        app.count(LOCK_WAITS).await == 1
    })
    .await;
    let booking = tokio::spawn(
        client
            .post(format!("{base}/bookings"))
            .json(&h.stay(day(40), day(41)))
            .send(),
    );
    wait_until("the booking to wait for the change", async || {
        app.count(LOCK_WAITS).await == 2
    })
    .await;
    let_moves_go(holding).await;
    let changed = to_utc.await.expect("ran").expect("answered");
    assert_eq!(changed.status(), reqwest::StatusCode::OK);
    let booked = booking.await.expect("ran").expect("answered");
    assert_eq!(booked.status(), reqwest::StatusCode::CREATED);
    let booked: Value = booked.json().await.expect("a booking");
    assert_eq!(booked["check_in_at"], format!("{}T14:00:00Z", day(40)));
    let booked = uuid::Uuid::parse_str(&id(&booked)).expect("a uuid");
    assert_eq!(
        check_in_utc(&app, booked).await,
        format!("{} 14:00", day(40))
    );
    assert_eq!(
        check_in_utc(&app, in_progress).await,
        format!("{} 14:00", day(30))
    );
    assert_eq!(app.count("select count(*) from bookings").await, 2);
}

/// A stay asked for while the hotel's time zone changes is checked against
/// the "today" of the zone its instants are computed in. `POST /bookings`
/// reads the hotel's row with a share lock: a change under way (held here, as
/// it moves a booking, by a trigger of the test) makes it wait and then read
/// the new zone, and a change that comes later waits for the booking. Here a
/// stay that begins today in Pago Pago (UTC-11) asked for during a change to
/// Kiritimati (UTC+14, a day or two ahead) begins in the past.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stay_asked_for_during_a_time_zone_change_is_checked_against_the_new_zones_today() {
    let app = TestApp::new().await;
    let base = app.serve().await;
    let h = hotel(&app, "Pacific/Pago_Pago", 2, Some(48)).await;
    // A booking for the change to move (and the trigger to hold it at).
    book(&app, h.stay(day(30), day(31))).await;
    let holding = hold_moves(&app).await;
    let client = app.http_client();
    let change = tokio::spawn(
        client
            .patch(format!("{base}/hotels/{}", h.hotel))
            .json(&json!({ "timezone": "Pacific/Kiritimati" }))
            .send(),
    );
    wait_until("the change to be under way", async || {
        app.count(LOCK_WAITS).await == 1
    })
    .await;
    let pago_today = Utc::now()
        .with_timezone(&chrono_tz::Pacific::Pago_Pago)
        .date_naive();
    let booking = tokio::spawn(
        client
            .post(format!("{base}/bookings"))
            .json(&h.stay(pago_today, pago_today + Days::new(1)))
            .send(),
    );
    wait_until("the booking to wait for the change", async || {
        app.count(LOCK_WAITS).await == 2
    })
    .await;
    let_moves_go(holding).await;
    let changed = change.await.expect("ran").expect("answered");
    assert_eq!(changed.status(), reqwest::StatusCode::OK);
    let refused = booking.await.expect("ran").expect("answered");
    assert_eq!(refused.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let refused: Value = refused.json().await.expect("a problem document");
    assert_eq!(refused["code"], "date_in_past", "{refused}");
    assert_eq!(app.count("select count(*) from bookings").await, 1);
}

/// A change of a hotel's time zone waits only briefly for the bookings being
/// written (every booking queues behind it meanwhile; 0.1 s an attempt by
/// default, as here): when a transaction writing one outlasts its attempts,
/// the change answers `503` with `Retry-After` (well before the request's
/// timeout) and changes nothing, and that booking keeps the instants of
/// the zone it was written in, which stays the hotel's.
#[tokio::test]
async fn a_time_zone_change_that_cannot_have_its_lock_answers_503_and_changes_nothing() {
    let app = TestApp::new().await;
    let h = hotel(&app, "UTC", 1, Some(48)).await;
    let hotel_id = uuid::Uuid::parse_str(&h.hotel).expect("a uuid");
    let (writing, long) = booking_in_progress(&app, &h, day(30)).await;

    let asked = std::time::Instant::now();
    let refused = app
        .patch(
            &format!("/hotels/{}", h.hotel),
            json!({"timezone": "Asia/Tokyo", "name": "Renamed"}),
        )
        .await;
    refused.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
    // Its own short waits, not the request's timeout (30 s in the tests), ended it.
    assert!(asked.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(
        refused.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    writing.commit().await.expect("the booking commits");
    let (name, zone): (String, String) =
        sqlx::query_as("select name, timezone from hotels where id = $1")
            .bind(hotel_id)
            .fetch_one(&app.pool)
            .await
            .expect("the hotel");
    assert_eq!((name.as_str(), zone.as_str()), ("Hotel UTC", "UTC"));
    assert_eq!(check_in_utc(&app, long).await, format!("{} 14:00", day(30)));
}

/// A change of a hotel's time zone and the hotel's deletion at the same
/// moment do not deadlock: the change takes the hotel's row before it locks
/// `bookings`, as the deletion takes the row before its foreign keys read
/// `bookings`. Here the deletion has the hotel's row and waits (for a room
/// the test holds), the change waits for the deletion, and, once the room is
/// let go, the deletion ends and the change finds no hotel. (Deadlocks are
/// looked for only after 60 s here, so a cycle would leave both to time out,
/// unless the change's short waits for its locks broke it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_time_zone_change_and_the_hotels_deletion_do_not_deadlock() {
    let app = TestApp::new().await;
    let base = app.serve().await;
    app.set_deadlock_timeout("60s").await;
    let h = hotel(&app, "UTC", 1, Some(48)).await;
    let hotel_id = uuid::Uuid::parse_str(&h.hotel).expect("a uuid");
    let client = app.http_client();
    let mut holding = app.pool.begin().await.expect("a transaction");
    sqlx::query("select 1 from rooms where hotel_id = $1 for update")
        .bind(hotel_id)
        .execute(&mut *holding)
        .await
        .expect("the hotel's room");
    let deletion = tokio::spawn(client.delete(format!("{base}/hotels/{}", h.hotel)).send());
    wait_until("the deletion to wait for the room", async || {
        app.count(LOCK_WAITS).await == 1
    })
    .await;
    let change = tokio::spawn(
        client
            .patch(format!("{base}/hotels/{}", h.hotel))
            .json(&json!({"timezone": "Asia/Tokyo"}))
            .send(),
    );
    wait_until("the change to wait for the deletion", async || {
        app.count(LOCK_WAITS).await == 2
    })
    .await;
    holding.rollback().await.expect("let the room go");
    let deleted = deletion.await.expect("ran").expect("answered");
    assert_eq!(deleted.status(), reqwest::StatusCode::NO_CONTENT);
    let changed = change.await.expect("ran").expect("answered");
    assert_eq!(changed.status(), reqwest::StatusCode::NOT_FOUND);
    let changed: Value = changed.json().await.expect("a problem document");
    assert_eq!(changed["code"], "not_found");
    let left: i64 = sqlx::query_scalar("select count(*) from hotels where id = $1")
        .bind(hotel_id)
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(left, 0);
}
