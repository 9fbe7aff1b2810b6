-- The reference for the benchmark's targets: the smallest statement that does
-- a seed booking (SPEC 4.1) correctly. $1 room name (in the default hotel),
-- $2 user name, $3 the night. Room and user are found by their unique indexes
-- (the default hotel through `hotels_one_default`, then the room through
-- `(hotel_id, name)`), the night is inserted with the hotel's local check-in
-- and check-out instants, and `on conflict do nothing` lets the exclusion
-- constraint `bookings_no_overlap` turn a taken night into no row.
-- wrk/bench.sh runs it under pgbench in the same run as the service; it does
-- not change with the service's own SQL, so a slower handler statement cannot
-- improve its own ratio.
insert into bookings (room_id, user_id, stay, check_in_at, check_out_at)
select r.id, u.id, daterange($3::date, $3::date + 1),
       ($3::date + h.check_in_time) at time zone h.timezone,
       ($3::date + 1 + h.check_out_time) at time zone h.timezone
from hotels h
join rooms r on r.hotel_id = h.id and r.name = $1
join users u on u.name = $2
where h.id = (select id from hotels where is_default)
on conflict do nothing
returning id;
