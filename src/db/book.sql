-- POST /book in one round trip: resolve the room (in the default hotel) and the
-- user by name, check the caller $4 (it must still exist; a guest books only
-- for itself), refuse a night before today in the hotel's time zone, insert.
-- The exclusion constraint `bookings_no_overlap` decides conflicts; with
-- `on conflict do nothing` a taken night yields no inserted row instead of an
-- error, so the caller tells "taken" from "unknown" or "past" by what was found.
-- The default hotel's id comes first (a scalar subquery on the partial unique
-- index `hotels_one_default`), so that the room is found through the unique
-- index on (hotel_id, name) in every plan, generic or custom, with fresh or
-- stale statistics; `where h.is_default and r.name = $1` let the planner scan
-- `rooms` by name when its statistics were old.
-- wrk/bench.sh runs this very text under pgbench.
with room as (
    select r.id, h.timezone, h.check_in_time, h.check_out_time,
           (now() at time zone h.timezone)::date as today
    from rooms r
    join hotels h on h.id = r.hotel_id
    where r.hotel_id = (select id from hotels where is_default) and r.name = $1
),
booker as (
    select id from users where name = $2
),
caller as (
    select id, role from users where id = $4
),
inserted as (
    insert into bookings (room_id, user_id, stay, check_in_at, check_out_at)
    select room.id, booker.id, daterange($3::date, $3::date + 1),
           ($3::date + room.check_in_time) at time zone room.timezone,
           ($3::date + 1 + room.check_out_time) at time zone room.timezone
    from room, booker, caller
    where $3::date >= room.today and (caller.role <> 'guest' or caller.id = booker.id)
    on conflict do nothing
    returning id, status
)
select room.id as "room_id?", booker.id as "user_id?", room.today as "today?", inserted.id as "booking_id?",
       inserted.status as "status?: BookingStatus", caller.role as "caller_role?: Role"
from (values (1)) as one (x)
left join room on true
left join booker on true
left join caller on true
left join inserted on true
