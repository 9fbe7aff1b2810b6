-- The large inventory of wrk/bench.sh (step "large"): 100 hotels ("Large hotel
-- 0".."Large hotel 99", city "Large", UTC), each with a default room type, one
-- rate plan with a rate for each of the next 400 nights, and 1,000 rooms named
-- ROOM0..ROOM999 like the seed's rooms, so that a room name alone matches one
-- room in every hotel: 100,000 rooms in all. Also 100,000 users
-- ("large-user-0"..) and 100,000 bookings (one per room, 1 to 3 nights within
-- the next year). Dates count from today. Loaded by wrk/bench.sh with psql,
-- timed; it analyzes nothing, so that the plans can be checked with the
-- statistics as stale as a bulk load leaves them, and again after ANALYZE.
\set ON_ERROR_STOP on

insert into hotels (name, city, timezone)
select 'Large hotel ' || h, 'Large', 'UTC' from generate_series(0, 99) as h;

insert into room_types (hotel_id, name, capacity, is_default)
select id, 'Standard', 2, true from hotels where name like 'Large hotel %';

insert into rate_plans (hotel_id, name, free_cancellation_hours)
select id, 'Flexible', 48 from hotels where name like 'Large hotel %';

insert into daily_rates (room_type_id, rate_plan_id, date, price, currency)
select rt.id, rp.id, current_date + d, (80 + d % 40)::numeric(12, 2), 'EUR'
from hotels h
join room_types rt on rt.hotel_id = h.id and rt.is_default
join rate_plans rp on rp.hotel_id = h.id
cross join generate_series(0, 399) as d
where h.name like 'Large hotel %';

insert into rooms (hotel_id, room_type_id, name)
select h.id, rt.id, 'ROOM' || n
from hotels h
join room_types rt on rt.hotel_id = h.id and rt.is_default
cross join generate_series(0, 999) as n
where h.name like 'Large hotel %';

insert into users (name) select 'large-user-' || u from generate_series(0, 99999) as u;

insert into bookings (room_id, user_id, stay, check_in_at, check_out_at)
select r.id, u.id, daterange(s.check_in, s.check_in + s.nights),
       (s.check_in + time '14:00') at time zone 'UTC', (s.check_in + s.nights + time '11:00') at time zone 'UTC'
from rooms r
join hotels h on h.id = r.hotel_id and h.name like 'Large hotel %'
cross join lateral (select current_date + 1 + abs(hashtext(r.id::text)) % 365 as check_in,
                           1 + abs(hashtext(r.id::text || 'n')) % 3 as nights) as s
join users u on u.name = 'large-user-' || abs(hashtext(r.id::text || 'u')) % 100000;
