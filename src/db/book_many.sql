-- POST /book, many nights in one statement and one round trip: the requests
-- that waited while every connection was busy (db::book::BookQueue). Job n
-- (the arrays' n-th elements) books night $3[n] of room $1[n] (in the default
-- hotel) for user $2[n], on behalf of the caller $4[n], who must still exist with
-- token version $7[n]; a guest books only for itself and holds fewer than $6 live
-- bookings. A night before today or more than $5 days after it, in the hotel's
-- time zone, is refused. One row per job answers what was found and booked.
-- Every lookup is by a unique index, one per job (correlated scalar subqueries,
-- so that no plan can turn them into scans whatever the statistics): the default
-- hotel by `hotels_one_default`, the room by (hotel_id, name), the users by name
-- and by id.
-- The exclusion constraint `bookings_no_overlap` decides conflicts; with
-- `on conflict do nothing` a taken night yields no inserted row instead of an
-- error. Of jobs for the same room and night only the first tries; rows are
-- inserted in (room, night) order, so two statements that want the same nights
-- wait for each other in one order and cannot deadlock.
-- It answers as book.sql would answer each job alone, in the order of the jobs.
-- A guest's bookings do not come here (the service books them one at a time
-- with the guest's row locked, so that its limit is counted exactly; this
-- statement's count is one snapshot for all its jobs), but the statement
-- keeps the guest's rules, so that it is right for any caller.
with hotel as (
    select h.id, h.timezone, h.check_in_time, h.check_out_time,
           (now() at time zone h.timezone)::date as today
    from hotels h
    where h.id = (select id from hotels where is_default)
),
job as materialized (
    select j.n, j.night, j.caller_id,
           (select r.id from rooms r
            where r.hotel_id = (select id from hotel) and r.name = j.room_name) as room_id,
           (select u.id from users u where u.name = j.user_name) as booker_id,
           (select u.role from users u
            where u.id = j.caller_id and u.token_version = j.token_version) as caller_role
    from unnest($1::text[], $2::text[], $3::date[], $4::uuid[], $7::integer[])
        with ordinality as j (room_name, user_name, night, caller_id, token_version, n)
),
checked as (
    select job.*,
           job.caller_role is not null
               and (job.caller_role <> 'guest'
                    or (select count(*) from live_bookings b
                        where b.user_id = job.caller_id
                          and b.status in ('confirmed', 'checked_in')) < $6) as within_limit
    from job
),
candidate as (
    select distinct on (c.room_id, c.night) c.n, c.room_id, c.booker_id, c.night
    from checked c, hotel
    where c.room_id is not null and c.booker_id is not null and c.within_limit
      and (c.caller_role <> 'guest' or c.caller_id = c.booker_id)
      and c.night >= hotel.today and c.night <= hotel.today + $5::integer
    order by c.room_id, c.night, c.n
),
inserted as (
    insert into bookings (room_id, user_id, stay, check_in_at, check_out_at)
    select c.room_id, c.booker_id, daterange(c.night, c.night + 1),
           (c.night + hotel.check_in_time) at time zone hotel.timezone,
           (c.night + 1 + hotel.check_out_time) at time zone hotel.timezone
    from candidate c, hotel
    order by c.room_id, c.night
    on conflict do nothing
    returning id, status, room_id, stay
)
select c.room_id as "room_id?", c.booker_id as "user_id?", hotel.today as "today?",
       i.id as "booking_id?", i.status as "status?: BookingStatus",
       c.caller_role as "caller_role?: Role", c.within_limit as "within_limit?"
from checked c
left join hotel on true
left join candidate k on k.n = c.n
left join inserted i on i.room_id = k.room_id and i.stay = daterange(k.night, k.night + 1)
order by c.n
