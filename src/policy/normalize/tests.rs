use super::*;
use http::{Uri, Version};
use proptest::prelude::*;

/// The reason a target was refused, as a short name, so tables can say which
/// check must fire (a different check firing would hide a deleted one).
fn kind(error: &PathError) -> &'static str {
    match error {
        PathError::AbsoluteForm { .. } => "absolute-form",
        PathError::AuthorityForm { .. } => "authority-form",
        PathError::AsteriskForm => "asterisk-form",
        PathError::NotOriginForm { .. } => "not-origin-form",
        PathError::InvalidByte { .. } => "invalid-byte",
        PathError::Backslash { .. } => "backslash",
        PathError::Fragment { .. } => "fragment",
        PathError::MalformedEscape { .. } => "malformed-escape",
        PathError::EncodedSlash { .. } => "encoded-slash",
        PathError::EncodedBackslash { .. } => "encoded-backslash",
        PathError::EncodedSemicolon { .. } => "encoded-semicolon",
        PathError::EncodedDelimiter { .. } => "encoded-delimiter",
        PathError::EncodedNul { .. } => "encoded-nul",
        PathError::EncodedControl { .. } => "encoded-control",
        PathError::DoubleEncoding { .. } => "double-encoding",
        PathError::InvalidUtf8 { .. } => "invalid-utf8",
        PathError::DotSegmentWithParams { .. } => "dot-segment-with-params",
        PathError::EmptySegmentWithParams { .. } => "empty-segment-with-params",
        PathError::AboveRoot { .. } => "above-root",
        PathError::InvalidQueryByte { .. } => "invalid-query-byte",
        PathError::TrailingDotOrSpace { .. } => "trailing-dot-or-space",
    }
}

/// `input`, then the expected path, match_path and query.
const ACCEPTED: &[(&str, &str, &str, Option<&str>)] = &[
    ("/", "/", "/", None),
    ("/admin", "/admin", "/admin", None),
    ("/admin/", "/admin/", "/admin/", None),
    ("/administrator", "/administrator", "/administrator", None),
    ("//admin", "/admin", "/admin", None),
    ("///admin//x//", "/admin/x/", "/admin/x/", None),
    ("/%61dmin", "/admin", "/admin", None),
    ("/%41DMIN", "/ADMIN", "/ADMIN", None),
    ("/a%2db%2Ec%5fd%7E%7e", "/a-b.c_d~~", "/a-b.c_d~~", None),
    ("/a%3ab%3Ac", "/a%3Ab%3Ac", "/a%3Ab%3Ac", None),
    ("/a%20b", "/a%20b", "/a%20b", None),
    (
        "/a%3ab%40c%2B%24",
        "/a%3Ab%40c%2B%24",
        "/a%3Ab%40c%2B%24",
        None,
    ),
    ("/a?x=%23%3F", "/a", "/a", Some("x=%23%3F")),
    ("/caf%c3%a9", "/caf%C3%A9", "/caf%C3%A9", None),
    ("/%F0%9F%A6%80", "/%F0%9F%A6%80", "/%F0%9F%A6%80", None),
    ("/100%25", "/100%25", "/100%25", None),
    ("/100%25/x", "/100%25/x", "/100%25/x", None),
    ("/a%25zz", "/a%25zz", "/a%25zz", None),
    ("/a/./b", "/a/b", "/a/b", None),
    ("/a/b/../c", "/a/c", "/a/c", None),
    ("/a/b/..", "/a/", "/a/", None),
    ("/a/b/.", "/a/b/", "/a/b/", None),
    ("/a/b/../..", "/", "/", None),
    ("/a/b/../../", "/", "/", None),
    ("/a/%2e%2e/b", "/b", "/b", None),
    ("/a/%2E/b", "/a/b", "/a/b", None),
    ("/a/.%2e/admin", "/admin", "/admin", None),
    ("/.", "/", "/", None),
    ("/./", "/", "/", None),
    ("/a//..", "/", "/", None),
    (
        "/admin;jsessionid=1/x",
        "/admin;jsessionid=1/x",
        "/admin/x",
        None,
    ),
    ("/admin;x", "/admin;x", "/admin", None),
    ("/admin;", "/admin;", "/admin", None),
    ("/admin;x/", "/admin;x/", "/admin/", None),
    ("/a;b;c/d;e", "/a;b;c/d;e", "/a/d", None),
    ("/admin;x/..", "/", "/", None),
    ("/a;p=%41%2c", "/a;p=A%2C", "/a", None),
    ("/a;p=..", "/a;p=..", "/a", None),
    ("/x?", "/x", "/x", Some("")),
    ("/x?a=1&b=%2F", "/x", "/x", Some("a=1&b=%2F")),
    ("/x?a=..%2f../;x", "/x", "/x", Some("a=..%2f../;x")),
    ("/x?a=%zz&b=?c", "/x", "/x", Some("a=%zz&b=?c")),
    ("//a/./b?q=%41", "/a/b", "/a/b", Some("q=%41")),
    (
        "/a:b@c!$&'()*+,=",
        "/a:b@c!$&'()*+,=",
        "/a:b@c!$&'()*+,=",
        None,
    ),
    (
        "/json/{\"a\"}|^",
        "/json/{\"a\"}|^",
        "/json/{\"a\"}|^",
        None,
    ),
];

#[test]
fn accepts_origin_form_targets_and_returns_their_normal_form() {
    for &(input, path, match_path, query) in ACCEPTED {
        let target = normalize_str(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(target.path().as_str(), path, "path of {input}");
        assert_eq!(target.match_path(), match_path, "match_path of {input}");
        assert_eq!(target.query(), query, "query of {input}");
    }
}

#[test]
fn accepts_the_same_targets_through_a_parsed_uri() {
    for &(input, ..) in ACCEPTED {
        let Ok(uri) = input.parse::<Uri>() else {
            continue; // http::Uri refuses some bytes itself; normalize_str covers those
        };
        let expected = normalize_str(input);
        assert_eq!(
            normalize(&uri, Version::HTTP_11),
            expected,
            "HTTP/1.1 {input}"
        );
        let h2: Uri = format!("https://example.com{input}").parse().unwrap();
        assert_eq!(normalize(&h2, Version::HTTP_2), expected, "HTTP/2 {input}");
    }
}

/// Hostile targets from the published bypass families, and the check that must
/// refuse each one.
const REJECTED: &[(&str, &str)] = &[
    // Segments ending in a dot or an encoded space (IIS and Windows drop them).
    ("/..a/b../...", "trailing-dot-or-space"),
    ("/admin.", "trailing-dot-or-space"),
    ("/admin%2e", "trailing-dot-or-space"),
    ("/admin%20", "trailing-dot-or-space"),
    ("/admin./x", "trailing-dot-or-space"),
    // Encoded separators: the app decodes a boundary the rules never saw.
    ("/admin%2Fx", "encoded-slash"),
    ("/admin%2fx", "encoded-slash"),
    ("/public/..%2Fadmin", "encoded-slash"),
    ("/public/%2e%2e%2fadmin", "encoded-slash"),
    ("/admin%5Cx", "encoded-backslash"),
    ("/admin%5cx", "encoded-backslash"),
    ("/public/..%5cadmin", "encoded-backslash"),
    ("/admin%3Bx/secret", "encoded-semicolon"),
    ("/public/..%3b/admin", "encoded-semicolon"),
    // Encoded `#` and `?`: a stack that decodes, then parses, ends the path
    // there (oauth2-proxy GHSA-pxq7-h93f-9jrg, Traefik GHSA-fvhj-4qfh-q2hm).
    ("/public/secret%23/ok", "encoded-delimiter"),
    ("/public/x%23/../admin", "encoded-delimiter"),
    ("/admin%23", "encoded-delimiter"),
    ("/%23/admin", "encoded-delimiter"),
    ("/public/a%3F/ok", "encoded-delimiter"),
    ("/public/a%3f/../admin", "encoded-delimiter"),
    ("/public/x;p=%23/ok", "encoded-delimiter"),
    ("/a%3fb%23c", "encoded-delimiter"),
    // Raw backslash (IIS, Windows-hosted apps).
    ("/\\admin", "backslash"),
    ("/public\\..\\admin", "backslash"),
    ("\\admin", "not-origin-form"),
    // Path parameters (Tomcat `..;`, Spring).
    ("/public/..;/admin", "dot-segment-with-params"),
    ("/public/.;/admin", "dot-segment-with-params"),
    ("/public/..;x=1/admin", "dot-segment-with-params"),
    ("/public/%2e%2e;/admin", "dot-segment-with-params"),
    ("/..;/admin", "dot-segment-with-params"),
    ("/;x/admin", "empty-segment-with-params"),
    ("/;/admin", "empty-segment-with-params"),
    ("//;x/admin", "empty-segment-with-params"),
    ("/admin/;", "empty-segment-with-params"),
    // Double encoding: an app that decodes twice.
    ("/%252e%252e/admin", "double-encoding"),
    ("/public/%252e%252e/admin", "double-encoding"),
    ("/admin%252Fx", "double-encoding"),
    ("/%2561dmin", "double-encoding"),
    ("/%25%32%65%25%32%65/admin", "double-encoding"),
    ("/a%25%34%31", "double-encoding"),
    // NUL and control bytes, encoded and raw.
    ("/admin%00", "encoded-nul"),
    ("/admin%00.html", "encoded-nul"),
    ("/admin%0a", "encoded-control"),
    ("/admin%0D%0AX-Injected:%201", "encoded-control"),
    ("/admin%1f", "encoded-control"),
    ("/admin%7F", "encoded-control"),
    ("/admin\0", "invalid-byte"),
    ("/admin\tx", "invalid-byte"),
    ("/admin x", "invalid-byte"),
    ("/admin\r\nX-Injected: 1", "invalid-byte"),
    ("/admin\x7f", "invalid-byte"),
    ("/adm\u{ed}n", "invalid-byte"),
    // Dot segments above the root.
    ("/..", "above-root"),
    ("/../admin", "above-root"),
    ("/public/../../admin", "above-root"),
    ("/%2e%2e/admin", "above-root"),
    ("/%2E%2E/admin", "above-root"),
    ("/.%2e/admin", "above-root"),
    ("/a/b/../../../etc/passwd", "above-root"),
    ("//../admin", "above-root"),
    // Malformed escapes, IIS `%u`.
    ("/admin%", "malformed-escape"),
    ("/admin%2", "malformed-escape"),
    ("/admin%zz", "malformed-escape"),
    ("/admin%u002f", "malformed-escape"),
    ("/admin%%32%46", "malformed-escape"),
    ("/admin%C3%A", "malformed-escape"),
    // Percent-encoded bytes that are not UTF-8 (overlong dot and slash).
    ("/%C0%AE%C0%AE/admin", "invalid-utf8"),
    ("/admin%C0%AFx", "invalid-utf8"),
    ("/admin%c1%9c", "invalid-utf8"),
    ("/admin%E0%80%AF", "invalid-utf8"),
    ("/admin%F0%80%80%AF", "invalid-utf8"),
    ("/admin%ED%A0%80", "invalid-utf8"),
    ("/admin%ff", "invalid-utf8"),
    ("/admin%80", "invalid-utf8"),
    ("/admin%C3", "invalid-utf8"),
    ("/admin%C3x", "invalid-utf8"),
    ("/admin%C3%41", "invalid-utf8"),
    // Fragments (http::Uri drops them; a forward-auth header may carry one).
    ("/admin#x", "fragment"),
    ("/public#/../admin", "fragment"),
    ("/public?x#/../admin", "fragment"),
    // Queries that would corrupt the forwarded request line.
    ("/admin?a b", "invalid-query-byte"),
    ("/admin?a\0", "invalid-query-byte"),
    ("/admin?a\r\nX-Injected: 1", "invalid-query-byte"),
    ("/admin?caf\u{e9}", "invalid-query-byte"),
    ("/admin?a\x7f", "invalid-query-byte"),
    // Not origin-form.
    ("http://evil.example/admin", "absolute-form"),
    ("HTTPS://internal:8443/admin", "absolute-form"),
    ("*", "asterisk-form"),
    ("admin", "not-origin-form"),
    ("", "not-origin-form"),
    ("?x=1", "not-origin-form"),
    ("example.com:443", "not-origin-form"),
];

#[test]
fn rejects_targets_that_cannot_be_normalized_safely() {
    for &(input, expected) in REJECTED {
        match normalize_str(input) {
            Ok(target) => panic!("{input:?} must be rejected, got {target:?}"),
            Err(error) => assert_eq!(kind(&error), expected, "{input:?}: {error}"),
        }
    }
}

#[test]
fn rejects_the_same_targets_through_a_parsed_uri() {
    for &(input, expected) in REJECTED {
        if input.contains('#') || !input.starts_with('/') {
            continue; // http::Uri drops fragments; other forms have their own tests
        }
        // A target http::Uri refuses never reaches normalize: hyper answers 400.
        if let Ok(uri) = input.parse::<Uri>() {
            let error = normalize(&uri, Version::HTTP_11).expect_err(input);
            assert_eq!(kind(&error), expected, "HTTP/1.1 {input:?}: {error}");
        }
        if let Ok(uri) = format!("https://example.com{input}").parse::<Uri>() {
            let error = normalize(&uri, Version::HTTP_2).expect_err(input);
            assert_eq!(kind(&error), expected, "HTTP/2 {input:?}: {error}");
        }
    }
}

#[test]
fn http_uri_accepts_a_raw_backslash_so_normalize_must_refuse_it() {
    // The check in this module is the only one: hyper lets `\` through.
    let uri: Uri = "/public\\..\\admin".parse().unwrap();
    let error = normalize(&uri, Version::HTTP_11).unwrap_err();
    assert_eq!(kind(&error), "backslash");
}

#[test]
fn rejects_absolute_form_on_http1() {
    for input in [
        "http://example.com/admin",
        "https://example.com/",
        "http://example.com",
        "http://example.com/public?x=1",
        "http://user@example.com:8080/admin",
    ] {
        let uri: Uri = input.parse().unwrap();
        for version in [Version::HTTP_09, Version::HTTP_10, Version::HTTP_11] {
            let error = normalize(&uri, version).unwrap_err();
            assert_eq!(kind(&error), "absolute-form", "{version:?} {input}");
        }
    }
}

#[test]
fn rejects_authority_form_on_http1_and_http2() {
    let uri: Uri = "example.com:443".parse().unwrap();
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let error = normalize(&uri, version).unwrap_err();
        assert_eq!(kind(&error), "authority-form", "{version:?}");
    }
}

#[test]
fn rejects_asterisk_form_on_http1_and_http2() {
    let uri: Uri = "*".parse().unwrap();
    for version in [Version::HTTP_10, Version::HTTP_11, Version::HTTP_2] {
        let error = normalize(&uri, version).unwrap_err();
        assert_eq!(kind(&error), "asterisk-form", "{version:?}");
    }
}

#[test]
fn accepts_http2_uri_with_scheme_and_authority() {
    let uri: Uri = "https://app.example.com/a/%2e%2e//admin;x/%3a?q=%2F#frag"
        .parse()
        .unwrap();
    let target = normalize(&uri, Version::HTTP_2).unwrap();
    assert_eq!(target.path().as_str(), "/admin;x/%3A");
    assert_eq!(target.match_path(), "/admin/%3A");
    assert_eq!(target.query(), Some("q=%2F"));
    assert_eq!(target.path_and_query(), "/admin;x/%3A?q=%2F");
}

#[test]
fn http2_uri_is_checked_like_http1() {
    let uri: Uri = "https://app.example.com/public/..%2Fadmin".parse().unwrap();
    let error = normalize(&uri, Version::HTTP_2).unwrap_err();
    assert_eq!(kind(&error), "encoded-slash");
}

#[test]
fn path_and_query_joins_the_normal_path_and_the_verbatim_query() {
    for (input, expected) in [
        ("/a/../b", "/b"),
        ("/a?", "/a?"),
        ("/%61?x=%61&y", "/a?x=%61&y"),
        ("/a;p/./b?q", "/a;p/b?q"),
    ] {
        assert_eq!(
            normalize_str(input).unwrap().path_and_query(),
            expected,
            "{input}"
        );
    }
}

#[test]
fn error_messages_are_lowercase_and_name_the_offending_piece() {
    for (input, piece) in [
        ("/admin%2fx", "%2f"),
        ("/a/%252e", "%252e"),
        ("/..;x/a", "..;x"),
        ("/admin%zz", "%zz"),
        ("/admin%C0%AF", "%C0"),
        ("/a/../..", "/a/../.."),
        ("/a\tb", "0x09"),
        ("http://evil/x", "http://evil/x"),
    ] {
        let message = normalize_str(input).unwrap_err().to_string();
        assert!(message.contains(piece), "{message:?} must name {piece:?}");
        let first = message.chars().next().unwrap();
        assert!(
            !first.is_uppercase() && !message.ends_with('.'),
            "{message:?}"
        );
    }
}

// Models of how upstream stacks read a path, for the properties below.

/// Percent-decodes everything once, lossily, as most app frameworks do.
fn decode(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// Cuts every segment at its first `;`, as servlet containers do.
fn cut_params(path: &str) -> String {
    path.split('/')
        .map(|segment| segment.split(';').next().unwrap_or(segment))
        .collect::<Vec<_>>()
        .join("/")
}

/// Merges slashes and resolves dot segments, clamping at the root as lenient
/// stacks do.
fn resolve(path: &str) -> String {
    let mut stack = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            name => stack.push(name),
        }
    }
    format!("/{}", stack.join("/"))
}

/// What an upstream routes on, in each order real stacks apply the steps in.
fn upstream_views(path: &str) -> [String; 3] {
    [
        resolve(&decode(&cut_params(path))), // Tomcat: cut, decode, resolve
        resolve(&cut_params(&decode(path))), // decode first, then cut
        resolve(&cut_params(&decode(&decode(path)))), // decodes twice
    ]
}

/// Returns true if and only if `path` is `/admin` or below it, segment-wise.
fn is_under_admin(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// Pieces that build hostile targets: the bypass families and their near misses.
const TOKENS: &[&str] = &[
    "/", "//", "admin", "adm", "in", "dmin", "a", ".", "..", "%2e", "%2E", "%2e%2e", ";", ";x",
    ";a=1", "%61", "%41", "%3a", "%3B", "%2F", "%2f", "%5C", "%25", "%2525", "%252e", "%2561",
    "61", "2e", "%32", "%65", "%00", "%0a", "%C3%A9", "%c3", "%C0%AF", "%C0%AE", "\\", "#", "~",
    "%7e", "%", "%z", "%20", " ", "?", "?q=1", "\u{e9}", "\t", "x", "\u{7f}",
];

/// Pieces of one segment that are mostly accepted, so that the properties see
/// many normal paths near `/admin` and not only refusals.
const SEGMENT_PIECES: &[&str] = &[
    "admin", "adm", "in", "dmin", "public", "x", "%61", "%41", "61", "2e", "%2e", "%2E", ".", "..",
    ";", ";x", ";a=..", "%3B", "%25", "%2561", "%3a", "%2F", "%C3%A9", "~", "%7e",
];

/// Targets from the bypass families: mostly refused, they test the refusals.
fn hostile_target() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(TOKENS), 0..12)
            .prop_map(|tokens| format!("/{}", tokens.concat())),
        prop::collection::vec(0x20u8..0x7F, 0..24)
            .prop_map(|bytes| format!("/{}", String::from_utf8_lossy(&bytes))),
    ]
}

/// Targets built segment by segment under a prefix: mostly accepted, they test
/// what an accepted path means.
fn plausible_target() -> impl Strategy<Value = String> {
    let segment = prop::collection::vec(prop::sample::select(SEGMENT_PIECES), 0..4)
        .prop_map(|pieces| pieces.concat());
    (
        prop::sample::select(&["/", "//", "/public/", "/a/b/"][..]),
        prop::collection::vec(segment, 0..6),
    )
        .prop_map(|(prefix, segments)| format!("{prefix}{}", segments.join("/")))
}

fn any_target() -> impl Strategy<Value = String> {
    prop_oneof![hostile_target(), plausible_target()]
}

/// Counts how many of 1000 targets from `strategy` are accepted.
fn accepted_per_thousand(strategy: impl Strategy<Value = String>) -> usize {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    (0..1000)
        .filter_map(|_| strategy.new_tree(&mut runner).ok())
        .filter(|tree| normalize_str(&tree.current()).is_ok())
        .count()
}

#[test]
fn property_generators_reach_both_accepted_and_refused_targets() {
    // The properties below only say something about accepted targets; a
    // generator whose targets are all refused would make them pass vacuously.
    let plausible = accepted_per_thousand(plausible_target());
    let hostile = accepted_per_thousand(hostile_target());
    assert!(
        (300..900).contains(&plausible),
        "plausible: {plausible}/1000 accepted"
    );
    assert!(
        (100..900).contains(&hostile),
        "hostile: {hostile}/1000 accepted"
    );
}

/// Returns true if and only if `%` at `at` starts an escape of an unreserved byte.
fn escapes_unreserved(path: &str, at: usize) -> bool {
    path.get(at + 1..at + 3)
        .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        .is_some_and(is_unreserved)
}

/// The invariants of a normal path, checked on both `path` and `match_path`.
fn assert_nothing_ambiguous(path: &str) -> Result<(), TestCaseError> {
    prop_assert!(path.starts_with('/'), "{path}");
    prop_assert!(!path.contains("//"), "{path}");
    for segment in path.split('/') {
        let name = segment.split(';').next().unwrap_or(segment);
        prop_assert!(name != "." && name != "..", "dot segment in {path}");
    }
    for (at, _) in path.match_indices('%') {
        let hex = path.get(at + 1..at + 3).unwrap_or("");
        prop_assert!(
            hex.len() == 2
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
            "bad escape in {path}"
        );
        prop_assert!(!escapes_unreserved(path, at), "unreserved escape in {path}");
        prop_assert!(
            !matches!(hex, "2F" | "5C" | "00" | "3B"),
            "forbidden escape in {path}"
        );
        prop_assert!(
            find_double_encoding(path).is_none(),
            "double encoding in {path}"
        );
    }
    prop_assert!(
        path.bytes()
            .all(|b| (0x21..=0x7E).contains(&b) && b != b'\\'),
        "{path}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn normalizing_a_normal_target_returns_it_unchanged(input in any_target()) {
        if let Ok(first) = normalize_str(&input) {
            let again = normalize_str(&first.path_and_query());
            prop_assert_eq!(again, Ok(first.clone()));
            let path_only = normalize_str(first.path().as_str()).map(|t| t.path().clone());
            prop_assert_eq!(path_only, Ok(first.path().clone()));
        }
    }

    #[test]
    fn normal_paths_hold_nothing_ambiguous(input in any_target()) {
        if let Ok(target) = normalize_str(&input) {
            assert_nothing_ambiguous(target.path().as_str())?;
            assert_nothing_ambiguous(target.match_path())?;
            prop_assert!(!target.match_path().contains(';'));
        }
    }

    #[test]
    fn params_never_change_what_rules_match(input in any_target(), picks in prop::collection::vec(any::<bool>(), 8)) {
        let Ok(target) = normalize_str(&input) else { return Ok(()) };
        // Add `;p` to some non-empty segments of the normal path.
        let mut segments: Vec<String> = target.path().as_str().split('/').map(str::to_owned).collect();
        for (segment, pick) in segments.iter_mut().skip(1).zip(&picks) {
            if *pick && !segment.is_empty() {
                segment.push_str(";p=1");
            }
        }
        let with_params = normalize_str(&segments.join("/"));
        prop_assert_eq!(with_params.as_ref().map(Target::match_path), Ok(target.match_path()));
    }

    #[test]
    fn rules_see_admin_exactly_when_an_upstream_would(input in any_target()) {
        let Ok(target) = normalize_str(&input) else { return Ok(()) };
        let rules_see_admin = is_under_admin(target.match_path());
        for view in upstream_views(target.path().as_str()) {
            prop_assert_eq!(is_under_admin(&view), rules_see_admin, "upstream reads {} as {}", target.path().as_str(), view);
        }
    }

    #[test]
    fn every_upstream_reads_the_path_that_rules_matched(input in any_target()) {
        let Ok(target) = normalize_str(&input) else { return Ok(()) };
        // Not resolved: rules match `match_path` as it is, so a dot segment
        // left in it must show up as a difference.
        let decoded = decode(target.match_path());
        let rules_read = match decoded.strip_suffix('/') {
            Some(trimmed) if !trimmed.is_empty() => trimmed.to_owned(),
            _ => decoded,
        };
        for view in upstream_views(target.path().as_str()) {
            prop_assert_eq!(&view, &rules_read, "upstream reads {}", target.path().as_str());
        }
    }

    #[test]
    fn uri_and_string_targets_normalize_alike(input in any_target()) {
        prop_assume!(!input.contains('#'));
        if let Ok(uri) = input.parse::<Uri>() {
            prop_assert_eq!(normalize(&uri, Version::HTTP_11), normalize_str(&input));
        }
        if let Ok(uri) = format!("https://example.com{input}").parse::<Uri>() {
            prop_assert_eq!(normalize(&uri, Version::HTTP_2), normalize_str(&input));
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_rewrite(input in any_target()) {
        let path = input.split('?').next().unwrap_or("/");
        if is_already_normal(path) {
            prop_assert_eq!(rewrite_path(path), Ok(path.to_owned()));
        }
    }
}

#[test]
fn only_a_target_already_in_normal_form_is_verbatim() {
    for verbatim in [
        "/",
        "/a",
        "/a/b/",
        "/a.b/c",
        "/x-y_z~/0",
        "/a?b=%2F&c",
        "/.well-known/x",
    ] {
        let target = normalize_str(verbatim).expect("a normal target");
        assert!(target.is_verbatim(), "{verbatim}");
        assert_eq!(target.path_and_query(), verbatim);
    }
    for rewritten in [
        "//", "/a//b", "/a/./b", "/a/../b", "/%61", "/a;x", "/a/.", "/a/..", "/..",
    ] {
        if let Ok(target) = normalize_str(rewritten) {
            assert!(!target.is_verbatim(), "{rewritten}");
        }
    }
    for refused in ["/admin.", "/admin./x", "/a/b.?q"] {
        assert!(normalize_str(refused).is_err(), "{refused}");
    }
}
