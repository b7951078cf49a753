//! Step 1 of the request path: turn the request target into the one canonical
//! path that rules match and the upstream receives (SPEC §3).
//!
//! This module owns the request-target grammar and nothing else: it does no I/O,
//! knows no routes and picks no status code (the proxy maps every [`PathError`]
//! to 400).
//!
//! # Security
//!
//! Route rules match [`Target::match_path`] and the upstream receives
//! [`Target::path`]. Any place where two HTTP stacks may read one path two ways
//! is a role-rule bypass (oauth2-proxy, Pomerium, Envoy, Spring, Tomcat and nginx
//! have all shipped one), so a target is either rewritten into the single
//! spelling every stack agrees on, or refused:
//!
//! - escapes of unreserved characters are decoded (`/%61dmin` is `/admin`) and
//!   every other escape is kept with uppercase hex (RFC 3986 §6.2.2);
//! - escapes that some stack would turn into a delimiter are refused: `%2F`,
//!   `%5C`, `%3B`, `%23` and `%3F` (a decoded `#` or `?` ends the path for a
//!   stack that decodes before it parses), NUL and other controls, `%25` before two hex digits (an app
//!   that decodes twice), and percent-encoded bytes that are not UTF-8 (overlong
//!   `%C0%AF` is `/` to a lenient decoder);
//! - runs of `/` are merged and dot segments are resolved after decoding
//!   (RFC 3986 §5.2.4); `..` above the root is refused, never clamped;
//! - `;params` stay in the forwarded path but are cut from the path rules see,
//!   because servlet containers ignore them (`/admin;x/y` is `/admin/y` there);
//!   `..;` and `/;x` are refused, because Tomcat reads `..;` as `..`.

#[cfg(test)]
mod tests;

/// A request path that has been through [`normalize`]: unreserved escapes decoded
/// and dot segments resolved, with nothing ambiguous left.
///
/// Its field is private, so this module is the only constructor. It is exactly
/// what the upstream receives (SPEC §3).
///
/// Shared rather than copied: the access log and the forwarded request keep it
/// without another allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalizedPath(std::sync::Arc<str>);

impl NormalizedPath {
    /// The path, always starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The normalized request target: what rules match and what the upstream receives.
/// Two targets are equal when they say the same, however they were spelled.
#[derive(Clone, Debug, Eq)]
pub struct Target {
    path: NormalizedPath,
    /// `path` without `;params`; `None` when `path` has no `;` (the common
    /// case), so that case costs no second allocation.
    match_path: Option<String>,
    query: Option<String>,
    /// The path was already in normal form: `path` and `query` are the
    /// target's own text, byte for byte, so its bytes can be forwarded as
    /// they came.
    is_verbatim: bool,
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.match_path == other.match_path && self.query == other.query
    }
}

impl Target {
    /// The normalized path: exactly what the upstream receives.
    pub fn path(&self) -> &NormalizedPath {
        &self.path
    }

    /// The path rules match: [`Target::path`] with every segment cut at its first
    /// `;`, so `/admin;jsessionid=1/x` matches as `/admin/x`.
    ///
    /// Servlet containers drop `;params` before mapping a request, so a rule on
    /// `/admin` must see `/admin;x/y` as `/admin/y`.
    pub fn match_path(&self) -> &str {
        self.match_path.as_deref().unwrap_or(self.path.as_str())
    }

    /// The query without its `?`, byte for byte as the client sent it; `Some("")`
    /// for a bare `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// Returns true if and only if the normalized path and query are exactly
    /// the target as received (nothing decoded, merged or resolved).
    pub fn is_verbatim(&self) -> bool {
        self.is_verbatim
    }

    /// The normalized path and the query, for the forwarded request line.
    pub fn path_and_query(&self) -> String {
        self.path_and_query_after("")
    }

    /// `prefix` followed by [`Target::path_and_query`], in one allocation.
    pub fn path_and_query_after(&self, prefix: &str) -> String {
        let path = self.path.as_str();
        let query_len = self.query.as_ref().map_or(0, |q| q.len() + 1);
        let mut out = String::with_capacity(prefix.len() + path.len() + query_len);
        out.push_str(prefix);
        out.push_str(path);
        if let Some(query) = &self.query {
            out.push('?');
            out.push_str(query);
        }
        out
    }
}

/// Why a request target was refused. Logged in full; the client gets a plain 400.
///
/// Offsets count bytes from the start of the target as given to
/// [`normalize_str`] (or the path-and-query of the `Uri` given to [`normalize`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// An HTTP/1.x request carried an absolute-form target (`http://host/x`,
    /// RFC 9112 §3.2.2), or a forward-auth target looked like one. Only a forward
    /// proxy takes these, and the host in them would bypass host rules.
    #[error("absolute-form request target {target:?} is not accepted")]
    AbsoluteForm { target: String },
    /// An authority-form target (`host:port`, CONNECT, RFC 9112 §3.2.3): a tunnel
    /// request, which this proxy does not serve.
    #[error("authority-form request target {target:?} is not accepted")]
    AuthorityForm { target: String },
    /// The asterisk-form target `*` (server-wide OPTIONS, RFC 9112 §3.2.4): it names
    /// no path a rule could match.
    #[error("asterisk-form request target \"*\" is not accepted")]
    AsteriskForm,
    /// The target is empty or does not start with `/` (and is none of the forms above).
    #[error("request target {target:?} does not start with \"/\"")]
    NotOriginForm { target: String },
    /// A raw byte in the path outside visible ASCII (0x21–0x7E): a control byte,
    /// space, DEL or a non-ASCII byte.
    #[error("path byte 0x{byte:02X} at offset {offset} is not visible ascii")]
    InvalidByte { byte: u8, offset: usize },
    /// A raw `\` in the path: IIS and some Windows-hosted apps read it as `/`.
    #[error("raw backslash in path at offset {offset}")]
    Backslash { offset: usize },
    /// A raw `#` in the target. Request targets carry no fragment
    /// (RFC 9112 §3.2), and a stack that stops at `#` reads a different path.
    #[error("fragment delimiter \"#\" in request target at offset {offset}")]
    Fragment { offset: usize },
    /// A `%` not followed by two hex digits (this includes IIS-style `%u002F`).
    #[error("malformed percent-escape {escape:?}")]
    MalformedEscape { escape: String },
    /// `%2F`: an app that decodes it sees a segment boundary that rules did not.
    #[error("encoded slash {escape:?} in path")]
    EncodedSlash { escape: String },
    /// `%5C`: an app that decodes it and treats `\` as `/` sees another path.
    #[error("encoded backslash {escape:?} in path")]
    EncodedBackslash { escape: String },
    /// `%3B`: an app that decodes before cutting `;params` cuts where rules did not.
    #[error("encoded semicolon {escape:?} in path")]
    EncodedSemicolon { escape: String },
    /// `%23` or `%3F`: a stack that decodes the path and then parses it again
    /// ends the path at the decoded `#` or `?`, so `/public/x%23/../admin` is
    /// `/public/x` to it while rules saw `/admin` (oauth2-proxy
    /// GHSA-pxq7-h93f-9jrg, Traefik GHSA-fvhj-4qfh-q2hm, Envoy CVE-2021-32779).
    #[error("encoded path delimiter {escape:?} in path")]
    EncodedDelimiter { escape: String },
    /// `%00`: C and Java stacks may end the path there.
    #[error("encoded nul {escape:?} in path")]
    EncodedNul { escape: String },
    /// An escape of a control byte (`%01`–`%1F`, `%7F`): header injection and
    /// log forgery once decoded.
    #[error("encoded control byte {escape:?} in path")]
    EncodedControl { escape: String },
    /// `%25` followed by two hex digits after decoding (`%252e`): an app that
    /// decodes twice sees a different path than rules did.
    #[error("double percent-encoding {escape:?} in path")]
    DoubleEncoding { escape: String },
    /// Percent-encoded bytes that are not UTF-8, such as the overlong `%C0%AF`
    /// that a lenient decoder reads as `/`.
    #[error("percent-encoded bytes {escape:?} are not utf-8")]
    InvalidUtf8 { escape: String },
    /// A segment whose part before `;` is `.` or `..` (`..;`, `.;x`): Tomcat
    /// resolves it as a dot segment.
    #[error("dot segment with parameters {segment:?} in path")]
    DotSegmentWithParams { segment: String },
    /// A segment that is empty before its `;` (`/;x/admin`): apps disagree on
    /// whether it is a segment at all.
    #[error("empty segment with parameters {segment:?} in path")]
    EmptySegmentWithParams { segment: String },
    /// A `..` that would climb above the root; it is refused rather than clamped,
    /// because a stack that clamps differently would read another path.
    #[error("dot segment climbs above the root in {path:?}")]
    AboveRoot { path: String },
    /// A byte in the query that is not visible ASCII (control, NUL, space, DEL
    /// or non-ASCII): it would corrupt the forwarded request line.
    #[error("query byte 0x{byte:02X} at offset {offset} is not visible ascii")]
    InvalidQueryByte { byte: u8, offset: usize },
    /// A segment ending in `.` or an encoded space: IIS and Windows drop them,
    /// so `/admin.` or `/admin%20` would be `/admin` to such an app while the
    /// rules saw another path.
    #[error("segment {segment:?} ends in a dot or a space")]
    TrailingDotOrSpace { segment: String },
}

/// Normalizes the target of a request, as hyper parsed it.
///
/// For HTTP/1.x the target must be origin-form (`/path?query`). HTTP/2 (and
/// HTTP/3) requests always carry scheme and authority in the `Uri` (from the
/// pseudo-headers), so for them only the path-and-query is considered.
///
/// # Errors
///
/// [`PathError::AbsoluteForm`], [`PathError::AuthorityForm`] or
/// [`PathError::AsteriskForm`] for a target that is not origin-form, and any other
/// [`PathError`] for a path or query that cannot be normalized safely.
pub fn normalize(uri: &http::Uri, version: http::Version) -> Result<Target, PathError> {
    let has_pseudo_headers = matches!(version, http::Version::HTTP_2 | http::Version::HTTP_3);
    if !has_pseudo_headers {
        if uri.scheme().is_some() {
            return Err(PathError::AbsoluteForm {
                target: uri.to_string(),
            });
        }
        if uri.authority().is_some() {
            return Err(PathError::AuthorityForm {
                target: uri.to_string(),
            });
        }
    }
    match uri.path_and_query() {
        // Raw text, not `uri.path()`: that one turns `?x` into `/` and hides the
        // missing slash.
        Some(path_and_query) => normalize_str(path_and_query.as_str()),
        // An HTTP/2 CONNECT has an authority and no path.
        None if uri.authority().is_some() => Err(PathError::AuthorityForm {
            target: uri.to_string(),
        }),
        None => Err(PathError::NotOriginForm {
            target: uri.to_string(),
        }),
    }
}

/// Normalizes an origin-form target given as a string, such as the
/// `X-Forwarded-Uri` / `X-Original-URI` of a forward-auth request.
///
/// The rules are those of [`normalize`]; in addition a raw `#` is refused here,
/// where `http::Uri` would have dropped the fragment silently.
///
/// # Errors
///
/// Any [`PathError`] but [`PathError::AuthorityForm`]: without a parsed `Uri`,
/// `host:port` is simply [`PathError::NotOriginForm`], while a target that starts
/// with `scheme://` is still named [`PathError::AbsoluteForm`].
pub fn normalize_str(target: &str) -> Result<Target, PathError> {
    if !target.starts_with('/') {
        return Err(classify_non_origin(target));
    }
    let (raw_path, raw_query) = match target.find('?') {
        Some(at) => (&target[..at], Some(&target[at + 1..])),
        None => (target, None),
    };
    let (path, is_verbatim) = if is_already_normal(raw_path) {
        // Plain bytes only, so no `%20`, and no segment ends in `.`.
        (std::sync::Arc::<str>::from(raw_path), true)
    } else {
        let path = rewrite_path(raw_path)?;
        refuse_trailing_dot_or_space(&path)?;
        (std::sync::Arc::<str>::from(path), false)
    };
    let query = match raw_query {
        Some(query) => {
            check_query(query, raw_path.len() + 1)?;
            Some(query.to_owned())
        }
        None => None,
    };
    let match_path = if is_verbatim {
        None
    } else {
        strip_params(&path)
    };
    Ok(Target {
        path: NormalizedPath(path),
        match_path,
        query,
        is_verbatim,
    })
}

/// Names the form of a target that does not start with `/`.
fn classify_non_origin(target: &str) -> PathError {
    if target == "*" {
        PathError::AsteriskForm
    } else if has_scheme(target) {
        PathError::AbsoluteForm {
            target: target.to_owned(),
        }
    } else {
        PathError::NotOriginForm {
            target: target.to_owned(),
        }
    }
}

/// Returns true if and only if `target` starts with `scheme "://"` (RFC 3986 §3.1).
fn has_scheme(target: &str) -> bool {
    let Some((scheme, _)) = target.split_once("://") else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Checks that the query holds only visible ASCII and no `#`; it is forwarded verbatim.
fn check_query(query: &str, offset: usize) -> Result<(), PathError> {
    for (at, &byte) in query.as_bytes().iter().enumerate() {
        match byte {
            b'#' => {
                return Err(PathError::Fragment {
                    offset: offset + at,
                })
            }
            0x21..=0x7E => {}
            _ => {
                return Err(PathError::InvalidQueryByte {
                    byte,
                    offset: offset + at,
                })
            }
        }
    }
    Ok(())
}

/// Bytes that stand for themselves in a path: visible ASCII except the ones this
/// module interprets (`%`, `;`) or refuses (`\`, `#`), and `?`, which ends the path.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x21;
    while b <= 0x7E {
        table[b] = !matches!(b as u8, b'%' | b';' | b'\\' | b'#' | b'?');
        b += 1;
    }
    table
};

/// Normalizes the path part (which starts with `/`) into a new string.
///
/// The output is never longer than the input (decoding shrinks, merging and
/// dot removal shrink, uppercasing hex keeps the length), so this allocates once.
fn refuse_trailing_dot_or_space(path: &str) -> Result<(), PathError> {
    for segment in path.split('/') {
        let name = segment.split(';').next().unwrap_or_default();
        if name.ends_with('.') || name.ends_with("%20") {
            return Err(PathError::TrailingDotOrSpace {
                segment: segment.to_owned(),
            });
        }
    }
    Ok(())
}

/// Normalizes a path (which starts with `/`) in one pass over its bytes.
fn rewrite_path(raw: &str) -> Result<String, PathError> {
    let mut out = String::with_capacity(raw.len());
    let mut offset = 1; // of the current raw segment, past the leading `/`
    let mut segments = raw.as_bytes()[1..].split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        let is_last = segments.peek().is_none();
        let start = out.len();
        out.push('/');
        let params_at = write_segment(segment, offset, &mut out)?;
        offset += segment.len() + 1;
        let is_directory = finish_segment(&mut out, start, params_at, &raw[..offset - 1])?;
        // A path that ends in `/`, `/.` or `/..` names a directory (RFC 3986
        // §5.2.4 keeps that slash), and an empty result is the root.
        if is_last && is_directory {
            out.push('/');
        }
    }
    Ok(out)
}

/// Returns true if and only if `path` (starting with `/`) is already in normal
/// form, has no `;` and no segment ending in `.`: only plain bytes, no empty
/// segment except a final one. The common case, found in one scan; anything
/// else (dot segments and `/admin.` included) takes [`rewrite_path`] and its
/// checks.
fn is_already_normal(path: &str) -> bool {
    let mut previous = b'/';
    for &byte in &path.as_bytes()[1..] {
        let ends_segment_badly = byte == b'/' && matches!(previous, b'/' | b'.');
        if !PLAIN[usize::from(byte)] || ends_segment_badly {
            return false;
        }
        previous = byte;
    }
    previous != b'.'
}

/// Appends one raw segment to `out`, decoding and checking it byte by byte.
///
/// Returns where in `out` the first `;` was written, if any. `offset` is the
/// segment's position in the target, for error messages.
fn write_segment(
    segment: &[u8],
    offset: usize,
    out: &mut String,
) -> Result<Option<usize>, PathError> {
    let mut params_at = None;
    let mut at = 0;
    while let Some(&byte) = segment.get(at) {
        match byte {
            b'%' => {
                at = write_escapes(segment, at, out)?;
                continue;
            }
            b';' => {
                params_at = params_at.or(Some(out.len()));
                out.push(';');
            }
            b'\\' => {
                return Err(PathError::Backslash {
                    offset: offset + at,
                })
            }
            b'#' => {
                return Err(PathError::Fragment {
                    offset: offset + at,
                })
            }
            _ if PLAIN[usize::from(byte)] => out.push(char::from(byte)),
            _ => {
                return Err(PathError::InvalidByte {
                    byte,
                    offset: offset + at,
                })
            }
        }
        at += 1;
    }
    Ok(params_at)
}

/// Writes the escape at `segment[at]` (a `%`), or the whole UTF-8 sequence it
/// starts, to `out` in normal form. Returns the index just past what it read.
fn write_escapes(segment: &[u8], at: usize, out: &mut String) -> Result<usize, PathError> {
    let byte = decode_escape(segment, at)?;
    let escape = || show(&segment[at..at + 3]);
    match byte {
        b'/' => Err(PathError::EncodedSlash { escape: escape() }),
        b'\\' => Err(PathError::EncodedBackslash { escape: escape() }),
        b';' => Err(PathError::EncodedSemicolon { escape: escape() }),
        b'#' | b'?' => Err(PathError::EncodedDelimiter { escape: escape() }),
        0 => Err(PathError::EncodedNul { escape: escape() }),
        0x01..=0x1F | 0x7F => Err(PathError::EncodedControl { escape: escape() }),
        _ if is_unreserved(byte) => {
            out.push(char::from(byte));
            Ok(at + 3)
        }
        0x80..=0xFF => write_utf8_escapes(segment, at, byte, out),
        _ => {
            push_escape(out, byte);
            Ok(at + 3)
        }
    }
}

/// Writes a percent-encoded UTF-8 sequence whose lead byte `lead` was decoded
/// from `segment[at..at + 3]`, after checking the whole sequence is UTF-8.
///
/// Overlong forms (`%C0%AF` for `/`, `%C0%AE` for `.`), surrogates, stray
/// continuation bytes and truncated sequences are refused: lenient decoders
/// turn some of them into delimiters.
fn write_utf8_escapes(
    segment: &[u8],
    at: usize,
    lead: u8,
    out: &mut String,
) -> Result<usize, PathError> {
    let width = match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => {
            return Err(PathError::InvalidUtf8 {
                escape: show(&segment[at..at + 3]),
            })
        }
    };
    let mut bytes = [lead, 0, 0, 0];
    for (k, slot) in bytes.iter_mut().enumerate().take(width).skip(1) {
        let next = at + 3 * k;
        if segment.get(next) != Some(&b'%') {
            return Err(PathError::InvalidUtf8 {
                escape: show(&segment[at..next.min(segment.len())]),
            });
        }
        *slot = decode_escape(segment, next)?;
    }
    let end = at + 3 * width;
    if std::str::from_utf8(&bytes[..width]).is_err() {
        return Err(PathError::InvalidUtf8 {
            escape: show(&segment[at..end]),
        });
    }
    for &byte in &bytes[..width] {
        push_escape(out, byte);
    }
    Ok(end)
}

/// Decodes the escape `%XX` at `segment[at]`.
fn decode_escape(segment: &[u8], at: usize) -> Result<u8, PathError> {
    let high = segment.get(at + 1).copied().and_then(hex_value);
    let low = segment.get(at + 2).copied().and_then(hex_value);
    match (high, low) {
        (Some(high), Some(low)) => Ok((high << 4) | low),
        _ => Err(PathError::MalformedEscape {
            escape: show(&segment[at..(at + 3).min(segment.len())]),
        }),
    }
}

/// The value of one hex digit, either case.
fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// Appends `%XX` with uppercase hex (RFC 3986 §6.2.2.1).
fn push_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0x0F)]));
}

/// Returns true if and only if `byte` is unreserved (RFC 3986 §2.3), so its
/// escape and itself are the same character to every stack.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Raw target bytes for an error message, printable whatever they hold.
fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Checks the segment just written at `out[start..]` (which begins with its `/`)
/// and resolves it: an empty or `.` segment is dropped, `..` also drops the
/// segment before it. Returns true if the segment named a directory rather than
/// a name (empty, `.` or `..`).
///
/// `raw_so_far` is the raw path up to this segment, for error messages.
fn finish_segment(
    out: &mut String,
    start: usize,
    params_at: Option<usize>,
    raw_so_far: &str,
) -> Result<bool, PathError> {
    let segment = &out[start + 1..];
    if let Some(params_at) = params_at {
        match &out[start + 1..params_at] {
            "" => {
                return Err(PathError::EmptySegmentWithParams {
                    segment: segment.to_owned(),
                })
            }
            "." | ".." => {
                return Err(PathError::DotSegmentWithParams {
                    segment: segment.to_owned(),
                })
            }
            _ => {}
        }
    }
    if let Some(escape) = find_double_encoding(segment) {
        return Err(PathError::DoubleEncoding {
            escape: escape.to_owned(),
        });
    }
    match segment {
        "" | "." => {
            out.truncate(start);
            Ok(true)
        }
        ".." => {
            out.truncate(start);
            // `out` holds only `/name` segments here, so the last `/` starts
            // the segment that `..` removes; none left means above the root.
            match out.rfind('/') {
                Some(parent) => {
                    out.truncate(parent);
                    Ok(true)
                }
                None => Err(PathError::AboveRoot {
                    path: raw_so_far.to_owned(),
                }),
            }
        }
        _ => Ok(false),
    }
}

/// Finds `%25` followed by two hex digits in a decoded segment.
///
/// It is checked after decoding, so `%25%32%65` (which decodes to `%252e`) is
/// caught as well as a literal `%252e`.
fn find_double_encoding(segment: &str) -> Option<&str> {
    let bytes = segment.as_bytes();
    bytes
        .windows(5)
        .position(is_double_encoded)
        .map(|at| &segment[at..at + 5])
}

/// Returns true if and only if `window` is `%25` followed by two hex digits.
fn is_double_encoded(window: &[u8]) -> bool {
    matches!(window, [b'%', b'2', b'5', high, low] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit())
}

/// The path rules match: each segment cut at its first `;`. `None` when the path
/// has no `;`, so the common case shares the path's string.
fn strip_params(path: &str) -> Option<String> {
    if !path.contains(';') {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    for (index, segment) in path.split('/').enumerate() {
        if index > 0 {
            out.push('/');
        }
        let name = match segment.find(';') {
            Some(params_at) => &segment[..params_at],
            None => segment,
        };
        out.push_str(name);
    }
    Some(out)
}
