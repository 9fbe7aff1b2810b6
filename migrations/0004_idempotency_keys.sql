-- Idempotency-Key records (IETF draft): the answer to the first request with
-- a key, kept 24 hours, scoped to the caller. A record is written in the same
-- transaction as the work it guards.
create table idempotency_keys (
    caller uuid not null,
    key text not null,
    -- SHA-256 of method, path and body of the first request.
    fingerprint bytea not null,
    status smallint not null,
    location text,
    body bytea not null,
    created_at timestamptz not null default now(),
    primary key (caller, key)
);

create index idempotency_keys_created on idempotency_keys (created_at);
