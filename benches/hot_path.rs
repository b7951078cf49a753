//! Micro-benchmarks of the work portcullis does on every request: path
//! normalization, rule matching (10 vs 10 000 routes), header rewriting,
//! bearer-token verification, session lookup and identity signing.
//!
//! ```text
//! cargo bench --bench hot_path -- --warm-up-time 1 --measurement-time 2
//! cargo bench --bench hot_path -- route/          # one group
//! ```
//!
//! Speed is measured here, never asserted in tests (STYLE.md).

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use aws_lc_rs::{digest, signature};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};

use portcullis::auth::claims;
use portcullis::config::{self, AuthMode, Config, Route};
use portcullis::identity::{headers, Identity};
use portcullis::policy::normalize::normalize_str;
use portcullis::policy::route::RouteTable;
use portcullis::proxy::forward::{self, ForwardContext};

// === Path normalization ===

fn normalization(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize");
    // Already normal: the one-scan, one-copy fast path.
    group.bench_function("typical", |b| {
        b.iter(|| normalize_str(black_box("/api/v1/users/42/profile?expand=roles&page=2")))
    });
    // Escapes to decode and keep, dot segments, duplicate slashes and a `;param`.
    group.bench_function("needs_decoding", |b| {
        b.iter(|| {
            normalize_str(black_box(
                "/static//%61ssets/./css/../js/app%2Ejs;v=3/caf%c3%a9?x=%2F",
            ))
        })
    });
    group.finish();
}

// === Rule matching ===

/// A valid config with no routes (the routes are set in code below).
fn base_config() -> Config {
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
client_secret = "bench-secret"
"#;
    std::fs::write(&path, text).expect("write the config");
    config::load_with_env(&path, &[]).expect("the bench config is valid")
}

/// Route `i` of the bench tables; `regexes` false turns every regex but the
/// first into a prefix, to show what the regex count alone costs.
fn route(i: usize, regexes: bool) -> Route {
    let mut r = Route {
        name: format!("route{i}"),
        host: None,
        path: None,
        path_exact: None,
        path_regex: None,
        methods: Vec::new(),
        auth: AuthMode::Login,
        roles_any: vec!["staff".to_owned()],
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
    };
    // A realistic mix: mostly prefixes, some exact pages, per-host and
    // per-tenant routes, method-restricted APIs, and 1 % regexes.
    match i % 10 {
        0..=3 => r.path = Some(format!("/svc{i}/api")),
        4 | 5 => r.path_exact = Some(format!("/pages/{i}/index.html")),
        6 => {
            r.host = Some(format!("app{i}.example.com"));
            r.path = Some("/admin".to_owned());
        }
        7 => r.host = Some(format!("*.tenant{i}.example.com")),
        8 => {
            r.path = Some(format!("/write{i}"));
            r.methods = vec!["POST".to_owned(), "PUT".to_owned()];
        }
        _ if i % 100 == 9 && (regexes || i == 9) => {
            let pattern = format!("^(?:/files{i}/[0-9]+/[a-z]+\\.(png|jpg))$");
            r.path_regex = Some(regex::Regex::new(&pattern).expect("bench regex"));
        }
        _ => r.path = Some(format!("/docs{i}")),
    }
    r
}

fn table(base: &Config, count: usize, regexes: bool) -> RouteTable {
    let mut config = base.clone();
    config.routes = (0..count).map(|i| route(i, regexes)).collect();
    RouteTable::new(&config)
}

/// The last prefix route of a table of `count` routes (`i % 10` in 0..=3).
fn last_prefix_route(count: usize) -> usize {
    (0..count)
        .rev()
        .find(|i| i % 10 <= 3)
        .expect("a prefix route")
}

fn matching(c: &mut Criterion) {
    let base = base_config();
    let mut group = c.benchmark_group("route");
    for count in [10, 10_000] {
        let routes = table(&base, count, true);
        let hit = format!("/svc{}/api/users/42", last_prefix_route(count));
        let expected = format!("route{}", last_prefix_route(count));
        let rule = routes.find(Some("www.example.com"), &Method::GET, &hit);
        assert_eq!(
            rule.name, expected,
            "the hit must be the route near the end"
        );
        group.bench_function(format!("hit_near_end/{count}"), |b| {
            b.iter(|| {
                routes.find(
                    black_box(Some("www.example.com")),
                    &Method::GET,
                    black_box(&hit),
                )
            })
        });
        let miss = "/nothing/here/at/all";
        assert_eq!(
            routes
                .find(Some("www.example.com"), &Method::GET, miss)
                .name,
            "default"
        );
        group.bench_function(format!("miss/{count}"), |b| {
            b.iter(|| {
                routes.find(
                    black_box(Some("www.example.com")),
                    &Method::GET,
                    black_box(miss),
                )
            })
        });
    }
    // The same 10 000 routes with one regex instead of 100: a miss runs the
    // regex set, and its cost grows with the number of regexes.
    let one_regex = table(&base, 10_000, false);
    group.bench_function("miss/10000_one_regex", |b| {
        b.iter(|| {
            one_regex.find(
                black_box(Some("www.example.com")),
                &Method::GET,
                black_box("/nothing/here/at/all"),
            )
        })
    });
    group.finish();
}

// === Header rewriting ===

/// What a browser sends on a same-site navigation, plus two spoofing attempts.
fn browser_headers() -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in [
        ("host", "app.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("referer", "https://app.example.com/dashboard"),
        ("connection", "keep-alive"),
        ("cookie", "_portcullis=ZXhhbXBsZS1zZXNzaW9uLWlkLXdpdGgtMjU2LWJpdHMtb2YtZW50cm9weQ; theme=dark; _ga=GA1.1.123.456"),
        ("upgrade-insecure-requests", "1"),
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-user", "?1"),
        ("priority", "u=0, i"),
        ("x-forwarded-user", "admin"),
        ("x_forwarded_groups", "admins"),
    ] {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    map
}

fn alice() -> Identity {
    Identity {
        sub: "248289761001".to_owned(),
        email: Some("alice@example.com".to_owned()),
        email_verified: true,
        name: Some("Alice Example".to_owned()),
        preferred_username: Some("alice".to_owned()),
        roles: vec!["staff".to_owned(), "admin".to_owned(), "billing".to_owned()],
        ..Identity::default()
    }
}

fn header_rewrite(c: &mut Criterion) {
    let mut group = c.benchmark_group("headers");
    let template = browser_headers();
    let identity = alice();
    let strip_set = headers::StripSet::default();
    let standard = headers::HeaderSet::standard();
    group.bench_function("clone_only", |b| b.iter(|| black_box(template.clone())));
    group.bench_function("identity_strip_and_set", |b| {
        b.iter_batched_ref(
            || template.clone(),
            |map| {
                headers::strip(map, &strip_set);
                headers::set(map, &identity, &standard).expect("no required claim is missing");
            },
            BatchSize::SmallInput,
        )
    });
    let request_id = HeaderValue::from_static("0f5e3c1a9b7d4e2f8a6c0b1d3e5f7a9c");
    let peer_text = HeaderValue::from_static("192.0.2.7");
    let host = HeaderValue::from_static("app.example.com");
    let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().expect("a CIDR")];
    let route = portcullis::admin::metrics::RouteCounters::new("route1");
    group.bench_function("forward_hop_by_hop_cookies_forwarded", |b| {
        b.iter_batched_ref(
            || template.clone(),
            |map| {
                let ctx = ForwardContext {
                    peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
                    peer_text: &peer_text,
                    worker: 0,
                    is_tls: true,
                    host: &host,
                    request_id: &request_id,
                    route: &route,
                    permit: None,
                    identity_headers: None,
                    strip_prefix: None,
                    assertion: None,
                    via_bearer: false,
                    access_token: None,
                    connection_headers: Vec::new(),
                    session_end: None,
                    memo: None,
                };
                forward::remove_hop_by_hop(map);
                forward::strip_own_cookies(map, "_portcullis");
                forward::set_forwarded(map, &ctx, &trusted);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

// === Bearer tokens ===

/// An RS256 access token as a provider would issue it, and the JWK to verify it.
struct SignedToken {
    token: String,
    jwk: Jwk,
}

fn signed_token() -> SignedToken {
    let pair = KeyPair::generate(KeySize::Rsa2048).expect("generate an RSA key");
    let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    let jwk: Jwk = serde_json::from_value(json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "bench-key",
        "n": URL_SAFE_NO_PAD.encode(&components.n),
        "e": URL_SAFE_NO_PAD.encode(&components.e),
    }))
    .expect("a JWK");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "bench-key"});
    let claims = json!({
        "iss": "https://id.example.com/realms/main",
        "sub": "248289761001",
        "aud": ["https://api.example.com", "account"],
        "azp": "mobile-app",
        "client_id": "mobile-app",
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": "4f1c7a8e-2b3d-4e5f-9a0b-1c2d3e4f5a6b",
        "scope": "openid profile email api.read api.write",
        "email": "alice@example.com",
        "email_verified": true,
        "preferred_username": "alice",
        "roles": ["staff", "admin", "billing"],
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; pair.public_modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    SignedToken {
        token: format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)),
        jwk,
    }
}

fn bearer(c: &mut Criterion) {
    let SignedToken { token, jwk } = signed_token();
    let key = DecodingKey::from_jwk(&jwk).expect("a decoding key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&["https://id.example.com/realms/main"]);
    validation.set_audience(&["https://api.example.com"]);
    let roles_claim = vec!["roles".to_owned()];
    let verify = || -> Identity {
        let header = jsonwebtoken::decode_header(&token).expect("a header");
        assert_eq!(header.alg, Algorithm::RS256);
        let data = jsonwebtoken::decode::<Map<String, Value>>(&token, &key, &validation)
            .expect("the token verifies");
        claims::identity(&data.claims, &roles_claim, &[])
    };
    assert_eq!(verify().sub, "248289761001");

    let mut group = c.benchmark_group("bearer");
    // A token seen for the first time: header, RS256 signature, claims.
    group.bench_function("rs256_verify_cold", |b| b.iter(|| black_box(verify())));
    // A token seen before: portcullis's verified-token cache (a dashmap keyed
    // by the token itself: SipHash of it, one comparison, an identity clone).
    let verified = portcullis::auth::bearer::Cache::new(10_000, 16 << 20);
    verified.store(
        &token,
        "https://api.example.com",
        std::sync::Arc::new(verify()),
        i64::MAX,
        0,
    );
    group.bench_function("verified_cache_hit", |b| {
        b.iter(|| {
            verified
                .lookup(black_box(&token), "https://api.example.com", 1)
                .expect("a hit")
        })
    });
    // What the cache paid before it was keyed by the token text: SHA-256 of
    // the token (a fixed-size key, no token kept in memory), then the lookup.
    group.bench_function("cache_key_sha256", |b| {
        b.iter(|| digest::digest(&digest::SHA256, black_box(token.as_bytes())))
    });
    let mut cache: HashMap<[u8; 32], Arc<Identity>> = HashMap::new();
    let key_of = |token: &str| -> [u8; 32] {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        d.as_ref().try_into().expect("SHA-256 is 32 bytes")
    };
    cache.insert(key_of(&token), Arc::new(verify()));
    group.bench_function("cache_hit_sha256_and_map", |b| {
        b.iter(|| cache.get(&key_of(black_box(&token))).cloned())
    });
    group.finish();
}

// === Session lookup ===

/// A lookup in the memory store among 10,000 sessions: hash the cookie's id to
/// its key, find and clone the session (what every session-routed request does).
fn session_lookup(c: &mut Criterion) {
    use futures_util::FutureExt as _;
    use portcullis::session::{MemoryStore, Session, SessionId, SessionStore};

    let clock: Arc<dyn portcullis::clock::Clock> = Arc::new(portcullis::clock::SystemClock);
    let store = MemoryStore::new(100_000, clock);
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
    .unwrap_or(0);
    let session = Session {
        identity: alice(),
        sid: Some("sid-1".to_owned()),
        id_token: "e".repeat(900),
        access_token: Some("a".repeat(900)),
        refresh_token: Some("r".repeat(64)),
        access_expires_at: Some(now + 3600),
        created_at: now,
        last_seen: now,
    };
    let mut ids = Vec::new();
    for _ in 0..10_000 {
        let id = SessionId::generate();
        store
            .save(&id.key(), &session, std::time::Duration::from_secs(3600))
            .now_or_never()
            .expect("the memory store answers at once")
            .expect("saved");
        ids.push(id);
    }
    let cookie = ids[5_000].as_str().to_owned();
    let mut group = c.benchmark_group("session");
    group.bench_function("memory_lookup_of_10000", |b| {
        b.iter(|| {
            let id = SessionId::parse(black_box(&cookie)).expect("an id");
            store
                .load(&id.key())
                .now_or_never()
                .expect("the memory store answers at once")
                .expect("loaded")
        })
    });
    group.finish();
}

// === Identity signing ===

/// `X-Portcullis-Identity`: an ES256 signature per new assertion, and the
/// cached assertion reused for half its lifetime (the common case).
fn identity_signing(c: &mut Criterion) {
    let settings = config::Identity {
        signing_key_file: None,
        ttl: std::time::Duration::from_secs(60),
    };
    let public_url = url::Url::parse("https://app.example.com").expect("url");
    let signer = portcullis::identity::Signer::new(&settings, &public_url).expect("signer");
    let alice = alice();
    let mut group = c.benchmark_group("identity");
    let mut now = 1_700_000_000;
    group.bench_function("es256_sign_fresh", |b| {
        b.iter(|| {
            // Past the reuse window every time: each call signs.
            now += 31;
            signer
                .assertion(&alice, "app.example.com", now)
                .expect("signed")
        })
    });
    signer
        .assertion(&alice, "app.example.com", 1_800_000_000)
        .expect("signed");
    group.bench_function("cached_reuse", |b| {
        b.iter(|| {
            signer
                .assertion(black_box(&alice), "app.example.com", 1_800_000_001)
                .expect("cached")
        })
    });
    group.finish();
}

criterion_group!(
    hot_path,
    normalization,
    matching,
    header_rewrite,
    bearer,
    session_lookup,
    identity_signing
);
criterion_main!(hot_path);
