-- Rate plans, daily rates, priced stays and their invoices.

-- Deleting a hotel takes its inventory along (room types, rooms, rate plans,
-- rates), but never what a booking refers to: bookings keep their foreign keys
-- without cascade, so such a delete is refused as a whole.
alter table room_types drop constraint room_types_hotel_id_fkey,
    add constraint room_types_hotel_id_fkey foreign key (hotel_id) references hotels (id) on delete cascade;
alter table rooms drop constraint rooms_hotel_id_fkey,
    add constraint rooms_hotel_id_fkey foreign key (hotel_id) references hotels (id) on delete cascade;

create table rate_plans (
    id uuid primary key default gen_random_uuid(),
    hotel_id uuid not null references hotels (id) on delete cascade,
    name text not null,
    -- Free cancellation until this many hours before check-in; null: non-refundable.
    free_cancellation_hours integer check (free_cancellation_hours >= 0),
    created_at timestamptz not null default now(),
    unique (hotel_id, name)
);

create table daily_rates (
    room_type_id uuid not null references room_types (id) on delete cascade,
    rate_plan_id uuid not null references rate_plans (id) on delete cascade,
    date date not null,
    price numeric(12, 2) not null check (price >= 0),
    currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
    primary key (room_type_id, rate_plan_id, date)
);

alter table bookings
    add column rate_plan_id uuid references rate_plans (id),
    add column total_price numeric(12, 2),
    add column currency char(3),
    add constraint bookings_priced_together
        check ((rate_plan_id is null) = (total_price is null) and (total_price is null) = (currency is null));

create index bookings_rate_plan on bookings (rate_plan_id);

create type invoice_status as enum ('open', 'void', 'cancellation_fee');

create table invoices (
    id uuid primary key default gen_random_uuid(),
    booking_id uuid not null unique references bookings (id),
    status invoice_status not null default 'open',
    currency char(3) not null,
    total numeric(12, 2) not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table invoice_lines (
    invoice_id uuid not null references invoices (id) on delete cascade,
    position integer not null,
    date date not null,
    description text not null,
    amount numeric(12, 2) not null,
    primary key (invoice_id, position)
);

-- A booking as the API shows it.
create view booking_details as
select b.id, r.hotel_id, b.room_id, r.name as room_name, r.room_type_id, b.user_id, u.name as user_name,
       b.rate_plan_id, lower(b.stay) as check_in, upper(b.stay) as check_out, b.check_in_at, b.check_out_at,
       h.timezone, b.guests, b.status, b.total_price, b.currency, b.created_at
from bookings b
join rooms r on r.id = b.room_id
join users u on u.id = b.user_id
join hotels h on h.id = r.hotel_id;
