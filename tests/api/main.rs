//! The integration tests: one binary, one PostgreSQL per run (`helpers`),
//! a fresh migrated database per test, the real Router driven over HTTP.
//! A module per area of the service.

mod helpers;

mod auth;
mod book;
mod bookings;
mod cli;
mod contract;
mod faults;
mod hotels;
mod idempotency;
mod input;
mod limits;
mod managed_db;
mod openapi;
mod rooms;
mod users;
