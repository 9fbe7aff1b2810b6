//! room-booking: a REST service for booking hotel rooms that never sells one
//! room twice for the same night.
//!
//! The layout, from the outside in:
//! - [`startup`]: configuration in, database up, serve, stop in order;
//! - [`routes`]: the app: the routers of the resource modules, merged, with
//!   the layers every request goes through;
//! - [`handlers`]: HTTP in, HTTP out, no SQL, a module per resource, each
//!   declaring its routes with their OpenAPI operations ([`openapi`] adds
//!   the document's info and components);
//! - [`idempotency`]: `Idempotency-Key`, its runner, store and pruning;
//! - [`db`]: all SQL, checked against the schema at compile time; answers
//!   domain types and outcome enums, knows nothing of HTTP;
//! - [`domain`]: what hotels, rooms, stays, prices and bookings are, and
//!   their rules;
//! - [`error`]: the one error type and its problem documents;
//! - [`auth`], [`extract`], [`state`], [`metrics`], [`config`];
//! - [`managed_db`]: the PostgreSQL the service runs itself when
//!   `DATABASE_URL` is unset.
//!
//! The guarantee itself lives in the schema: the exclusion constraint
//! `bookings_no_overlap` (see `migrations/`).

pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod idempotency;
pub mod managed_db;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;

pub use crate::routes::app;
pub use crate::startup::{MANAGED_DATABASE, StartupError, run};
pub use crate::state::{AppState, Limits};
