//! `vaultlet` binary: parses flags, installs tracing, runs `serve`, `attest`
//! or `demo`.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use vaultlet::config::{Config, LogFormat, ServeArgs};

/// Every freed block is wiped: buffers of libraries we do not own (HTTP,
/// TLS, JSON, the Azure SDK) may have held plaintext (DESIGN §6).
#[global_allocator]
static ALLOCATOR: vaultlet::mount::sys::ZeroOnFree = vaultlet::mount::sys::ZeroOnFree;

/// vaultlet: a CSI node daemon that delivers Azure Key Vault secrets into pod
/// volumes, in memory only.
#[derive(Debug, Parser)]
#[command(name = "vaultlet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the CSI node API on a unix socket (the DaemonSet's main process).
    Serve(Box<ServeArgs>),
    /// SEV-SNP attestation tools: print this node's report, verify evidence.
    #[command(subcommand)]
    Attest(vaultlet::attest::cli::AttestCommand),
    /// Run the whole job locally: a Key Vault emulator, the daemon on a temp
    /// socket, and a simulated kubelet publishing and unpublishing one pod.
    #[cfg(feature = "demo")]
    Demo {
        /// Delivery backend for the demo volume.
        #[arg(long, value_enum, default_value = "tmpfs")]
        backend: vaultlet::config::BackendArg,
    },
}

fn init_tracing(format: LogFormat) {
    // fuser warns when its session ends after vaultlet already unmounted the
    // namespace mount (always the case: vaultlet unmounts first, then the
    // session's own unmount finds nothing); that line is noise by default.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,fuser=warn,fuser::session=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::try_from(args)?;
    init_tracing(config.log_format);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(vaultlet::server::serve(config, shutdown_signal()))?;
    Ok(())
}

fn main() -> ExitCode {
    // Before anything holds a secret: no core dumps, no ptrace by others.
    let hardened = vaultlet::mount::sys::harden_process();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Attest(cmd) => {
            let code = vaultlet::attest::cli::run(
                cmd,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            return ExitCode::from(code);
        }
        #[cfg(feature = "demo")]
        Command::Demo { backend } => {
            init_tracing(LogFormat::Text);
            vaultlet::demo::run(backend.into())
        }
    };
    if let Err(e) = hardened {
        tracing::warn!(error = %e, "could not make the process undumpable");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vaultlet: {e:#}");
            ExitCode::FAILURE
        }
    }
}
