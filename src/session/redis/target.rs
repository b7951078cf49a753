//! Where the Redis store connects: `session.redis_url` parsed into one server or a
//! cluster, the client built for it (timeouts, reconnect with backoff), and on one
//! server the client of the session cache's invalidation subscription.

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClientBuilder, ClusterConfig};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, Pipeline, RedisFuture, TlsCertificates, Value};

/// The query parameter that marks a single seed URL as a Redis Cluster node.
const CLUSTER_PARAM: &str = "cluster";

/// Reconnect backoff: first retry after ~100 ms, doubling, at most 2 s apart.
pub(super) const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
pub(super) const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);

/// What `session.redis_url` names. `Debug` never prints a URL: it may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// One server (or a proxy in front of several): `redis://`, `rediss://`, `unix://`.
    Standalone(String),
    /// Redis Cluster seed nodes; the client discovers the rest (CLUSTER SLOTS).
    Cluster(Vec<String>),
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Standalone(_) => f.write_str("Standalone([redacted])"),
            Target::Cluster(nodes) => write!(f, "Cluster([{} nodes, redacted])", nodes.len()),
        }
    }
}

/// Why `session.redis_url` cannot be used. Never quotes the URL: it may hold a password.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The value holds no URL at all.
    #[error("session.redis_url is empty")]
    Empty,
    /// One of the URLs is not one the Redis client understands.
    #[error("session.redis_url: URL #{index} is not a valid redis:// or rediss:// URL: {reason}")]
    Invalid { index: usize, reason: String },
    /// `unix://` sockets cannot reach a cluster.
    #[error(
        "session.redis_url: a cluster is reached over redis:// or rediss://, not a unix socket"
    )]
    UnixCluster,
}

impl Target {
    /// Parses `session.redis_url`:
    ///
    /// - `redis://[user:password@]host:port[/db]`: one server; `rediss://` for TLS
    ///   (certificates checked against the system roots); `unix:///path/redis.sock`.
    /// - Redis Cluster: one node URL with `?cluster=true`
    ///   (`rediss://n1:6379/?cluster=true`), or a comma-separated list of node URLs
    ///   (`rediss://n1:6379,rediss://n2:6379`). Any reachable node is enough to
    ///   discover the others; a list keeps start-up independent of one node. The
    ///   username, password and TLS mode of the first URL apply to every node
    ///   (nodes listed with different credentials are refused at start). (The
    ///   config loader's URL check must split on commas for the list form to pass.)
    ///
    /// # Errors
    /// When the value is empty or a URL is not valid.
    pub fn parse(value: &str) -> Result<Self, TargetError> {
        let urls: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect();
        let mut nodes = Vec::with_capacity(urls.len());
        let mut is_cluster = urls.len() > 1;
        for (index, url) in urls.iter().enumerate() {
            let (url, marked) = strip_cluster_param(url)
                .map_err(|reason| TargetError::Invalid { index, reason })?;
            is_cluster |= marked;
            ::redis::parse_redis_url(&url).ok_or_else(|| TargetError::Invalid {
                index,
                reason: "unsupported scheme or malformed".into(),
            })?;
            nodes.push(url);
        }
        match (nodes.len(), is_cluster) {
            (0, _) => Err(TargetError::Empty),
            (_, true) if nodes.iter().any(|url| url.starts_with("unix")) => {
                Err(TargetError::UnixCluster)
            }
            (_, true) => Ok(Target::Cluster(nodes)),
            (_, false) => Ok(Target::Standalone(nodes.remove(0))),
        }
    }

    /// A client for this target that connects lazily: the proxy starts (and reports
    /// not ready) while Redis is still down, and connects when it comes up.
    ///
    /// `tls_roots_pem` replaces the system's roots for `rediss://` (a private CA).
    pub fn connect(
        &self,
        timeout: Duration,
        tls_roots_pem: Option<Vec<u8>>,
    ) -> ::redis::RedisResult<Connection> {
        match self {
            Target::Standalone(url) => {
                let client = standalone_client(url, tls_roots_pem)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_min_delay(RECONNECT_MIN_DELAY)
                    .set_max_delay(RECONNECT_MAX_DELAY);
                let manager = ConnectionManager::new_lazy_with_config(client, config)?;
                Ok(Connection::Standalone(manager))
            }
            Target::Cluster(nodes) => {
                let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout);
                if let Some(pem) = tls_roots_pem {
                    builder = builder.certs(certificates(pem));
                }
                let client = builder.build()?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout);
                let cluster = client.get_pending_async_connection_with_config(config);
                Ok(Connection::Cluster(cluster))
            }
        }
    }

    /// A client for a connection of its own to a standalone server (the session
    /// cache's pub/sub subscription), with the same credentials and TLS roots as
    /// [`Target::connect`]'s; `None` for a cluster, which gets no cache (a
    /// cluster's pub/sub reaches every node over the cluster bus, and the client
    /// would have to follow the channel's node through failovers).
    ///
    /// # Errors
    /// When the client refuses the settings (connecting happens later).
    pub fn subscriber(
        &self,
        tls_roots_pem: Option<Vec<u8>>,
    ) -> ::redis::RedisResult<Option<::redis::Client>> {
        match self {
            Target::Standalone(url) => standalone_client(url, tls_roots_pem).map(Some),
            Target::Cluster(_) => Ok(None),
        }
    }
}

/// The client for one server: `tls_roots_pem` replaces the system's roots.
fn standalone_client(
    url: &str,
    tls_roots_pem: Option<Vec<u8>>,
) -> ::redis::RedisResult<::redis::Client> {
    match tls_roots_pem {
        Some(pem) => ::redis::Client::build_with_tls(url, certificates(pem)),
        None => ::redis::Client::open(url),
    }
}

/// Trust `pem` (server authentication only: no client certificate).
fn certificates(pem: Vec<u8>) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }
}

/// Removes `cluster=...` from a URL's query; returns the URL and whether it was
/// set to a true value.
fn strip_cluster_param(url: &str) -> Result<(String, bool), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), false));
    };
    let mut is_cluster = false;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some((CLUSTER_PARAM, value)) => {
                is_cluster = match value {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(format!("{CLUSTER_PARAM}= must be true or false")),
                };
            }
            _ if pair == CLUSTER_PARAM => is_cluster = true,
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, is_cluster))
}

/// A multiplexed connection to one server (reconnecting with backoff through
/// redis's `ConnectionManager`) or to a cluster (which follows MOVED/ASK and
/// reconnects to nodes itself). Cloning is cheap and shares the connection.
#[derive(Clone)]
pub enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(c) => c.req_packed_commands(cmd, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_a_standalone_server() {
        for url in [
            "redis://127.0.0.1:6379/0",
            "rediss://user:pw@redis.example.com:6380",
            "unix:///run/redis.sock",
        ] {
            assert_eq!(
                Target::parse(url).expect(url),
                Target::Standalone(url.into())
            );
        }
    }

    #[test]
    fn a_list_or_the_cluster_parameter_is_a_cluster() {
        assert_eq!(
            Target::parse("redis://a:7000, redis://b:7001,").expect("list"),
            Target::Cluster(vec!["redis://a:7000".into(), "redis://b:7001".into()])
        );
        assert_eq!(
            Target::parse("rediss://a:7000/?cluster=true").expect("param"),
            Target::Cluster(vec!["rediss://a:7000/".into()])
        );
        assert_eq!(
            Target::parse("redis://a:7000/?cluster=false").expect("param off"),
            Target::Standalone("redis://a:7000/".into())
        );
    }

    #[test]
    fn bad_values_are_refused_without_quoting_them() {
        for empty in ["", " , "] {
            assert!(matches!(Target::parse(empty), Err(TargetError::Empty)));
        }
        for bad in ["http://a:1", "redis://a:1/?cluster=maybe"] {
            let error = Target::parse(bad).expect_err(bad).to_string();
            assert!(!error.contains(bad), "{error}");
        }
        assert!(matches!(
            Target::parse("unix:///a.sock,redis://b:1"),
            Err(TargetError::UnixCluster)
        ));
    }
}
