-- The search workload's data set: 100 hotels in 10 cities, 3 room types each
-- (capacity 1, 2 and 4), 10,000 rooms, 2 rate plans, a daily rate for every
-- type, plan and night over 400 days, 1,000 users and 1,000,000 bookings
-- (100 per room, a tenth of them cancelled). Dates count from today, so the
-- set never goes stale. Loaded by wrk/bench.sh with psql; takes a few minutes.
\set ON_ERROR_STOP on

insert into hotels (name, city, timezone)
select 'Search hotel ' || h, 'City ' || (h % 10), (array['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Tokyo'])[1 + h % 4]
from generate_series(0, 99) as h;

insert into room_types (hotel_id, name, capacity)
select h.id, t.name, t.capacity
from hotels h
cross join (values ('Single', 1), ('Twin', 2), ('Family', 4)) as t (name, capacity)
where h.name like 'Search hotel %';

insert into rooms (hotel_id, room_type_id, name)
select rt.hotel_id, rt.id, rt.name || '-' || n
from room_types rt
join hotels h on h.id = rt.hotel_id and h.name like 'Search hotel %'
cross join generate_series(1, 33) as n
where not rt.is_default;

-- 100 rooms per hotel: one more Family room each.
insert into rooms (hotel_id, room_type_id, name)
select rt.hotel_id, rt.id, 'Family-34'
from room_types rt join hotels h on h.id = rt.hotel_id and h.name like 'Search hotel %'
where rt.name = 'Family';

insert into rate_plans (hotel_id, name, free_cancellation_hours)
select h.id, p.name, p.hours
from hotels h cross join (values ('Flexible', 48), ('Saver', null)) as p (name, hours)
where h.name like 'Search hotel %';

insert into daily_rates (room_type_id, rate_plan_id, date, price, currency)
select rt.id, rp.id, current_date - 30 + d,
       (rt.capacity * 40 + (abs(hashtext(rt.id::text || d)) % 60) + case rp.name when 'Saver' then 0 else 20 end)::numeric(12, 2),
       'EUR'
from room_types rt
join rate_plans rp on rp.hotel_id = rt.hotel_id
join hotels h on h.id = rt.hotel_id and h.name like 'Search hotel %'
cross join generate_series(0, 399) as d
where not rt.is_default;

insert into users (name) select 'search-user-' || u from generate_series(0, 999) as u;

-- Per room, 100 stays of 1 to 3 nights, one every 4 days from 30 days ago.
insert into bookings (room_id, user_id, stay, guests, status, check_in_at, check_out_at)
select r.id, u.id, daterange(s.check_in, s.check_in + s.nights), 1,
       case when abs(hashtext(r.id::text || i)) % 10 = 0 then 'cancelled' else 'confirmed' end::booking_status,
       s.check_in::timestamp at time zone 'UTC', (s.check_in + s.nights)::timestamp at time zone 'UTC'
from rooms r
join hotels h on h.id = r.hotel_id and h.name like 'Search hotel %'
cross join generate_series(0, 99) as i
cross join lateral (select current_date - 30 + 4 * i as check_in, 1 + abs(hashtext(r.id::text || i)) % 3 as nights) as s
join users u on u.name = 'search-user-' || (abs(hashtext(r.id::text || i || 'u')) % 1000);

-- Vacuum as well as analyze: a fresh bulk load has no visibility map yet, so every
-- index-only probe of bookings_no_overlap would also visit the heap; autovacuum
-- would get there on its own in a while, this just does not wait for it.
vacuum (analyze);
