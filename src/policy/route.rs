//! Step 2: find the rule that decides a request (SPEC §3). First match wins; a
//! request that matches no route gets `policy.default`.
//!
//! Matching sees only what the proxy itself established: the normalized path,
//! the method and the `Host` the client connected for. Client-supplied
//! `X-Forwarded-*`/`X-Original-*` headers never choose a rule here.

use http::Method;
use regex::Regex;

use crate::config::{AuthMode, Config, Route};

/// The rule that decided a request.
#[derive(Debug)]
pub struct Rule {
    /// The route's name (`route.name`), or `default` for `policy.default`.
    pub name: String,
    pub auth: AuthMode,
    pub requirements: Requirements,
}

/// What an authenticated identity must have (a route's, or `[policy]`'s for all).
#[derive(Debug, Default, Clone)]
pub struct Requirements {
    pub roles_any: Vec<String>,
    pub roles_all: Vec<String>,
    pub email_domains: Vec<String>,
}

/// All rules, compiled once per config load.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
    default: Rule,
    /// `[policy]` requirements, applied to every authenticated route.
    pub global: Requirements,
}

#[derive(Debug)]
struct CompiledRoute {
    host: Option<HostMatch>,
    path: Option<PathMatch>,
    methods: Vec<Method>,
    rule: Rule,
}

#[derive(Debug)]
enum HostMatch {
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: one extra label, no more.
    Wildcard(String),
}

#[derive(Debug)]
enum PathMatch {
    /// Whole-segment prefix: `/admin` matches `/admin` and `/admin/x`, not `/administrator`.
    Prefix(String),
    Exact(String),
    /// Compiled anchored by config.
    Regex(Regex),
}

impl RouteTable {
    /// Compiles the routes and the default policy of `config`.
    pub fn new(config: &Config) -> Self {
        let routes = config.routes.iter().map(CompiledRoute::new).collect();
        let default = Rule {
            name: "default".to_owned(),
            auth: config.policy.default,
            requirements: Requirements::default(),
        };
        let global = Requirements {
            roles_any: config.policy.roles_any.clone(),
            roles_all: config.policy.roles_all.clone(),
            email_domains: config.policy.email_domains.clone(),
        };
        RouteTable {
            routes,
            default,
            global,
        }
    }

    /// The first rule matching `host` (lowercase, no port), `method` and
    /// `match_path` (a normalized path with `;params` removed), else the default.
    pub fn find(&self, host: Option<&str>, method: &Method, match_path: &str) -> &Rule {
        self.routes
            .iter()
            .find(|r| r.matches(host, method, match_path))
            .map(|r| &r.rule)
            .unwrap_or(&self.default)
    }
}

impl CompiledRoute {
    fn new(route: &Route) -> Self {
        let host = route.host.as_ref().map(|h| match h.strip_prefix('*') {
            Some(suffix) => HostMatch::Wildcard(suffix.to_owned()),
            None => HostMatch::Exact(h.clone()),
        });
        let path = if let Some(p) = &route.path {
            Some(PathMatch::Prefix(p.clone()))
        } else if let Some(p) = &route.path_exact {
            Some(PathMatch::Exact(p.clone()))
        } else {
            route.path_regex.clone().map(PathMatch::Regex)
        };
        let methods = route
            .methods
            .iter()
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect();
        CompiledRoute {
            host,
            path,
            methods,
            rule: Rule {
                name: route.name.clone(),
                auth: route.auth,
                requirements: Requirements {
                    roles_any: route.roles_any.clone(),
                    roles_all: route.roles_all.clone(),
                    email_domains: route.email_domains.clone(),
                },
            },
        }
    }

    fn matches(&self, host: Option<&str>, method: &Method, path: &str) -> bool {
        let host_ok = match (&self.host, host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(HostMatch::Exact(h)), Some(host)) => h == host,
            (Some(HostMatch::Wildcard(suffix)), Some(host)) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        };
        let method_ok = self.methods.is_empty() || self.methods.contains(method);
        let path_ok = match &self.path {
            None => true,
            Some(PathMatch::Prefix(prefix)) => is_segment_prefix(prefix, path),
            Some(PathMatch::Exact(exact)) => exact == path,
            Some(PathMatch::Regex(re)) => re.is_match(path),
        };
        host_ok && method_ok && path_ok
    }
}

/// Returns true if and only if `prefix` is `path` or a whole-segment prefix of it.
pub fn is_segment_prefix(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_whole_segments_only() {
        assert!(is_segment_prefix("/admin", "/admin"));
        assert!(is_segment_prefix("/admin", "/admin/"));
        assert!(is_segment_prefix("/admin", "/admin/x"));
        assert!(!is_segment_prefix("/admin", "/administrator"));
        assert!(!is_segment_prefix("/admin", "/"));
        assert!(is_segment_prefix("/", "/anything"));
    }
}
