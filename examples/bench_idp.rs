//! The development OpenID provider on its own, for `bench/run.sh`: registers
//! the clients given on the command line (portcullis instances, Apache's
//! mod_auth_openidc), optionally prints bearer tokens, and serves until killed.
//!
//! ```text
//! cargo run --release --example bench_idp -- [--listen 127.0.0.1:0] [--ttl SECS]
//!     --client ID SECRET REDIRECT_URI[,REDIRECT_URI...] [--client ...]
//!     [--bearer SUB CLIENT_ID]
//! ```
//!
//! Prints `ISSUER=<url>`, then one `BEARER=<jwt>` line per `--bearer` (a valid
//! RFC 9068 access token for SUB whose `aud` is CLIENT_ID), then `READY`.
//!
//! Access, ID and refresh tokens live `--ttl` seconds (default 3600), so a
//! benchmark that runs for minutes measures the request path, not token refresh.
//! The provider listens on loopback only (it refuses anything else).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use portcullis_devidp as devidp;

const USAGE: &str = "usage: bench_idp [--listen 127.0.0.1:PORT] [--ttl SECS] \
--client ID SECRET REDIRECT_URI[,REDIRECT_URI...] [--client ...] [--bearer SUB CLIENT_ID]";

struct Args {
    listen: SocketAddr,
    ttl: Duration,
    clients: Vec<devidp::Client>,
    bearers: Vec<(String, String)>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ttl: Duration::from_secs(3600),
        clients: Vec::new(),
        bearers: Vec::new(),
    };
    let value = |args: &mut dyn Iterator<Item = String>, what: &str| {
        args.next()
            .ok_or_else(|| format!("{what} is missing\n{USAGE}"))
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--listen" => {
                let text = value(&mut args, "--listen ADDR")?;
                parsed.listen = text.parse().map_err(|e| format!("--listen {text}: {e}"))?;
            }
            "--ttl" => {
                let text = value(&mut args, "--ttl SECS")?;
                let secs: u64 = text.parse().map_err(|e| format!("--ttl {text}: {e}"))?;
                parsed.ttl = Duration::from_secs(secs);
            }
            "--client" => {
                let id = value(&mut args, "--client ID")?;
                let secret = value(&mut args, "--client SECRET")?;
                let uris = value(&mut args, "--client REDIRECT_URI")?;
                let mut uris = uris.split(',').map(str::to_owned);
                let first = uris.next().unwrap_or_default();
                let mut client = devidp::Client::new(id, secret, first);
                client.redirect_uris.extend(uris);
                parsed.clients.push(client);
            }
            "--bearer" => {
                let sub = value(&mut args, "--bearer SUB")?;
                let client = value(&mut args, "--bearer CLIENT_ID")?;
                parsed.bearers.push((sub, client));
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if parsed.clients.is_empty() {
        return Err(format!("at least one --client is needed\n{USAGE}"));
    }
    Ok(parsed)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let config = devidp::Config {
        listen: args.listen,
        clients: args.clients,
        access_token_ttl: args.ttl,
        id_token_ttl: args.ttl,
        refresh_token_ttl: args.ttl * 2,
        ..devidp::Config::default()
    };
    let idp = match devidp::start(config).await {
        Ok(idp) => idp,
        Err(e) => {
            eprintln!("the development provider did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("ISSUER={}", idp.issuer());
    for (sub, client) in &args.bearers {
        println!("BEARER={}", idp.access_token_for(sub, client));
    }
    println!("READY");
    // SIGTERM (how bench/run.sh stops it) ends the process without a handler.
    tokio::signal::ctrl_c().await.ok();
    idp.shutdown();
    ExitCode::SUCCESS
}
