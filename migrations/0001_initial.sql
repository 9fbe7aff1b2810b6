-- The core model: hotels, room types, rooms, users and bookings.
-- A booking is a half-open range of nights; the exclusion constraint
-- `bookings_no_overlap` is what guarantees that no room is sold twice.

create extension if not exists btree_gist;

create table hotels (
    id uuid primary key default gen_random_uuid(),
    name text not null,
    city text not null default '',
    -- IANA zone name, validated by the application (chrono-tz).
    timezone text not null,
    check_in_time time not null default '14:00',
    check_out_time time not null default '11:00',
    -- Exactly one hotel is the default one, used by the seed-compatible calls.
    is_default boolean not null default false,
    created_at timestamptz not null default now()
);

create unique index hotels_one_default on hotels (is_default) where is_default;

create table room_types (
    id uuid primary key default gen_random_uuid(),
    hotel_id uuid not null references hotels (id),
    name text not null,
    capacity integer not null default 2 check (capacity > 0),
    is_default boolean not null default false,
    created_at timestamptz not null default now(),
    unique (hotel_id, name),
    -- Lets rooms reference (room type, hotel) so a room's type is always of its hotel.
    unique (id, hotel_id)
);

create unique index room_types_one_default_per_hotel on room_types (hotel_id) where is_default;

create table rooms (
    id uuid primary key default gen_random_uuid(),
    hotel_id uuid not null references hotels (id),
    room_type_id uuid not null,
    name text not null,
    created_at timestamptz not null default now(),
    unique (hotel_id, name),
    foreign key (room_type_id, hotel_id) references room_types (id, hotel_id)
);

create index rooms_room_type on rooms (room_type_id);

create type user_role as enum ('guest', 'staff', 'admin');

create table users (
    id uuid primary key default gen_random_uuid(),
    name text not null unique,
    email text,
    role user_role not null default 'guest',
    -- Argon2id PHC string; never leaves the database through the API.
    password_hash text,
    created_at timestamptz not null default now()
);

create type booking_status as enum ('confirmed', 'checked_in', 'checked_out', 'cancelled', 'no_show');

create table bookings (
    id uuid primary key default gen_random_uuid(),
    room_id uuid not null references rooms (id),
    user_id uuid not null references users (id),
    -- Nights [check_in, check_out): the check-out date is not a night of the stay.
    stay daterange not null check (not isempty(stay) and lower_inc(stay) and not upper_inc(stay)
                                    and not lower_inf(stay) and not upper_inf(stay)),
    guests integer not null default 1 check (guests > 0),
    status booking_status not null default 'confirmed',
    -- The hotel's local check-in/check-out times on those dates, in UTC.
    check_in_at timestamptz not null,
    check_out_at timestamptz not null,
    created_at timestamptz not null default now(),
    constraint bookings_no_overlap exclude using gist (room_id with =, stay with &&)
        where (status not in ('cancelled', 'no_show'))
);

create index bookings_user on bookings (user_id);

insert into hotels (name, city, timezone, is_default) values ('Default hotel', '', 'UTC', true);

insert into room_types (hotel_id, name, capacity, is_default)
select id, 'Standard', 2, true from hotels where is_default;
