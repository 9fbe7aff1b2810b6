-- Bookings that hold their room: the one definition of "live" outside the
-- exclusion constraint (which keeps its own predicate, the same one).
create view live_bookings as
select * from bookings where status not in ('cancelled', 'no_show');

-- A time zone PostgreSQL cannot resolve is refused when a hotel is created
-- or changed: every local check-in/check-out computation needs it.
create function is_known_timezone(zone text) returns boolean
language plpgsql immutable strict as $$
begin
    perform now() at time zone zone;
    return true;
exception when invalid_parameter_value then
    return false;
end
$$;

alter table hotels add constraint hotels_timezone_known check (is_known_timezone(timezone));

-- Allocation walks a room type's rooms in name order and stops at the first
-- free ones, whatever the size of the hotel.
create index rooms_room_type_name on rooms (room_type_id, name);
drop index rooms_room_type;
