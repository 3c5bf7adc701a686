//! What every `main` does after parsing its flags: refuse a bad
//! configuration before any I/O, run the service under signal-driven
//! shutdown, and turn the outcome into an exit code.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::exit::exit_code;
use crate::shutdown::Shutdown;

/// Runs `service(config, shutdown)` if `config` is valid.
///
/// A configuration error ([`crate::ConfigError`]) exits 64 at once, a
/// request for what is not implemented ([`crate::Unimplemented`]) 69; the first SIGTERM/SIGINT cancels
/// the token; a second signal or `grace` after the first ends the wait.
pub async fn drive<C, E, F, Fut>(config: Result<C, E>, grace: Duration, service: F) -> ExitCode
where
    E: Into<anyhow::Error>,
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config = match config {
        Ok(config) => config,
        Err(err) => return exit_code(Err(err.into())),
    };
    let shutdown = match Shutdown::on_signals(grace) {
        Ok(shutdown) => shutdown,
        Err(err) => {
            return exit_code(Err(
                anyhow::Error::new(err).context("installing signal handlers")
            ));
        }
    };
    exit_code(shutdown.run(service(config, shutdown.token())).await)
}
