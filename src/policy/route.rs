//! Step 2: find the rule that decides a request (SPEC §3). First match wins; a
//! request that matches no route gets `policy.default`. The rule carries what
//! the request must satisfy ([`Requirements`]) and where it goes (its upstream,
//! resolved from its name once, when the table is built).
//!
//! Matching sees only what the proxy itself established: the normalized path,
//! the method and the `Host` the client connected for. Client-supplied
//! `X-Forwarded-*`/`X-Original-*` headers never choose a rule here.
//!
//! # How a lookup stays cheap
//!
//! Scanning the routes in order costs one comparison per route, so a table of
//! 10 000 routes would make every request pay for all of them. Instead the
//! routes are indexed once, at load, by their literals:
//!
//! - by host: routes without a host, routes per exact host, and `*.example.com`
//!   routes per suffix (`.example.com`); a request looks in at most three buckets;
//! - within a bucket, by path: a trie of whole segments holds the `path`
//!   prefixes and `path_exact` paths, so walking the request's segments finds
//!   every route whose literal fits in one step per segment; routes without a
//!   path (host- or method-only) and the prefix `/` match any path;
//! - every `path_regex` sits in one [`RegexSet`], so one pass over the path says
//!   which regexes match.
//!
//! Each of these yields candidate route indices in ascending order. The answer
//! is the lowest candidate whose full matcher (host, method, path) holds, which
//! is exactly what a first-match scan returns: the index only ever skips routes
//! whose literal cannot match. The cost depends on the path's depth and on how
//! many routes share the request's literals, not on the number of routes.
//! `route/tests.rs` checks this against a plain linear scan on random tables.

#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

use fnv::FnvHasher;
use http::Method;
use ipnet::IpNet;
use regex::{Regex, RegexSet};

use crate::config::{AuthMode, Config, Route};

/// The rule that decided a request.
#[derive(Debug)]
pub struct Rule {
    /// The route's name (`route.name`), or `default` for `policy.default`.
    pub name: String,
    pub auth: AuthMode,
    pub requirements: Requirements,
    /// Where the request goes: the position of the route's upstream in
    /// [`Config::all_upstreams`] order, so 0 is `[upstream]` (`default`).
    /// Resolved from `route.upstream` once, in [`RouteTable::new`], so a request
    /// never looks a name up (SPEC §11).
    pub upstream: usize,
    /// `route.strip_prefix`: removed from the forwarded path (SPEC §3).
    pub strip_prefix: Option<String>,
    /// The providers whose sessions and bearer tokens the route admits, as
    /// positions in [`Config::all_providers`] order (0 is `[oidc]`):
    /// `route.providers`, else `policy.providers` (SPEC §12).
    pub providers: Vec<usize>,
    /// `route.connections`: whose access tokens the request carries (SPEC §13).
    pub connections: Vec<String>,
    /// The route's metric series, resolved once (the `route` label is `name`).
    pub counters: std::sync::Arc<crate::admin::metrics::RouteCounters>,
}

/// What a request must satisfy: a route's own keys, or `[policy]`'s for every
/// route (SPEC §3).
///
/// `source_ips` is judged by `authorize::admit_source`, before authentication
/// and on every `auth` mode; the other keys by `authorize::authorize`, on
/// authenticated routes only.
#[derive(Debug, Default, Clone)]
pub struct Requirements {
    pub roles_any: Vec<String>,
    pub roles_all: Vec<String>,
    pub email_domains: Vec<String>,
    /// `claims`: each claim reference (as written in the config, the key of
    /// `Identity::claims`) with the strings it may hold, sorted by reference.
    pub claims: Vec<(String, Vec<String>)>,
    /// `source_ips`: the client address must be in one of these (when any).
    pub source_ips: Vec<IpNet>,
    /// `scopes_any`: a bearer token must hold at least one of these.
    pub scopes_any: Vec<String>,
    /// `scopes_all`: a bearer token must hold every one of these.
    pub scopes_all: Vec<String>,
}

/// The outcome of a lookup: the deciding rule and where it sits in the config.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    /// The position of the route in `[[route]]` order, `None` for `policy.default`.
    pub index: Option<usize>,
    pub rule: &'a Rule,
}

/// All rules, compiled once per config load.
#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
    index: Index,
    default: Rule,
    /// `[policy]` requirements: `source_ips` on every route, `public` included;
    /// roles, emails and claims on every authenticated route; scopes on every
    /// request authenticated by a bearer token (see `authorize::authorize`).
    pub global: Requirements,
}

impl RouteTable {
    /// Compiles the routes and the default policy of `config`.
    pub fn new(config: &Config) -> Self {
        let routes: Vec<CompiledRoute> = config
            .routes
            .iter()
            .map(|route| {
                CompiledRoute::new(
                    route,
                    upstream_index(config, route),
                    provider_indices(config, config.route_providers(route)),
                )
            })
            .collect();
        let index = Index::new(&routes);
        let default = Rule {
            name: "default".to_owned(),
            auth: config.policy.default,
            requirements: Requirements::default(),
            upstream: 0,
            strip_prefix: None,
            providers: provider_indices(config, &config.policy.providers),
            connections: Vec::new(),
            counters: std::sync::Arc::new(crate::admin::metrics::RouteCounters::new("default")),
        };
        let policy = &config.policy;
        let global = Requirements {
            roles_any: policy.roles_any.clone(),
            roles_all: policy.roles_all.clone(),
            email_domains: policy.email_domains.clone(),
            claims: claim_list(&policy.claims),
            source_ips: policy.source_ips.clone(),
            scopes_any: policy.scopes_any.clone(),
            scopes_all: policy.scopes_all.clone(),
        };
        RouteTable {
            routes,
            index,
            default,
            global,
        }
    }

    /// The first rule matching `host` (lowercase, no port), `method` and
    /// `match_path` (a normalized path with `;params` removed), else the default.
    pub fn find(&self, host: Option<&str>, method: &Method, match_path: &str) -> &Rule {
        self.lookup(host, method, match_path).rule
    }

    /// Like [`RouteTable::find`], and also says which route decided (for
    /// `portcullis explain` and logs).
    ///
    /// # Security
    ///
    /// Trailing dots are ignored on the request's host: `admin.example.com.` is
    /// the absolute form of `admin.example.com` (RFC 1034 §3.1), DNS resolves
    /// both alike and nginx strips the dot before choosing a virtual host, so a
    /// host rule that missed it could be walked around.
    pub fn lookup(&self, host: Option<&str>, method: &Method, match_path: &str) -> Found<'_> {
        // `path` and `path_exact` match without regard to ASCII case: many apps
        // (IIS, ASP.NET, Express by default) serve `/ADMIN` as `/admin`, and a
        // rule that missed it could be walked around. Allocates only when the
        // path has an uppercase letter.
        let folded = if match_path.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(match_path.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(match_path)
        };
        let request = Request {
            host: host.map(without_trailing_dots),
            method,
            path: match_path,
            folded: &folded,
        };
        match self.first_match(&request) {
            Some(index) => Found {
                index: Some(index),
                rule: &self.routes[index].rule,
            },
            None => Found {
                index: None,
                rule: &self.default,
            },
        }
    }

    /// The number of `[[route]]` tables.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Returns true if and only if the config has no `[[route]]`.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The lowest index of a route that matches `request`.
    fn first_match(&self, request: &Request<'_>) -> Option<usize> {
        let mut search = Search {
            routes: &self.routes,
            request,
            best: usize::MAX,
        };
        self.index.any_host.offer_to(&mut search);
        if let Some(host) = request.host {
            if let Some(bucket) = self.index.exact_hosts.get(host) {
                bucket.offer_to(&mut search);
            }
            let bucket = wildcard_suffix(host).and_then(|s| self.index.wildcard_hosts.get(s));
            if let Some(bucket) = bucket {
                bucket.offer_to(&mut search);
            }
        }
        self.index.regexes.offer_to(&mut search);
        search.offer(&self.index.unindexed);
        (search.best != usize::MAX).then_some(search.best)
    }
}

/// The positions of the providers `names` in [`Config::all_providers`] order;
/// a name the config loader would have refused is left out (logged), so it
/// admits nothing.
fn provider_indices(config: &Config, names: &[String]) -> Vec<usize> {
    names
        .iter()
        .filter_map(|name| {
            let found = config.all_providers().position(|(known, _)| known == name);
            if found.is_none() {
                tracing::warn!(provider = %name, "unknown provider; admitted nowhere");
            }
            found
        })
        .collect()
}

/// The position of `route`'s upstream in [`Config::all_upstreams`] order: 0
/// for `[upstream]` (no `upstream`, or `default`).
///
/// The config compiler refuses a name that is not defined; a `Config` built in
/// code that names one anyway goes to `[upstream]`, as
/// [`Config::upstream_named`] does, so the two can never disagree.
fn upstream_index(config: &Config, route: &Route) -> usize {
    let Some(name) = route.upstream.as_deref() else {
        return 0;
    };
    let found = config.all_upstreams().position(|(known, _)| known == name);
    if found.is_none() {
        tracing::warn!(route = %route.name, upstream = %name, "unknown upstream; using [upstream]");
    }
    found.unwrap_or(0)
}

/// A `claims` table as the list [`Requirements::claims`] holds (sorted by
/// reference, as the map is).
fn claim_list(claims: &BTreeMap<String, Vec<String>>) -> Vec<(String, Vec<String>)> {
    claims
        .iter()
        .map(|(claim, values)| (claim.clone(), values.clone()))
        .collect()
}

/// `host` without its trailing dots (the root label), as routes are matched.
pub fn without_trailing_dots(host: &str) -> &str {
    host.trim_end_matches('.')
}

/// What a route is matched against.
struct Request<'a> {
    host: Option<&'a str>,
    method: &'a Method,
    /// The path as normalized: what `path_regex` sees.
    path: &'a str,
    /// The path with ASCII letters lowercased: what `path` and `path_exact` see.
    folded: &'a str,
}

/// The lowest matching route found so far, while candidates are offered.
struct Search<'a> {
    routes: &'a [CompiledRoute],
    request: &'a Request<'a>,
    /// `usize::MAX` while nothing matched.
    best: usize,
}

impl Search<'_> {
    /// Considers `candidates` (ascending route indices) with the full matcher.
    ///
    /// The full check, rather than trusting the index, means an index bug can
    /// only make a route be missed, never make one match that should not.
    fn offer(&mut self, candidates: &[u32]) {
        for &candidate in candidates {
            let candidate = candidate as usize;
            if candidate >= self.best {
                return;
            }
            if self.routes[candidate].matches(self.request) {
                self.best = candidate;
                return;
            }
        }
    }
}

// === The index ===

/// The routes by their literals; see the module docs.
#[derive(Debug, Default)]
struct Index {
    /// Routes without a `host`.
    any_host: PathIndex,
    /// Routes with an exact `host`, by host.
    exact_hosts: HashMap<Box<str>, PathIndex>,
    /// `*.example.com` routes, by their suffix `.example.com`.
    wildcard_hosts: HashMap<Box<str>, PathIndex>,
    /// Every route with a `path_regex`, whatever its host.
    regexes: RegexIndex,
    /// Routes whose literals the index cannot place (a host or path that the
    /// config compiler would have refused, as in a `Config` built in code);
    /// they are checked one by one.
    unindexed: Vec<u32>,
}

impl Index {
    fn new(routes: &[CompiledRoute]) -> Self {
        let mut index = Index::default();
        let mut regexes = Vec::new();
        for (at, route) in routes.iter().enumerate() {
            let at = u32::try_from(at).expect("fewer than 2^32 routes: each is a config table");
            if let Some(PathMatch::Regex(re)) = &route.path {
                regexes.push((at, re));
                continue;
            }
            let is_indexed = index
                .path_index_for(route.host.as_ref())
                .is_some_and(|bucket| bucket.insert(at, route.path.as_ref()));
            if !is_indexed {
                index.unindexed.push(at);
            }
        }
        index.regexes = RegexIndex::new(regexes);
        index
    }

    /// The bucket for routes with `host`, or `None` when the host cannot be indexed.
    fn path_index_for(&mut self, host: Option<&HostMatch>) -> Option<&mut PathIndex> {
        match host {
            None => Some(&mut self.any_host),
            Some(HostMatch::Exact(host)) => {
                Some(self.exact_hosts.entry(host.as_str().into()).or_default())
            }
            Some(HostMatch::Wildcard(suffix)) if suffix.starts_with('.') => Some(
                self.wildcard_hosts
                    .entry(suffix.as_str().into())
                    .or_default(),
            ),
            Some(HostMatch::Wildcard(_)) => None,
        }
    }
}

/// The part of `host` a one-label wildcard would have to equal: from its first
/// `.` on, when that dot has a non-empty label before it (`a.example.com` gives
/// `.example.com`; `example.com` gives `.com`; `.x` gives nothing).
fn wildcard_suffix(host: &str) -> Option<&str> {
    match host.find('.') {
        Some(dot) if dot > 0 => Some(&host[dot..]),
        _ => None,
    }
}

/// The non-regex routes of one host bucket, by path literal.
#[derive(Debug, Default)]
struct PathIndex {
    /// Routes that match any path: no path matcher, or the prefix `/`.
    any_path: Vec<u32>,
    /// The `path` prefixes and `path_exact` paths, segment by segment.
    root: Node,
}

/// One segment of the trie: the routes whose literal ends here.
#[derive(Debug, Default)]
struct Node {
    /// Hashed with FNV rather than SipHash: the keys are the config's, which no
    /// client chooses, so a keyed hash buys nothing, and SipHash was most of a
    /// lookup. A request's path only looks keys up.
    children: HashMap<Box<str>, Node, BuildHasherDefault<FnvHasher>>,
    /// Routes whose `path` prefix is the path up to this node.
    prefix: Vec<u32>,
    /// Routes whose `path_exact` is the path up to this node.
    exact: Vec<u32>,
}

impl PathIndex {
    /// Adds route `at` under its path literal. Returns false when the literal
    /// does not start with `/`, so no normalized path can be found by walking it.
    ///
    /// Routes are added in ascending order, so every list stays sorted.
    fn insert(&mut self, at: u32, path: Option<&PathMatch>) -> bool {
        match path {
            None => self.any_path.push(at),
            Some(PathMatch::Prefix(prefix)) if prefix == "/" => self.any_path.push(at),
            Some(PathMatch::Prefix(prefix)) => match segments(prefix) {
                Some(segments) => self.root.descend_or_create(segments).prefix.push(at),
                None => return false,
            },
            Some(PathMatch::Exact(exact)) => match segments(exact) {
                Some(segments) => self.root.descend_or_create(segments).exact.push(at),
                None => return false,
            },
            Some(PathMatch::Regex(_)) => return false,
        }
        true
    }

    /// Offers every route of this bucket whose literal fits the request's path.
    fn offer_to(&self, search: &mut Search<'_>) {
        search.offer(&self.any_path);
        let Some(mut segments) = segments(search.request.folded) else {
            // Only paths that start with `/` can equal or extend a literal that does.
            return;
        };
        let mut node = &self.root;
        loop {
            let Some(segment) = segments.next() else {
                search.offer(&node.exact);
                return;
            };
            match node.children.get(segment) {
                Some(child) => node = child,
                None => return,
            }
            // `node` now stands for the path up to a `/` or its end: a whole-segment
            // prefix of it (RFC 3986 segments; `is_segment_prefix`).
            search.offer(&node.prefix);
        }
    }
}

impl Node {
    fn descend_or_create<'s>(&mut self, segments: impl Iterator<Item = &'s str>) -> &mut Node {
        let mut node = self;
        for segment in segments {
            node = node.children.entry(segment.into()).or_default();
        }
        node
    }
}

/// The segments of a path after its leading `/` (`/a/b/` gives `a`, `b`, ``),
/// or `None` when it does not start with `/`.
///
/// The node reached after the first k segments is the path up to its (k+1)-th
/// `/` or its end, which is what makes the trie walk a segment-prefix test.
fn segments(path: &str) -> Option<Segments<'_>> {
    path.strip_prefix('/').map(|rest| Segments(Some(rest)))
}

/// `rest.split('/')`, by a byte scan: the `char` pattern's searcher cost more
/// than the few bytes of a segment.
struct Segments<'a>(Option<&'a str>);

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0?;
        match rest.bytes().position(|b| b == b'/') {
            Some(slash) => {
                self.0 = Some(&rest[slash + 1..]);
                Some(&rest[..slash])
            }
            None => {
                self.0 = None;
                Some(rest)
            }
        }
    }
}

/// Every `path_regex`, matched in one pass.
#[derive(Debug, Default)]
struct RegexIndex {
    /// The route index of each pattern, ascending.
    routes: Vec<u32>,
    /// The same patterns as one set; `None` when there are none, or when the set
    /// would exceed the regex size limit (then each regex is tried in turn).
    set: Option<RegexSet>,
    /// The individual regexes, for that fallback.
    each: Vec<Regex>,
}

impl RegexIndex {
    fn new(regexes: Vec<(u32, &Regex)>) -> Self {
        if regexes.is_empty() {
            return RegexIndex::default();
        }
        let routes = regexes.iter().map(|(at, _)| *at).collect();
        // The config compiled each regex already anchored (`^(?:...)$`), so the
        // set matches exactly what each one does.
        let set = RegexSet::new(regexes.iter().map(|(_, re)| re.as_str())).ok();
        if set.is_none() {
            tracing::warn!(
                count = regexes.len(),
                "path_regex routes exceed the regex size limit as one set; trying them one by one"
            );
        }
        let each = regexes.into_iter().map(|(_, re)| re.clone()).collect();
        RegexIndex { routes, set, each }
    }

    /// Offers the regex routes whose regex matches the path.
    fn offer_to(&self, search: &mut Search<'_>) {
        let Some(&first) = self.routes.first() else {
            return;
        };
        if first as usize >= search.best {
            return; // an earlier route already won
        }
        let path = search.request.path;
        match &self.set {
            // `is_match` needs no allocation, and most requests match no regex.
            Some(set) if set.is_match(path) => {
                for pattern in set.matches(path).iter() {
                    search.offer_regex_hit(self.routes[pattern]);
                }
            }
            Some(_) => {}
            None => {
                for (re, &at) in self.each.iter().zip(&self.routes) {
                    if re.is_match(path) {
                        search.offer_regex_hit(at);
                    }
                }
            }
        }
    }
}

impl Search<'_> {
    /// Considers route `at`, whose regex is known to match the path.
    fn offer_regex_hit(&mut self, at: u32) {
        let at = at as usize;
        if at < self.best && self.routes[at].matches_host_and_method(self.request) {
            self.best = at;
        }
    }
}

// === One route ===

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

impl CompiledRoute {
    fn new(route: &Route, upstream: usize, providers: Vec<usize>) -> Self {
        let host = route.host.as_deref().map(without_trailing_dots);
        let host = host.map(|h| match h.strip_prefix('*') {
            Some(suffix) => HostMatch::Wildcard(suffix.to_owned()),
            None => HostMatch::Exact(h.to_owned()),
        });
        let path = if let Some(p) = &route.path {
            Some(PathMatch::Prefix(p.to_ascii_lowercase()))
        } else if let Some(p) = &route.path_exact {
            Some(PathMatch::Exact(p.to_ascii_lowercase()))
        } else {
            route.path_regex.clone().map(PathMatch::Regex)
        };
        let mut methods: Vec<Method> = route
            .methods
            .iter()
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect();
        // Frameworks answer HEAD with their GET handler: a rule on GET covers HEAD.
        if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
            methods.push(Method::HEAD);
        }
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
                    claims: claim_list(&route.claims),
                    source_ips: route.source_ips.clone(),
                    scopes_any: route.scopes_any.clone(),
                    scopes_all: route.scopes_all.clone(),
                },
                upstream,
                strip_prefix: route.strip_prefix.clone(),
                providers,
                connections: route.connections.clone(),
                counters: std::sync::Arc::new(crate::admin::metrics::RouteCounters::new(
                    &route.name,
                )),
            },
        }
    }

    /// Returns true if and only if every matcher of the route holds.
    fn matches(&self, request: &Request<'_>) -> bool {
        self.matches_host_and_method(request) && self.matches_path(request)
    }

    fn matches_host_and_method(&self, request: &Request<'_>) -> bool {
        let host_ok = match (&self.host, request.host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(HostMatch::Exact(h)), Some(host)) => h == host,
            (Some(HostMatch::Wildcard(suffix)), Some(host)) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        };
        host_ok && (self.methods.is_empty() || self.methods.contains(request.method))
    }

    fn matches_path(&self, request: &Request<'_>) -> bool {
        let path = request.folded;
        match &self.path {
            None => true,
            Some(PathMatch::Prefix(prefix)) => is_segment_prefix(prefix, path),
            Some(PathMatch::Exact(exact)) => exact == path,
            Some(PathMatch::Regex(re)) => re.is_match(request.path),
        }
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
