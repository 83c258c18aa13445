//! `keyvault-emulator`: runs the Key Vault + Entra ID emulator until SIGTERM or SIGINT.
//!
//! Writes `DIR/ca.pem` atomically, then prints exactly `listening on https://127.0.0.1:N` on
//! stdout. Logs go to stderr (`RUST_LOG`, default `info`).

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use keyvault_emulator::{Emulator, EmulatorConfig, Seed};

/// Azure Key Vault (secrets) and Entra ID token endpoint emulator over TLS, for tests.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "KEYVAULT_EMULATOR_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory that receives the generated CA as `ca.pem` (created if missing).
    #[arg(long, env = "KEYVAULT_EMULATOR_TLS_DIR")]
    tls_dir: PathBuf,
    /// JSON seed file: clients, vaults and secrets (schema in the crate README).
    #[arg(long, env = "KEYVAULT_EMULATOR_SEED")]
    seed: Option<PathBuf>,
}

fn read_seed(path: &PathBuf) -> anyhow::Result<Seed> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading seed file {}", path.display()))?;
    Seed::from_json(&bytes).with_context(|| format!("parsing seed file {}", path.display()))
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        res = tokio::signal::ctrl_c() => {
            res.context("waiting for SIGINT")?;
            tracing::info!("SIGINT received");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let seed = cli.seed.as_ref().map(read_seed).transpose()?;
    let emulator = Emulator::start(EmulatorConfig {
        listen: cli.listen,
        tls_dir: Some(cli.tls_dir.clone()),
        seed,
    })
    .await
    .context("starting the emulator")?;

    // ca.pem is in place: Emulator::start wrote it before returning.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on https://{}", emulator.addr()).context("writing to stdout")?;
    stdout.flush().context("flushing stdout")?;
    drop(stdout);

    wait_for_signal().await?;
    emulator.shutdown().await;
    Ok(())
}
