-- POST /book in one round trip: resolve the room (in the default hotel) and the
-- user by name, check the caller $4 (it must still exist with token version $7;
-- a guest books only for itself and holds fewer than $6 live bookings), refuse a
-- night before today or more than $5 days after it in the hotel's time zone, insert.
-- Every lookup is by a unique index: the default hotel by `hotels_one_default`
-- (a scalar subquery, so the plan never depends on table statistics), the room
-- by (hotel_id, name), the users by name and id.
-- The exclusion constraint `bookings_no_overlap` decides conflicts; with
-- `on conflict do nothing` a taken night yields no inserted row instead of an
-- error, so the caller tells "taken" from "unknown" or "past" by what was found.
-- wrk/bench.sh runs this very text under pgbench.
with hotel as (
    select h.id, h.timezone, h.check_in_time, h.check_out_time,
           (now() at time zone h.timezone)::date as today
    from hotels h
    where h.id = (select id from hotels where is_default)
),
room as (
    select r.id from rooms r where r.hotel_id = (select id from hotel) and r.name = $1
),
booker as (
    select id from users where name = $2
),
caller as (
    select u.id, u.role,
           u.role <> 'guest'
               or (select count(*) from live_bookings b
                   where b.user_id = u.id and b.status in ('confirmed', 'checked_in')) < $6 as within_limit
    from users u
    where u.id = $4 and u.token_version = $7
),
inserted as (
    insert into bookings (room_id, user_id, stay, check_in_at, check_out_at)
    select room.id, booker.id, daterange($3::date, $3::date + 1),
           ($3::date + hotel.check_in_time) at time zone hotel.timezone,
           ($3::date + 1 + hotel.check_out_time) at time zone hotel.timezone
    from hotel, room, booker, caller
    where $3::date >= hotel.today and $3::date <= hotel.today + $5::integer
      and (caller.role <> 'guest' or caller.id = booker.id) and caller.within_limit
    on conflict do nothing
    returning id, status
)
select room.id as "room_id?", booker.id as "user_id?", hotel.today as "today?", inserted.id as "booking_id?",
       inserted.status as "status?: BookingStatus", caller.role as "caller_role?: Role",
       caller.within_limit as "within_limit?"
from (values (1)) as one (x)
left join hotel on true
left join room on true
left join booker on true
left join caller on true
left join inserted on true
