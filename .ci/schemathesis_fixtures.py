"""Real resources for the schemathesis run, and dictionaries of their ids.

Usage: schemathesis_fixtures.py API TOKEN DIR

Creates, through the API, one hotel (in UTC) with a room type, rooms, a rate
plan and a year of rates, two guests, and bookings of the first guest, two
of them from today, so that they can be checked in, checked out or marked
as no-shows. Then writes one libFuzzer-style dictionary per kind of id into
DIR (`hotel.dict`, `room_type.dict`, `rate_plan.dict`, `room.dict`,
`user.dict`, `booking.dict`), and one of today and the next 14 nights
(`night.dict`: within the rates and the booking horizon).
`.ci/schemathesis-ids.toml` binds path, query and body fields to them, so
that part of the generated requests reach real rows instead of answering
404 or 422 for an unknown id or a date long past. The bookings keep the
hotel, its room type, rooms, rate plan and first guest from being deleted
(`409 in_use`) until they are cancelled.
Exits non-zero, with the answer, on any unexpected status.
"""

import datetime
import json
import sys
import urllib.error
import urllib.request


def call(api, token, method, path, body=None, expect=(200, 201)):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(api + path, data=data, method=method)
    request.add_header("authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    if status not in expect:
        sys.exit(f"{method} {path}: {status} {text}")
    return json.loads(text) if text else None


def main():
    api, token, out = sys.argv[1:4]
    # The hotel is in UTC, so that its today is the one computed here (a stay
    # from today is refused once UTC's day has changed: those few are skipped).
    today = datetime.datetime.now(datetime.timezone.utc).date()

    def day(offset):
        return (today + datetime.timedelta(days=offset)).isoformat()

    hotel = call(api, token, "POST", "/hotels", {
        "name": "Fixture Hotel", "city": "Lyon", "timezone": "UTC",
    })["id"]
    room_type = call(api, token, "POST", f"/hotels/{hotel}/room-types", {
        "name": "Double", "capacity": 2,
    })["id"]
    rooms = [
        call(api, token, "POST", "/rooms", {
            "name": f"F{n}", "hotel_id": hotel, "room_type_id": room_type,
        })["id"]
        for n in range(1, 5)
    ]
    rate_plan = call(api, token, "POST", f"/hotels/{hotel}/rate-plans", {
        "name": "Flexible", "free_cancellation_hours": 48,
    })["id"]
    call(api, token, "PUT", f"/hotels/{hotel}/rates", {
        "room_type_id": room_type, "rate_plan_id": rate_plan,
        "from": day(0), "to": day(365), "price": "100.00", "currency": "EUR",
    })
    users = [call(api, token, "POST", "/users", {"name": f"fixture-guest-{n}"})["id"] for n in (1, 2)]
    bookings = []
    for start, nights in ((0, 1), (0, 2), (30, 3), (45, 1), (60, 5)):
        booking = call(api, token, "POST", "/bookings", {
            "hotel_id": hotel, "room_type_id": room_type, "rate_plan_id": rate_plan,
            "check_in": day(start), "check_out": day(start + nights), "guests": 2, "user_id": users[0],
        }, expect=(201, 422) if start == 0 else (201,))
        if "id" in booking:
            bookings.append(booking["id"])

    for name, values in (
        ("hotel", [hotel]),
        ("room_type", [room_type]),
        ("rate_plan", [rate_plan]),
        ("room", rooms),
        ("user", users),
        ("booking", bookings),
        ("night", [day(offset) for offset in range(0, 15)]),
    ):
        with open(f"{out}/{name}.dict", "w", encoding="utf-8") as file:
            file.writelines(f'"{value}"\n' for value in values)
    print(f"fixtures: hotel {hotel}, {len(rooms)} rooms, {len(users)} guests, {len(bookings)} bookings")


if __name__ == "__main__":
    main()
