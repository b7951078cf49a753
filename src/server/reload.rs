//! Reloading the configuration while serving (SPEC §10): on SIGHUP or when the
//! config file (or a TLS file) changes. A new `Runtime` is built aside and
//! swapped in only when the whole config is valid; otherwise the old one keeps
//! serving and the reasons are logged. Sessions live outside the runtime and
//! survive every reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::admin::Metrics;
use crate::auth::oidc::OidcError;
use crate::config::{self, Config, ConfigError};
use crate::proxy::{Runtime, State, UpstreamError};

use super::tls::CertStore;
use super::ServerError;

/// Why a reload was refused. The old configuration keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigError),
    /// The provider settings changed and the new provider cannot be discovered.
    #[error("new provider settings: {0}")]
    Provider(#[from] OidcError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Tls(#[from] ServerError),
}

/// Everything a reload needs; cheap to clone into the tasks that trigger reloads.
#[derive(Clone)]
pub struct Reloader {
    pub(super) state: Arc<State>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) certs: Option<Arc<CertStore>>,
    /// For the discovery of providers a reload adds.
    pub(super) readiness: Arc<crate::admin::Readiness>,
    pub(super) shutdown: watch::Receiver<bool>,
}

/// Settings read once at start: a reload that changes them says so and keeps
/// the running values until a restart.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |key: &'static str, differs: bool| {
        if differs {
            changed.push(key);
        }
    };
    check("server.listen", old.server.listen != new.server.listen);
    check("admin.listen", old.admin.listen != new.admin.listen);
    check(
        "server.tls (on/off)",
        old.server.tls.is_some() != new.server.tls.is_some(),
    );
    check(
        "server.header_read_timeout",
        old.server.header_read_timeout != new.server.header_read_timeout,
    );
    check(
        "server.max_header_bytes",
        old.server.max_header_bytes != new.server.max_header_bytes,
    );
    check(
        "server.max_connections",
        old.server.max_connections != new.server.max_connections,
    );
    check("server.workers", old.server.workers != new.server.workers);
    check("session.store", old.session.store != new.session.store);
    check(
        "session.redis_url",
        old.session.redis_url != new.session.redis_url,
    );
    check("session.secret", old.session.secrets != new.session.secrets);
    check(
        "session.max_sessions",
        old.session.max_sessions != new.session.max_sessions,
    );
    changed
}

impl Reloader {
    /// Loads `path` and applies it.
    ///
    /// # Errors
    /// When the new config is invalid or cannot be applied; nothing changed then.
    pub async fn reload_file(&self, path: &Path) -> Result<(), ReloadError> {
        let result = match config::load(path) {
            Ok(config) => self.apply(config).await,
            Err(error) => Err(error.into()),
        };
        let label = if result.is_ok() { "ok" } else { "failed" };
        self.metrics
            .config_reloads
            .with_label_values(&[label])
            .inc();
        result
    }

    /// Builds a runtime for `config` aside and swaps it in.
    ///
    /// # Errors
    /// As [`Reloader::reload_file`].
    pub async fn apply(&self, config: Config) -> Result<(), ReloadError> {
        let old = self.state.runtime.load_full();
        let ignored = restart_only_changes(&old.config, &config);
        if !ignored.is_empty() {
            tracing::warn!(keys = ?ignored, "these settings change only at restart; keeping the running values for them");
        }
        let providers = super::build_providers(
            &config,
            &self.state.clock,
            &self.metrics,
            Some(&old.providers),
        );
        // A new default provider must answer before it replaces the old one;
        // any other new provider is discovered in the background (its routes
        // answer 503 until then), so a partner's outage never blocks a reload.
        for provider in providers.iter() {
            let is_kept = old
                .providers
                .named(provider.name())
                .is_some_and(|(_, kept)| Arc::ptr_eq(kept, provider));
            if is_kept {
                continue; // discovered already, or still being discovered
            }
            if provider.name() == crate::config::DEFAULT_PROVIDER {
                provider.discover().await?;
            } else {
                tokio::spawn(super::discovery(
                    provider.clone(),
                    self.readiness.clone(),
                    self.shutdown.clone(),
                ));
            }
        }
        if let (Some(certs), Some(tls)) = (&self.certs, &config.server.tls) {
            certs.reload(tls)?;
        }
        let runtime = Runtime::new(config, providers, self.metrics.clone(), Some(&old))?;
        self.state.runtime.store(Arc::new(runtime));
        Ok(())
    }

    /// Reloads on SIGHUP and on changes of the config file or the TLS files,
    /// until `shutdown` changes.
    pub async fn run(self, path: PathBuf, mut shutdown: watch::Receiver<bool>) {
        let (tx, mut changes) = mpsc::unbounded_channel::<()>();
        // Kept alive for the loop's lifetime; dropping it stops watching.
        let _watcher = self.watch_files(&path, tx);
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGHUP; reload on file change only");
                None
            }
        };
        loop {
            let cause = tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = async { match hangup.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => "SIGHUP",
                Some(()) = changes.recv() => {
                    // Editors and ConfigMaps write in several steps: let them settle.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    while changes.try_recv().is_ok() {}
                    "file change"
                }
            };
            match self.reload_file(&path).await {
                Ok(()) => tracing::info!(cause, path = %path.display(), "configuration reloaded"),
                Err(error) => {
                    tracing::error!(cause, path = %path.display(), %error, "configuration reload refused; the previous configuration keeps serving");
                }
            }
        }
    }

    /// Watches the directories of the config and TLS files (ConfigMaps and
    /// cert-manager swap files by symlink, so the directory is what changes).
    fn watch_files(
        &self,
        path: &Path,
        tx: mpsc::UnboundedSender<()>,
    ) -> Option<notify::RecommendedWatcher> {
        let mut files = vec![absolute(path)];
        let runtime = self.state.runtime.load();
        if let Some(tls) = &runtime.config.server.tls {
            files.push(absolute(&tls.cert_file));
            files.push(absolute(&tls.key_file));
        }
        let names: Vec<std::ffi::OsString> = files
            .iter()
            .filter_map(|f| f.file_name().map(Into::into))
            .collect();
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            let relevant = event.paths.iter().any(|p| {
                p.file_name()
                    .is_some_and(|n| names.iter().any(|name| name == n))
                    || p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("..")) // ConfigMap ..data swaps
            });
            if relevant {
                let _ = tx.send(());
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(watcher) => watcher,
            Err(error) => {
                tracing::warn!(%error, "cannot watch the config file; reload on SIGHUP only");
                return None;
            }
        };
        let mut dirs: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            if let Err(error) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                tracing::warn!(%error, dir = %dir.display(), "cannot watch directory");
            }
        }
        Some(watcher)
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
