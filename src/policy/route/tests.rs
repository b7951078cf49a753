//! Rule matching (SPEC §3): segment prefixes, order, hosts, methods, regexes,
//! the default, and the index checked against a plain first-match scan.

use std::sync::OnceLock;

use proptest::prelude::*;

use super::*;
use crate::config;

// === Helpers ===

/// A valid config with no routes, loaded once; tables clone it and set routes.
pub(crate) fn base_config() -> &'static Config {
    static BASE: OnceLock<Config> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let path = dir.path().join("portcullis.toml");
        let text = r#"
[server]
public_url = "http://app.test"
[upstream]
url = "http://127.0.0.1:9"
[oidc]
issuer = "http://127.0.0.1:9/"
client_id = "portcullis"
client_secret = "test-secret"
"#;
        std::fs::write(&path, text).expect("write the config");
        config::load_with_env(&path, &[]).expect("the base config is valid")
    })
}

fn table(routes: Vec<Route>) -> RouteTable {
    table_with_default(routes, AuthMode::Login)
}

fn table_with_default(routes: Vec<Route>, default: AuthMode) -> RouteTable {
    let mut config = base_config().clone();
    config.routes = routes;
    config.policy.default = default;
    RouteTable::new(&config)
}

/// A route named `name` with no matcher yet; the builder methods below add them.
fn route(name: &str) -> Route {
    Route {
        name: name.to_owned(),
        host: None,
        path: None,
        path_exact: None,
        path_regex: None,
        methods: Vec::new(),
        auth: AuthMode::Login,
        roles_any: Vec::new(),
        roles_all: Vec::new(),
        email_domains: Vec::new(),
        claims: Default::default(),
        source_ips: Vec::new(),
        scopes_any: Vec::new(),
        scopes_all: Vec::new(),
        upstream: None,
        strip_prefix: None,
        providers: None,
        connections: Vec::new(),
    }
}

trait RouteExt {
    fn host(self, host: &str) -> Route;
    fn prefix(self, path: &str) -> Route;
    fn exact(self, path: &str) -> Route;
    fn regex(self, pattern: &str) -> Route;
    fn methods(self, methods: &[&str]) -> Route;
}

impl RouteExt for Route {
    fn host(mut self, host: &str) -> Route {
        self.host = Some(host.to_owned());
        self
    }
    fn prefix(mut self, path: &str) -> Route {
        self.path = Some(path.to_owned());
        self
    }
    fn exact(mut self, path: &str) -> Route {
        self.path_exact = Some(path.to_owned());
        self
    }
    fn regex(mut self, pattern: &str) -> Route {
        // As the config compiler does: anchored, so it must cover the whole path.
        self.path_regex = Some(Regex::new(&format!("^(?:{pattern})$")).expect("test regex"));
        self
    }
    fn methods(mut self, methods: &[&str]) -> Route {
        self.methods = methods.iter().map(|m| (*m).to_owned()).collect();
        self
    }
}

/// The name of the rule deciding `GET path` with no `Host`.
fn get(table: &RouteTable, path: &str) -> String {
    table.find(None, &Method::GET, path).name.clone()
}

fn at_host(table: &RouteTable, host: &str, path: &str) -> String {
    table.find(Some(host), &Method::GET, path).name.clone()
}

// === Segment prefixes ===

#[test]
fn is_segment_prefix_matches_whole_segments_only() {
    assert!(is_segment_prefix("/admin", "/admin"));
    assert!(is_segment_prefix("/admin", "/admin/"));
    assert!(is_segment_prefix("/admin", "/admin/x"));
    assert!(!is_segment_prefix("/admin", "/administrator"));
    assert!(!is_segment_prefix("/admin", "/adm"));
    assert!(!is_segment_prefix("/admin", "/"));
    assert!(is_segment_prefix("/", "/anything"));
    assert!(is_segment_prefix("/", "/"));
}

#[test]
fn prefix_route_matches_the_prefix_and_below_but_not_a_longer_segment() {
    let t = table(vec![route("admin").prefix("/admin")]);
    for path in ["/admin", "/admin/", "/admin/x", "/admin/x/y;z"] {
        assert_eq!(get(&t, path), "admin", "{path}");
    }
    for path in ["/administrator", "/admin-x", "/adm", "/", "/x/admin"] {
        assert_eq!(get(&t, path), "default", "{path}");
    }
    // Case-insensitive on purpose (security review, finding 3).
    assert_eq!(get(&t, "/ADMIN"), "admin");
    assert_eq!(get(&t, "/Admin/X"), "admin");
}

#[test]
fn deeper_prefix_matches_only_below_its_last_segment() {
    let t = table(vec![route("v1").prefix("/api/v1")]);
    assert_eq!(get(&t, "/api/v1"), "v1");
    assert_eq!(get(&t, "/api/v1/users"), "v1");
    assert_eq!(get(&t, "/api/v10"), "default");
    assert_eq!(get(&t, "/api"), "default");
    assert_eq!(get(&t, "/api/"), "default");
}

#[test]
fn root_prefix_matches_every_path() {
    let t = table(vec![route("all").prefix("/")]);
    for path in ["/", "/x", "/admin/x", "/a/b/c/"] {
        assert_eq!(get(&t, path), "all", "{path}");
    }
}

#[test]
fn exact_path_matches_only_itself() {
    let t = table(vec![
        route("health").exact("/healthz"),
        route("dir").exact("/docs/"),
    ]);
    assert_eq!(get(&t, "/healthz"), "health");
    assert_eq!(get(&t, "/healthz/"), "default");
    assert_eq!(get(&t, "/healthz/x"), "default");
    assert_eq!(get(&t, "/healthzz"), "default");
    assert_eq!(get(&t, "/docs/"), "dir");
    assert_eq!(get(&t, "/docs"), "default");
}

// === Order ===

#[test]
fn earlier_broader_route_wins_over_later_narrower_one() {
    let t = table(vec![
        route("broad").prefix("/api"),
        route("narrow").prefix("/api/admin"),
        route("exact").exact("/api/admin/x"),
    ]);
    assert_eq!(get(&t, "/api/admin/x"), "broad");
    assert_eq!(get(&t, "/api/admin"), "broad");
}

#[test]
fn earlier_narrower_route_wins_and_the_broader_one_takes_the_rest() {
    let t = table(vec![
        route("narrow").prefix("/api/admin"),
        route("broad").prefix("/api"),
        route("all").prefix("/"),
    ]);
    assert_eq!(get(&t, "/api/admin/x"), "narrow");
    assert_eq!(get(&t, "/api/users"), "broad");
    assert_eq!(get(&t, "/other"), "all");
}

#[test]
fn order_holds_across_hosts_regexes_and_matcherless_routes() {
    let t = table(vec![
        route("regex-first").regex("/r/.*"),
        route("host").host("app.test").prefix("/r"),
        route("methods-only").methods(&["DELETE"]),
        route("prefix").prefix("/r"),
    ]);
    assert_eq!(at_host(&t, "app.test", "/r/x"), "regex-first");
    assert_eq!(at_host(&t, "app.test", "/r"), "host");
    assert_eq!(at_host(&t, "other.test", "/r"), "prefix");
    let delete = t.find(Some("other.test"), &Method::DELETE, "/r");
    assert_eq!(delete.name, "methods-only");
}

// === Hosts ===

#[test]
fn exact_host_matches_only_that_host() {
    let t = table(vec![route("app").host("app.example.com")]);
    assert_eq!(at_host(&t, "app.example.com", "/"), "app");
    for host in [
        "example.com",
        "x.app.example.com",
        "app.example.co",
        "APP.example.com",
    ] {
        assert_eq!(at_host(&t, host, "/"), "default", "{host}");
    }
    assert_eq!(get(&t, "/"), "default", "a host rule needs a host");
}

#[test]
fn wildcard_host_matches_exactly_one_label() {
    let t = table(vec![route("wild").host("*.example.com")]);
    assert_eq!(at_host(&t, "a.example.com", "/"), "wild");
    assert_eq!(at_host(&t, "xn--bcher-kva.example.com", "/"), "wild");
    for host in [
        "example.com",
        "a.b.example.com",
        ".example.com",
        "aexample.com",
        "a.example.com.evil",
        "a.example.co",
    ] {
        assert_eq!(at_host(&t, host, "/"), "default", "{host}");
    }
}

#[test]
fn trailing_dot_on_the_request_host_does_not_escape_a_host_rule() {
    let t = table(vec![
        route("exact").host("admin.example.com"),
        route("wild").host("*.example.com"),
    ]);
    assert_eq!(at_host(&t, "admin.example.com.", "/"), "exact");
    assert_eq!(at_host(&t, "admin.example.com..", "/"), "exact");
    assert_eq!(at_host(&t, "a.example.com.", "/"), "wild");
    assert_eq!(at_host(&t, "example.com.", "/"), "default");
}

#[test]
fn exact_host_and_wildcard_keep_config_order() {
    let t = table(vec![
        route("wild").host("*.example.com").prefix("/admin"),
        route("exact").host("a.example.com"),
        route("any").prefix("/"),
    ]);
    assert_eq!(at_host(&t, "a.example.com", "/admin"), "wild");
    assert_eq!(at_host(&t, "a.example.com", "/x"), "exact");
    assert_eq!(at_host(&t, "b.example.com", "/x"), "any");
}

// === Methods ===

#[test]
fn methods_restrict_a_route_and_empty_means_any() {
    let t = table(vec![
        route("writes").prefix("/api").methods(&["POST", "PUT"]),
        route("reads").prefix("/api"),
    ]);
    assert_eq!(t.find(None, &Method::POST, "/api/x").name, "writes");
    assert_eq!(t.find(None, &Method::PUT, "/api").name, "writes");
    assert_eq!(t.find(None, &Method::GET, "/api/x").name, "reads");
    assert_eq!(t.find(None, &Method::DELETE, "/api/x").name, "reads");
}

#[test]
fn method_only_route_matches_every_path_for_that_method() {
    let t = table(vec![route("options").methods(&["OPTIONS"])]);
    assert_eq!(t.find(None, &Method::OPTIONS, "/any/path").name, "options");
    assert_eq!(t.find(None, &Method::GET, "/any/path").name, "default");
}

#[test]
fn extension_methods_match_by_name() {
    let t = table(vec![route("dav").methods(&["PROPFIND"])]);
    let propfind = Method::from_bytes(b"PROPFIND").expect("a token");
    assert_eq!(t.find(None, &propfind, "/").name, "dav");
    assert_eq!(t.find(None, &Method::GET, "/").name, "default");
}

// === Regexes ===

#[test]
fn regex_must_cover_the_whole_path() {
    let t = table(vec![route("numeric").regex("/items/[0-9]+")]);
    assert_eq!(get(&t, "/items/42"), "numeric");
    for path in ["/items/42/edit", "/x/items/42", "/items/", "/items/42a"] {
        assert_eq!(get(&t, path), "default", "{path}");
    }
}

#[test]
fn regex_alternation_is_anchored_as_a_whole() {
    // Without the group, `^/a|/b$` would match any path starting with /a.
    let t = table(vec![route("alt").regex("/a|/b")]);
    assert_eq!(get(&t, "/a"), "alt");
    assert_eq!(get(&t, "/b"), "alt");
    assert_eq!(get(&t, "/a/x"), "default");
    assert_eq!(get(&t, "/x/b"), "default");
}

#[test]
fn several_regexes_match_in_config_order() {
    let t = table(vec![
        route("first").regex("/doc/.*\\.pdf"),
        route("second").regex("/doc/.*"),
        route("third").regex(".*"),
    ]);
    assert_eq!(get(&t, "/doc/a.pdf"), "first");
    assert_eq!(get(&t, "/doc/a.txt"), "second");
    assert_eq!(get(&t, "/other"), "third");
}

#[test]
fn regex_route_respects_host_and_method() {
    let t = table(vec![
        route("api-write")
            .host("api.test")
            .regex("/v[0-9]+/.*")
            .methods(&["POST"]),
        route("rest").prefix("/"),
    ]);
    assert_eq!(
        t.find(Some("api.test"), &Method::POST, "/v2/x").name,
        "api-write"
    );
    assert_eq!(t.find(Some("api.test"), &Method::GET, "/v2/x").name, "rest");
    assert_eq!(
        t.find(Some("app.test"), &Method::POST, "/v2/x").name,
        "rest"
    );
}

// === Default ===

#[test]
fn request_matching_no_route_gets_the_default_policy() {
    let t = table_with_default(vec![route("api").prefix("/api")], AuthMode::Deny);
    let found = t.lookup(None, &Method::GET, "/other");
    assert_eq!(found.index, None);
    assert_eq!(found.rule.name, "default");
    assert_eq!(found.rule.auth, AuthMode::Deny);
    let empty = table(Vec::new());
    assert!(empty.is_empty());
    assert_eq!(empty.find(None, &Method::GET, "/").auth, AuthMode::Login);
}

#[test]
fn lookup_names_the_index_of_the_deciding_route() {
    let t = table(vec![
        route("a").prefix("/a"),
        route("b").prefix("/b"),
        route("c").exact("/c"),
    ]);
    assert_eq!(t.len(), 3);
    assert_eq!(t.lookup(None, &Method::GET, "/b/x").index, Some(1));
    assert_eq!(t.lookup(None, &Method::GET, "/c").index, Some(2));
}

// === Scale ===

/// `count` routes of every kind, each with its own literal, so only one fits a
/// given request.
fn many_routes(count: usize) -> Vec<Route> {
    (0..count)
        .map(|i| {
            let name = format!("r{i}");
            match i % 5 {
                0 => route(&name).prefix(&format!("/svc{i}")),
                1 => route(&name).exact(&format!("/page{i}/view")),
                2 => route(&name).host(&format!("h{i}.example.com")),
                3 => route(&name)
                    .host(&format!("*.t{i}.example.com"))
                    .prefix("/x"),
                _ => route(&name).prefix(&format!("/api/v{i}")).methods(&["GET"]),
            }
        })
        .collect()
}

#[test]
fn ten_thousand_routes_still_find_the_one_that_fits() {
    let routes = many_routes(10_000);
    let t = table(routes.clone());
    let cases = [
        (None, "/svc9995/x", Some(9995)),
        (None, "/page9996/view", Some(9996)),
        (None, "/page9996/view/", None),
        (Some("h9997.example.com"), "/anything", Some(9997)),
        (Some("a.t9998.example.com"), "/x/y", Some(9998)),
        (Some("a.b.t9998.example.com"), "/x/y", None),
        (None, "/api/v9999/users", Some(9999)),
        (None, "/svc10000", None),
    ];
    for (host, path, expected) in cases {
        assert_eq!(
            t.lookup(host, &Method::GET, path).index,
            expected,
            "{host:?} {path}"
        );
        assert_eq!(reference(&routes, host, "GET", path), expected);
    }
}

#[test]
fn many_regexes_match_like_one_at_a_time() {
    let routes: Vec<Route> = (0..300)
        .map(|i| route(&format!("re{i}")).regex(&format!("/re{i}/[a-z]+")))
        .collect();
    let t = table(routes.clone());
    for path in ["/re299/abc", "/re0/x", "/re5/X", "/re12/abc/d"] {
        let expected = reference(&routes, None, "GET", path);
        assert_eq!(t.lookup(None, &Method::GET, path).index, expected, "{path}");
    }
}

// === The index against a linear scan ===

/// The first route that matches, by a plain scan written from SPEC §3 alone (it
/// shares no code with the table, so a bug in one does not hide in the other).
fn reference(routes: &[Route], host: Option<&str>, method: &str, path: &str) -> Option<usize> {
    // `admin.example.com.` is the absolute form of `admin.example.com`.
    let host = host.map(|h| h.trim_end_matches('.'));
    routes.iter().position(|r| {
        let host_ok = match (&r.host, host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(pattern), Some(host)) => match pattern.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => pattern == host,
            },
        };
        let method_ok = r.methods.is_empty() || r.methods.iter().any(|m| m == method);
        let path_ok = if let Some(prefix) = &r.path {
            prefix == "/" || path == prefix || path.starts_with(&format!("{prefix}/"))
        } else if let Some(exact) = &r.path_exact {
            path == exact
        } else if let Some(re) = &r.path_regex {
            re.is_match(path)
        } else {
            true
        };
        host_ok && method_ok && path_ok
    })
}

const HOSTS: &[&str] = &[
    "a.example.com",
    "b.example.com",
    "example.com",
    "a.b.example.com",
    "app.test",
    "x.app.test",
    "a.example.com.",
    "app.test..",
    ".",
];
const HOST_PATTERNS: &[&str] = &[
    "a.example.com",
    "example.com",
    "app.test",
    "*.example.com",
    "*.b.example.com",
    "*.app.test",
    "*.test",
];
const SEGMENTS: &[&str] = &["admin", "api", "v1", "x", "administrator", "a", ""];
const PREFIXES: &[&str] = &[
    "/",
    "/admin",
    "/api",
    "/api/v1",
    "/admin/x",
    "/a",
    "/administrator",
    "/x/admin",
];
const EXACTS: &[&str] = &["/", "/admin", "/admin/", "/api/v1/x", "/a", "/x", "/api/"];
const REGEXES: &[&str] = &[
    "/api/v[0-9]+/.*",
    "/admin.*",
    "/x",
    "/(a|x)/admin",
    ".*",
    "/[a-z]+",
    "/api/.*/x",
];
const METHODS: &[&str] = &["GET", "POST", "DELETE"];

fn any_route() -> impl Strategy<Value = Route> {
    let host = prop::option::of(prop::sample::select(HOST_PATTERNS));
    let path = prop_oneof![
        Just(None),
        prop::sample::select(PREFIXES).prop_map(|p| Some((0, p))),
        prop::sample::select(EXACTS).prop_map(|p| Some((1, p))),
        prop::sample::select(REGEXES).prop_map(|p| Some((2, p))),
    ];
    let methods = prop::sample::subsequence(METHODS, 0..=2);
    (host, path, methods).prop_map(|(host, path, methods)| {
        let mut r = route("r");
        if let Some(host) = host {
            r = r.host(host);
        }
        r = match path {
            Some((0, p)) => r.prefix(p),
            Some((1, p)) => r.exact(p),
            Some((_, p)) => r.regex(p),
            None => r,
        };
        r.methods(&methods)
    })
}

fn any_path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(SEGMENTS), 0..4)
        .prop_map(|segments| format!("/{}", segments.join("/")))
}

fn any_host() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::weighted(0.9, prop::sample::select(HOSTS))
}

fn any_routes() -> impl Strategy<Value = Vec<Route>> {
    prop::collection::vec(any_route(), 0..24).prop_map(|mut routes| {
        for (i, r) in routes.iter_mut().enumerate() {
            r.name = format!("route[{i}]");
        }
        routes
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn index_finds_the_same_route_as_a_linear_first_match_scan(
        routes in any_routes(),
        requests in prop::collection::vec(
            (any_host(), prop::sample::select(METHODS), any_path()), 1..16),
    ) {
        let t = table(routes.clone());
        for (host, method, path) in requests {
            let method = Method::from_bytes(method.as_bytes()).expect("a token");
            let expected = reference(&routes, host, method.as_str(), &path);
            let found = t.lookup(host, &method, &path);
            prop_assert_eq!(found.index, expected, "{:?} {} {}", host, method, path);
            let name = expected.map_or("default".to_owned(), |i| routes[i].name.clone());
            prop_assert_eq!(&found.rule.name, &name);
        }
    }
}

#[test]
fn property_tables_match_often_enough_to_mean_something() {
    // A generator whose requests never match a route would make the property
    // above compare `None` with `None` and pass vacuously.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (any_routes(), any_host(), any_path());
    let mut matched = 0;
    for _ in 0..1000 {
        let tree = strategy.new_tree(&mut runner).expect("a case");
        let (routes, host, path) = tree.current();
        if reference(&routes, host, "GET", &path).is_some_and(|i| i > 0) {
            matched += 1;
        }
    }
    assert!(
        (200..950).contains(&matched),
        "{matched}/1000 matched past the first route"
    );
}

#[test]
fn a_rule_on_get_also_covers_head() {
    // Frameworks answer HEAD with the GET handler (security review, finding 4).
    let t = table(vec![route("reads").prefix("/r").methods(&["GET"])]);
    assert_eq!(t.find(None, &Method::HEAD, "/r").name, "reads");
    assert_eq!(t.find(None, &Method::POST, "/r").name, "default");
}

// === Where a rule sends the request ===

#[test]
fn a_route_naming_an_upstream_gets_its_index_and_the_default_rule_gets_zero() {
    let mut config = base_config().clone();
    let other = config.upstream.clone();
    config.upstreams.insert("grafana".to_owned(), other.clone());
    config.upstreams.insert("reports".to_owned(), other);
    let mut reports = route("reports").prefix("/reports");
    reports.upstream = Some("reports".to_owned());
    reports.strip_prefix = Some("/reports".to_owned());
    let mut grafana = route("grafana").host("grafana.test");
    grafana.upstream = Some("grafana".to_owned());
    let mut named_default = route("named-default").prefix("/d");
    named_default.upstream = Some(config::DEFAULT_UPSTREAM.to_owned());
    config.routes = vec![reports, grafana, named_default, route("plain").prefix("/p")];
    let t = RouteTable::new(&config);
    let names: Vec<&str> = config.all_upstreams().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        ["default", "grafana", "reports"],
        "the order indices count in"
    );

    let upstream_of = |host: Option<&str>, path: &str| t.find(host, &Method::GET, path).upstream;
    assert_eq!(upstream_of(None, "/reports/x"), 2);
    assert_eq!(upstream_of(Some("grafana.test"), "/"), 1);
    assert_eq!(upstream_of(None, "/d"), 0, "upstream = \"default\"");
    assert_eq!(upstream_of(None, "/p"), 0, "no upstream");
    let fallback = t.find(None, &Method::GET, "/elsewhere");
    assert_eq!(fallback.name, "default");
    assert_eq!(fallback.upstream, 0);
    assert_eq!(fallback.strip_prefix, None);
    let reports = t.find(None, &Method::GET, "/reports");
    assert_eq!(reports.strip_prefix.as_deref(), Some("/reports"));
}

#[test]
fn route_and_policy_requirements_carry_every_key() {
    let mut config = base_config().clone();
    let mut r = route("r").prefix("/r");
    r.claims
        .insert("department".to_owned(), vec!["eng".to_owned()]);
    r.source_ips = vec!["10.0.0.0/8".parse().expect("a cidr")];
    r.scopes_any = vec!["read".to_owned()];
    r.scopes_all = vec!["write".to_owned()];
    config.routes = vec![r];
    config
        .policy
        .claims
        .insert("acr".to_owned(), vec!["mfa".to_owned()]);
    config.policy.source_ips = vec!["2001:db8::/32".parse().expect("a cidr")];
    config.policy.scopes_any = vec!["api".to_owned()];
    config.policy.scopes_all = vec!["base".to_owned()];
    let t = RouteTable::new(&config);

    let own = &t.find(None, &Method::GET, "/r").requirements;
    assert_eq!(
        own.claims,
        [("department".to_owned(), vec!["eng".to_owned()])]
    );
    assert_eq!(own.source_ips, config.routes[0].source_ips);
    assert_eq!(own.scopes_any, ["read"]);
    assert_eq!(own.scopes_all, ["write"]);
    assert_eq!(
        t.global.claims,
        [("acr".to_owned(), vec!["mfa".to_owned()])]
    );
    assert_eq!(t.global.source_ips, config.policy.source_ips);
    assert_eq!(t.global.scopes_any, ["api"]);
    assert_eq!(t.global.scopes_all, ["base"]);
    let fallback = &t.find(None, &Method::GET, "/other").requirements;
    assert!(fallback.claims.is_empty() && fallback.source_ips.is_empty());
}

#[test]
fn segments_split_as_str_split_does() {
    for path in ["/", "/a", "/a/b", "/a/b/", "//", "/a//b", "/é/ü/", "x", ""] {
        let ours: Option<Vec<&str>> = segments(path).map(Iterator::collect);
        let std: Option<Vec<&str>> = path.strip_prefix('/').map(|r| r.split('/').collect());
        assert_eq!(ours, std, "{path:?}");
    }
}
