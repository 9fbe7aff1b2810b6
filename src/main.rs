//! The `room-booking` binary: read the configuration, set up logging, hand
//! over to the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use room_booking::config::{Cli, Command};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: every request allocates (hyper's
/// buffers, headers, the JSON bodies, the log line).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match EnvFilter::try_new(&cli.config.log_filter) {
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
    if cli.config.log_format == "json" {
        logs.json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        logs.init();
    }
    let command = cli.command.unwrap_or(Command::Serve(Default::default()));
    match room_booking::run(cli.config, command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "room-booking stopped");
            eprintln!("room-booking: {error}");
            ExitCode::FAILURE
        }
    }
}
