-- GET /hotels with dates: hotels where the stay $2 does not begin before
-- today in the hotel's time zone, with a room type that holds $3 guests, has a
-- room free for every night of the stay and a rate plan priced for every
-- night; each with its cheapest total. $1 filters by city; $4/$5 paginate.
-- "Free" probes the exclusion constraint's GiST index (room_id, stay) per room.
-- wrk/bench.sh runs this very text under pgbench.
with open_types as materialized (
    -- Room types that hold the guests and have a room free for the whole stay.
    select rt.id, rt.hotel_id
    from room_types rt
    join hotels h on h.id = rt.hotel_id
    where rt.capacity >= $3 and ($1::text is null or h.city = $1)
      and lower($2::daterange) >= (now() at time zone h.timezone)::date
      and exists (select 1 from rooms r
                  where r.room_type_id = rt.id
                    and not exists (select 1 from live_bookings b
                                    where b.room_id = r.id and b.stay && $2::daterange))
),
offers as (
    -- Per open room type and rate plan: the stay's total, if every night is
    -- priced and the total fits a booking (numeric(12,2), as POST /bookings checks).
    select t.hotel_id, sum(d.price) as total, min(d.currency) as currency
    from open_types t
    join daily_rates d on d.room_type_id = t.id and d.date >= lower($2::daterange) and d.date < upper($2::daterange)
    group by t.hotel_id, t.id, d.rate_plan_id
    having count(*) = upper($2::daterange) - lower($2::daterange) and count(distinct d.currency) = 1
       and sum(d.price) <= 9999999999.99
),
cheapest as (
    select distinct on (hotel_id) hotel_id, total, currency from offers order by hotel_id, total
)
select h.id, h.name, h.city, h.timezone, h.check_in_time, h.check_out_time,
       c.total as "cheapest_total!", c.currency as "currency!", count(*) over () as "total_count!"
from cheapest c join hotels h on h.id = c.hotel_id
order by c.total, h.name, h.id
limit $4 offset $5
