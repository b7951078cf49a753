//! The `portcullis` command: parses arguments, sets up logging and the crypto
//! provider, and runs a subcommand. It keeps no logic a test would want to call.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use portcullis::config::{self, Config, LogFormat};

/// mimalloc rather than the C library's allocator: a request allocates (and
/// frees) a few kilobytes in a dozen pieces, some too large for glibc's
/// per-thread cache (hyper's header arrays at `max_headers(128)`), which then
/// took the locked slow path every time (issue 22's profile). Chosen here, by
/// the program, not by the library.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An authenticating reverse proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: the public listener and the admin listener.
    Run {
        /// The config file (TOML, or YAML by its extension).
        #[arg(long, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
    },
    /// Load and validate a config; print it with secrets redacted, or every problem.
    Check {
        #[arg(long, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
    },
    /// A first run with no account anywhere: a development provider, a demo app
    /// and the proxy in front, on loopback.
    Demo {
        /// The proxy's port on 127.0.0.1.
        #[arg(long, default_value_t = 4180)]
        port: u16,
    },
    /// Which rule decides a request, for an identity (claims) or none, and why.
    /// Exit 0 when it would be allowed, 2 when refused, 1 on errors.
    Explain {
        #[arg(long, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
        /// A JSON file with the claims of a token (its payload), for the identity.
        #[arg(long)]
        claims: Option<PathBuf>,
        /// The client's address, for `source_ips` (not judged without it).
        #[arg(long)]
        client: Option<std::net::IpAddr>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The HTTP method, such as GET.
        method: String,
        /// `https://host/path?query`, or `/path?query` for the host of server.public_url.
        url: String,
    },
    /// Print the version and build information.
    Version,
}

fn main() -> ExitCode {
    // Pin one process-wide provider before any TLS or JWT code runs (STACK.md trap 1).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { config } => Ok(check(&config)),
        Command::Demo { port } => demo(port),
        Command::Explain {
            config,
            claims,
            client,
            json,
            method,
            url,
        } => explain(&config, claims.as_deref(), client, json, &method, &url),
        Command::Version => {
            println!("{}", version_text());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("portcullis: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn version_text() -> String {
    format!(
        "portcullis {} ({} {}, rustls aws-lc-rs)",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
    )
}

/// `portcullis check`: exit 0 with the effective config, or 1 with every problem.
fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            print!("{}", config::render(&config));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}: invalid configuration", path.display());
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// `portcullis explain`: exit 0 when the request would be allowed, 2 when refused,
/// 1 when the config, claims or arguments are unusable (SPEC §1).
fn explain(
    path: &std::path::Path,
    claims: Option<&std::path::Path>,
    client: Option<std::net::IpAddr>,
    json: bool,
    method: &str,
    url: &str,
) -> anyhow::Result<ExitCode> {
    use portcullis::explain;
    let config = config::load(path)
        .map_err(|e| anyhow::anyhow!("{}: invalid configuration\n{e}", path.display()))?;
    let mut request = explain::Request::parse(method, url, &config)?;
    request.client = client;
    let claims = claims.map(explain::read_claims).transpose()?;
    let explanation = explain::explain(&config, &request, claims.as_ref());
    if json {
        println!("{}", serde_json::to_string(&explanation)?);
    } else {
        print!("{explanation}");
    }
    Ok(if explanation.is_allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn run(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = config::load(path)
        .map_err(|e| anyhow::anyhow!("{}: invalid configuration\n{e}", path.display()))?;
    init_tracing(&config);
    let runtime = tokio_runtime()?;
    runtime.block_on(serve(config, path.to_path_buf()))
}

fn demo(port: u16) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let demo = portcullis::demo::start(port)
            .await
            .with_context(|| format!("cannot start the demo on 127.0.0.1:{port} (try --port)"))?;
        println!("{}", demo.banner());
        wait_for_stop_signal().await?;
        demo.proxy.shutdown().await;
        demo.idp.shutdown();
        Ok(ExitCode::SUCCESS)
    })
}

/// The runtime of everything but the public listener: the admin listener,
/// provider discovery, reloads, sweeps. Requests are served by threads of their
/// own (`server.workers`, see `portcullis::server`), so one thread is enough here.
fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("portcullis-main")
        .build()
        .context("cannot start the async runtime")
}

async fn serve(config: Config, path: PathBuf) -> anyhow::Result<ExitCode> {
    let running = portcullis::server::start(config).await?;
    tokio::spawn(running.reloader().run(path, running.shutdown_signal()));
    wait_for_stop_signal().await?;
    tracing::info!("stopping: draining in-flight requests");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Human-readable logs on a terminal, JSON lines otherwise (SPEC §1); `RUST_LOG`
/// overrides `log.level`.
fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match config.log.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.init();
    }
}
