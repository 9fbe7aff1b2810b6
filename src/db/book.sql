-- POST /book in one round trip: resolve the room (in the default hotel) and the
-- user by name, check the caller $4 (it must still exist with token version $7;
-- a guest books only for itself and holds fewer than $6 live bookings), refuse a
-- night before today or more than $5 days after it in the hotel's time zone, insert.
-- Every lookup is by a unique index, each a scalar subquery of the one row
-- `found` (so that no plan depends on table statistics, and the plan has few
-- nodes to set up on each execution): the default hotel by
-- `hotels_one_default`, the room by (hotel_id, name), the users by name and id.
-- `found` has its row even without a default hotel (the room is then unknown).
-- The exclusion constraint `bookings_no_overlap` decides conflicts; with
-- `on conflict do nothing` a taken night yields no inserted row instead of an
-- error, so the caller tells "taken" from "unknown" or "past" by what was found.
-- wrk/bench.sh runs this very text under pgbench.
with found as materialized (
    select h.timezone, h.check_in_time, h.check_out_time,
           (now() at time zone h.timezone)::date as today,
           (select r.id from rooms r where r.hotel_id = h.id and r.name = $1) as room_id,
           (select u.id from users u where u.name = $2) as booker_id,
           (select u.role from users u where u.id = $4 and u.token_version = $7) as caller_role
    from (values (1)) as one (x)
    left join hotels h on h.id = (select id from hotels where is_default)
),
checked as materialized (
    select f.*,
           f.caller_role <> 'guest'
               or (select count(*) from live_bookings b
                   where b.user_id = $4 and b.status in ('confirmed', 'checked_in')) < $6 as within_limit
    from found f
),
inserted as (
    insert into bookings (room_id, user_id, stay, check_in_at, check_out_at)
    select c.room_id, c.booker_id, daterange($3::date, $3::date + 1),
           ($3::date + c.check_in_time) at time zone c.timezone,
           ($3::date + 1 + c.check_out_time) at time zone c.timezone
    from checked c
    where c.room_id is not null and c.booker_id is not null and c.caller_role is not null
      and c.within_limit
      and $3::date >= c.today and $3::date <= c.today + $5::integer
      and (c.caller_role <> 'guest' or c.booker_id = $4)
    on conflict do nothing
    returning id, status
)
select c.room_id as "room_id?", c.booker_id as "user_id?", c.today as "today?", i.id as "booking_id?",
       i.status as "status?: BookingStatus", c.caller_role as "caller_role?: Role",
       c.within_limit as "within_limit?"
from checked c
left join inserted i on true
