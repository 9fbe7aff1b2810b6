//! The `room-booking` binary: read the configuration, set up logging, hand
//! over to the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use room_booking::config::Cli;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: every request allocates (hyper's
/// buffers, headers, the JSON bodies, the log line).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let (config, command) = match Cli::parse_args(std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(error) => error.exit(),
    };
    let filter = config
        .log_filter
        .as_deref()
        .unwrap_or(command.default_log_filter());
    let filter = match EnvFilter::try_new(filter) {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("room-booking: invalid log filter (RUST_LOG / --log): {error}");
            return ExitCode::FAILURE;
        }
    };
    // Logs go to stderr, so that `room-booking token` prints only the token on
    // stdout; colours only on a terminal.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if config.log_format == "json" {
        logs.json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        logs.init();
    }
    match room_booking::run(config, command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "room-booking stopped");
            eprintln!("room-booking: {error}");
            ExitCode::FAILURE
        }
    }
}
