-- Tokens carry the version of their user's credentials; a password or role
-- change bumps it, so that every token issued before stops working.
alter table users add column token_version integer not null default 0;
