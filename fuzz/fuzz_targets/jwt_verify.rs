//! Fuzz target: JWT verification (`auth::jwt::verify`, `auth::bearer::verify`)
//! against a fixed JWKS: an RSA key `rsa-1`, a P-256 key `ec-1` (`alg` ES256)
//! and an Ed25519 key `ed-1`, made when the process starts and served to the
//! real `Jwks` cache by a local HTTP thread.
//!
//! The first byte chooses how the input is read:
//!
//! - `0x01 ALG FLAGS CLAIMS...`: `CLAIMS` (any bytes) signed as the payload with
//!   the real key `ALG` picks, under a header the harness writes;
//! - `0x02 ALG LEN HEADER[LEN] CLAIMS...`: header and payload both from the
//!   input, signed with the real key;
//! - `0x03 ATTACK FLAGS CLAIMS...`: a classic forgery built by the harness from
//!   public material only (`alg: none`, HMAC keyed with a public key, psychic
//!   ECDSA signatures, an embedded `jwk`, another key under a real `kid`, a
//!   real signature under another key's `kid` or algorithm, `crit`);
//! - `0x04 ALG FLAGS ISS AUD EXP NBF IAT SUB NONCE EXTRA...`: claims the
//!   harness writes, each registered claim in one of a few shapes (right,
//!   wrong, missing, `null`, another JSON type, an array, a boundary of the
//!   time window), then `EXTRA` spliced in raw as more members (duplicates
//!   included), signed with the real key;
//! - anything else: the whole input is the token.
//!
//! Invariants: nothing panics; a token the harness did not sign with a real key
//! (raw tokens and forgeries) never verifies; and a signed token verifies only
//! if its header names the algorithm and key it was signed with, has no `crit`,
//! and its claims are a JSON object with `iss` exactly the issuer, `aud` the
//! audience (or an array holding it), numeric `exp` (required for bearer
//! tokens) not past, numeric `nbf`/`iat` not in the future, `iat` within the
//! maximum age when one is set (all with the leeway); a bearer token also needs
//! a non-empty string `sub`, no `nonce` and a JWT access-token `typ` if any.
//! The claims returned are the claims checked. With no `EXTRA`, the shapes
//! are exactly known, so the converse holds too: such a token that meets every
//! rule (and whose `sub`, if any, is a string) must verify: no false refusals.
//!
//! Any violation panics, which libFuzzer reports with the input.

#![no_main]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use portcullis::auth::bearer::{self, Audience};
use portcullis::auth::http::HttpClient;
use portcullis::auth::jwks::Jwks;
use portcullis::auth::jwt::{self, Expect};
use serde_json::{json, Map, Value};

const ISSUER: &str = "https://idp.fuzz.test/";
const AUDIENCE: &str = "portcullis";
const NOW: i64 = 1_700_000_000;
const LEEWAY: i64 = 60;
const MAX_AGE: i64 = 3600;

/// Claims that pass every check (with `typ` absent or `JWT`).
const GOOD_CLAIMS: &str = r#"{"iss":"https://idp.fuzz.test/","aud":"portcullis","sub":"alice","exp":1700000600,"iat":1699999990,"nbf":1699999990,"roles":["admin"]}"#;

/// The P-256 group order n: `r = s = n` is the other "psychic signature".
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fuzz_target!(|data: &[u8]| {
    let h = harness();
    match data.split_first() {
        Some((1, rest)) => signed_claims(h, rest),
        Some((2, rest)) => signed_header_and_claims(h, rest),
        Some((3, rest)) => forgery(h, rest),
        Some((4, rest)) => shaped_claims(h, rest),
        _ => {
            if let Ok(token) = std::str::from_utf8(data) {
                h.assert_refused(token, Flags(0), "a raw token");
                h.assert_refused(token, Flags(0b11), "a raw token");
            }
        }
    }
});

struct Harness {
    runtime: tokio::runtime::Runtime,
    jwks: Jwks,
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    ed: Ed25519KeyPair,
    rsa_spki_der: Vec<u8>,
    rsa_spki_pem: String,
    /// Keys of an attacker, absent from the JWKS.
    evil_ec: EcdsaKeyPair,
    evil_ed: Ed25519KeyPair,
}

/// Which real key signs, and with which algorithm.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Alg {
    EdDsa,
    Es256,
    Rs256,
    Ps256,
}

impl Alg {
    fn of(byte: u8) -> (Alg, bool) {
        let alg = match byte % 4 {
            0 => Alg::EdDsa,
            1 => Alg::Es256,
            2 => Alg::Rs256,
            _ => Alg::Ps256,
        };
        // Bit 7: leave `kid` out of the header (each algorithm has one key).
        (alg, byte & 0x80 == 0)
    }

    fn name(self) -> &'static str {
        match self {
            Alg::EdDsa => "EdDSA",
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
        }
    }

    fn kid(self) -> &'static str {
        match self {
            Alg::EdDsa => "ed-1",
            Alg::Es256 => "ec-1",
            Alg::Rs256 | Alg::Ps256 => "rsa-1",
        }
    }
}

/// Bit 0: `require_exp`; bit 1: a maximum age; bits 2-4: the `typ` header.
#[derive(Clone, Copy)]
struct Flags(u8);

impl Flags {
    fn require_exp(self) -> bool {
        self.0 & 1 != 0
    }

    fn max_age(self) -> Option<i64> {
        (self.0 & 2 != 0).then_some(MAX_AGE)
    }

    fn typ(self) -> Option<&'static str> {
        match (self.0 >> 2) & 7 {
            1 => Some("JWT"),
            2 => Some("at+jwt"),
            3 => Some("application/at+JWT"),
            4 => Some("id_token"),
            5 => Some("JWS"),
            6 => Some(""),
            _ => None,
        }
    }
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(Harness::new)
}

impl Harness {
    fn new() -> Harness {
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key");
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("EC key");
        let ed = Ed25519KeyPair::generate().expect("Ed25519 key");
        let rsa_spki_der = rsa.public_key().as_der().expect("SPKI").as_ref().to_vec();
        let rsa_spki_pem = pem(&rsa_spki_der);

        let components = PublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
        let point = ec.public_key().as_ref();
        let jwks_json = json!({"keys": [
            {"kty": "RSA", "use": "sig", "kid": "rsa-1",
             "n": b64(&components.n), "e": b64(&components.e)},
            {"kty": "EC", "use": "sig", "alg": "ES256", "kid": "ec-1", "crv": "P-256",
             "x": b64(&point[1..33]), "y": b64(&point[33..65])},
            {"kty": "OKP", "use": "sig", "kid": "ed-1", "crv": "Ed25519",
             "x": b64(ed.public_key().as_ref())},
        ]})
        .to_string();
        let uri = serve(jwks_json);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let jwks = Jwks::new(HttpClient::new(Duration::from_secs(5)), uri);
        runtime
            .block_on(jwks.refresh())
            .expect("the harness JWKS loads");

        let h = Harness {
            runtime,
            jwks,
            rsa,
            ec,
            ed,
            rsa_spki_der,
            rsa_spki_pem,
            evil_ec: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("EC key"),
            evil_ed: Ed25519KeyPair::generate().expect("Ed25519 key"),
        };
        // Positive control: a well-formed token passes with every key, so the
        // refusals this target asserts are not refusals of everything.
        for alg in [Alg::EdDsa, Alg::Es256, Alg::Rs256, Alg::Ps256] {
            for with_kid in [true, false] {
                let header = header_json(alg, with_kid, Some("JWT"));
                let token = h.sign(alg, header.as_bytes(), GOOD_CLAIMS.as_bytes());
                let (jwt, bearer) = h.verify(&token, Flags(0b11));
                assert!(jwt.is_ok(), "control {alg:?}: {jwt:?}");
                assert!(bearer.is_ok(), "control {alg:?}: {bearer:?}");
            }
        }
        h
    }

    /// `b64(header).b64(claims).b64(signature)` with the real key for `alg`.
    fn sign(&self, alg: Alg, header: &[u8], claims: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let signature = self.signature(alg, input.as_bytes());
        format!("{input}.{}", b64(&signature))
    }

    fn signature(&self, alg: Alg, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match alg {
            Alg::EdDsa => self.ed.sign(input).as_ref().to_vec(),
            Alg::Es256 => self.ec.sign(&rng, input).expect("ES256").as_ref().to_vec(),
            Alg::Rs256 | Alg::Ps256 => {
                let padding: &'static dyn signature::RsaEncoding = if alg == Alg::Rs256 {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PSS_SHA256
                };
                let mut sig = vec![0; self.rsa.public_modulus_len()];
                self.rsa.sign(padding, &rng, input, &mut sig).expect("RSA");
                sig
            }
        }
    }

    fn verify(
        &self,
        token: &str,
        flags: Flags,
    ) -> (
        Result<jwt::Verified, jwt::JwtError>,
        Result<portcullis::identity::Identity, bearer::BearerError>,
    ) {
        let expect = Expect {
            issuer: ISSUER,
            audience: AUDIENCE,
            now: NOW,
            leeway: LEEWAY,
            require_exp: flags.require_exp(),
            max_age: flags.max_age(),
        };
        let roles_claim = ["roles".to_owned()];
        let aud = Audience {
            audience: AUDIENCE,
            now: NOW,
            leeway: LEEWAY,
            roles_claim: &roles_claim,
            kept_claims: &[],
        };
        self.runtime.block_on(async {
            (
                jwt::verify(token, &self.jwks, &expect).await,
                bearer::verify(token, ISSUER, &self.jwks, &aud).await,
            )
        })
    }

    fn assert_refused(&self, token: &str, flags: Flags, what: &str) {
        let (jwt, bearer) = self.verify(token, flags);
        assert!(jwt.is_err(), "{what} verified: {token:?} -> {jwt:?}");
        assert!(bearer.is_err(), "{what} verified as bearer: {token:?}");
    }

    /// Checks a token the harness signed with the real key for `alg`.
    fn assert_signed_outcome(
        &self,
        token: &str,
        alg: Alg,
        header: &[u8],
        claims: &[u8],
        flags: Flags,
    ) -> (bool, bool) {
        let (jwt, bearer) = self.verify(token, flags);
        let ctx = || {
            format!(
                "{alg:?} header {:?} claims {:?}",
                String::from_utf8_lossy(header),
                String::from_utf8_lossy(claims)
            )
        };
        if jwt.is_err() && bearer.is_err() {
            return (false, false);
        }
        if let Err(why) = header_fits(header, alg) {
            panic!("{}: verified, but the header {why}", ctx());
        }
        if let Ok(verified) = &jwt {
            let expect = TimeRules {
                require_exp: flags.require_exp(),
                max_age: flags.max_age(),
            };
            match claims_fit(claims, &expect) {
                Ok(parsed) => assert_eq!(
                    verified.claims,
                    parsed,
                    "{}: the verified claims are not the token's",
                    ctx()
                ),
                Err(why) => panic!("{}: verified, but {why}", ctx()),
            }
        }
        if let Ok(identity) = &bearer {
            let expect = TimeRules {
                require_exp: true,
                max_age: None,
            };
            let parsed = claims_fit(claims, &expect)
                .unwrap_or_else(|why| panic!("{}: verified as bearer, but {why}", ctx()));
            if let Err(why) = bearer_fits(header, &parsed) {
                panic!("{}: verified as bearer, but {why}", ctx());
            }
            assert_eq!(
                Some(identity.sub.as_str()),
                parsed.get("sub").and_then(Value::as_str),
                "{}: the identity is not the token's subject",
                ctx()
            );
        }
        (jwt.is_ok(), bearer.is_ok())
    }
}

fn signed_claims(h: &Harness, input: &[u8]) {
    let [alg, flags, claims @ ..] = input else {
        return;
    };
    let (alg, with_kid) = Alg::of(*alg);
    let flags = Flags(*flags);
    let header = header_json(alg, with_kid, flags.typ());
    let token = h.sign(alg, header.as_bytes(), claims);
    h.assert_signed_outcome(&token, alg, header.as_bytes(), claims, flags);
}

fn shaped_claims(h: &Harness, input: &[u8]) {
    let [alg, flags, iss, aud, exp, nbf, iat, sub, nonce, extra @ ..] = input else {
        return;
    };
    let (alg, with_kid) = Alg::of(*alg);
    let flags = Flags(*flags);
    let now = NOW;
    let (future, past) = (now + 600, now - 3 * LEEWAY);
    let iss = match iss % 8 {
        0 => Some(json!(ISSUER)),
        1 => None,
        2 => Some(json!(ISSUER.trim_end_matches('/'))),
        3 => Some(json!([ISSUER])),
        4 => Some(json!([ISSUER, "https://evil.test/"])),
        5 => Some(json!(1)),
        6 => Some(Value::Null),
        _ => Some(json!({ "iss": ISSUER })),
    };
    let aud = match aud % 8 {
        0 => Some(json!(AUDIENCE)),
        1 => None,
        2 => Some(json!("portcullis-other")),
        3 => Some(json!([AUDIENCE])),
        4 => Some(json!(["other", AUDIENCE])),
        5 => Some(json!([])),
        6 => Some(json!(7)),
        _ => Some(json!([AUDIENCE, 1])),
    };
    let exp = match exp % 12 {
        0 => Some(json!(future)),
        1 => None,
        2 => Some(json!(past)),
        3 => Some(json!(now - LEEWAY / 2)),
        4 => Some(json!(future as f64 + 0.5)),
        5 => Some(json!(future.to_string())),
        6 => Some(Value::Null),
        7 => Some(json!(u64::MAX)),
        8 => Some(json!(-1)),
        9 => Some(json!(1e30)),
        10 => Some(json!(now - LEEWAY)),
        _ => Some(json!(now - LEEWAY - 1)),
    };
    let nbf = match nbf % 8 {
        0 => None,
        1 => Some(json!(now - 10)),
        2 => Some(json!(future)),
        3 => Some(json!(now + LEEWAY / 2)),
        4 => Some(json!((now - 10).to_string())),
        5 => Some(json!(now + LEEWAY)),
        6 => Some(json!(now + LEEWAY + 1)),
        _ => Some(json!((now + LEEWAY) as f64 + 0.5)),
    };
    let iat = match iat % 8 {
        0 => None,
        1 => Some(json!(now - 10)),
        2 => Some(json!(future)),
        3 => Some(json!(now - MAX_AGE - LEEWAY)),
        4 => Some(json!(now - MAX_AGE - LEEWAY - 1)),
        5 => Some(json!("1699999990")),
        6 => Some(Value::Null),
        _ => Some(json!(now + LEEWAY)),
    };
    let sub = match sub % 6 {
        0 => Some(json!("alice")),
        1 => None,
        2 => Some(json!("")),
        3 => Some(json!(42)),
        4 => Some(Value::Null),
        _ => Some(json!(["alice"])),
    };
    let nonce = match nonce % 3 {
        0 => None,
        1 => Some(json!("n-0S6_WzA2Mj")),
        _ => Some(Value::Null),
    };
    let members: Vec<String> = [
        ("iss", iss),
        ("aud", aud),
        ("exp", exp),
        ("nbf", nbf),
        ("iat", iat),
        ("sub", sub),
        ("nonce", nonce),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| format!("{}:{v}", json!(name))))
    .collect();
    let mut claims = format!("{{{}", members.join(",")).into_bytes();
    if !extra.is_empty() {
        if !members.is_empty() {
            claims.push(b',');
        }
        claims.extend_from_slice(extra);
    }
    claims.push(b'}');

    let header = header_json(alg, with_kid, flags.typ());
    let token = h.sign(alg, header.as_bytes(), &claims);
    let (jwt_ok, bearer_ok) =
        h.assert_signed_outcome(&token, alg, header.as_bytes(), &claims, flags);
    if !extra.is_empty() {
        return;
    }
    // A `sub` of another type makes the token malformed (OIDC Core §2: a
    // string); refusing it is right, whatever the other claims say.
    if !matches!(
        serde_json::from_slice::<Map<String, Value>>(&claims)
            .ok()
            .and_then(|c| c.get("sub").cloned()),
        None | Some(Value::Null | Value::String(_))
    ) {
        return;
    }
    let ctx = String::from_utf8_lossy(&claims);
    let rules = TimeRules {
        require_exp: flags.require_exp(),
        max_age: flags.max_age(),
    };
    assert_eq!(
        jwt_ok,
        claims_fit(&claims, &rules).is_ok(),
        "{alg:?} {ctx}: refused although every rule is met"
    );
    let bearer_rules = TimeRules {
        require_exp: true,
        max_age: None,
    };
    let bearer_expected = claims_fit(&claims, &bearer_rules)
        .and_then(|parsed| bearer_fits(header.as_bytes(), &parsed))
        .is_ok();
    assert_eq!(
        bearer_ok,
        bearer_expected,
        "{alg:?} typ {:?} {ctx}: bearer refused although every rule is met",
        flags.typ()
    );
}

fn signed_header_and_claims(h: &Harness, input: &[u8]) {
    let [alg, len, rest @ ..] = input else {
        return;
    };
    let (alg, _) = Alg::of(*alg);
    let (header, claims) = rest.split_at(usize::from(*len).min(rest.len()));
    let token = h.sign(alg, header, claims);
    h.assert_signed_outcome(&token, alg, header, claims, Flags(*len));
}

fn forgery(h: &Harness, input: &[u8]) {
    let [attack, flags, claims @ ..] = input else {
        return;
    };
    let flags = Flags(*flags);
    let claims = if claims.is_empty() {
        GOOD_CLAIMS.as_bytes()
    } else {
        claims
    };
    let body = b64(claims);
    let with = |header: Value, signature: &[u8]| {
        format!(
            "{}.{body}.{}",
            b64(header.to_string().as_bytes()),
            b64(signature)
        )
    };
    let input_of = |header: &Value| format!("{}.{body}", b64(header.to_string().as_bytes()));
    let hmac_with = |header: Value, key: &[u8]| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        let tag = hmac::sign(&key, input_of(&header).as_bytes());
        with(header, tag.as_ref())
    };
    let ec_point = h.ec.public_key().as_ref().to_vec();
    let token = match attack % 20 {
        0 => with(json!({"alg": "none"}), b""),
        1 => with(json!({"alg": "none", "kid": "rsa-1"}), b"x"),
        2 => hmac_with(
            json!({"alg": "HS256", "kid": "rsa-1"}),
            h.rsa_spki_pem.as_bytes(),
        ),
        3 => hmac_with(json!({"alg": "HS256", "kid": "rsa-1"}), &h.rsa_spki_der),
        4 => hmac_with(json!({"alg": "HS256"}), h.rsa_spki_pem.as_bytes()),
        5 => hmac_with(json!({"alg": "HS256", "kid": "ec-1"}), &ec_point),
        6 => with(json!({"alg": "ES256", "kid": "ec-1"}), &[0; 64]),
        7 => with(
            json!({"alg": "ES256", "kid": "ec-1"}),
            &[P256_ORDER, P256_ORDER].concat(),
        ),
        8 => {
            let point = h.evil_ec.public_key().as_ref();
            let header = json!({"alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256",
                "x": b64(&point[1..33]), "y": b64(&point[33..65])}});
            let sig = h
                .evil_ec
                .sign(&SystemRandom::new(), input_of(&header).as_bytes())
                .expect("ES256");
            with(header, sig.as_ref())
        }
        9 => {
            let header = json!({"alg": "EdDSA", "kid": "ed-1"});
            let sig = h.evil_ed.sign(input_of(&header).as_bytes());
            with(header, sig.as_ref())
        }
        10 => {
            let header = json!({"alg": "EdDSA", "kid": "evil",
                "jku": "https://evil.test/jwks.json", "x5u": "https://evil.test/cert.pem"});
            let sig = h.evil_ed.sign(input_of(&header).as_bytes());
            with(header, sig.as_ref())
        }
        11 => {
            // The real RSA key's signature under the EC key's kid.
            let header = json!({"alg": "RS256", "kid": "ec-1"});
            let sig = h.signature(Alg::Rs256, input_of(&header).as_bytes());
            with(header, &sig)
        }
        12 => {
            let header = json!({"alg": "ES256", "kid": "rsa-1"});
            let sig = h.signature(Alg::Es256, input_of(&header).as_bytes());
            with(header, &sig)
        }
        13 => {
            // An RS256 signature presented as PS256.
            let header = json!({"alg": "PS256", "kid": "rsa-1"});
            let sig = h.signature(Alg::Rs256, input_of(&header).as_bytes());
            with(header, &sig)
        }
        14 => {
            // A real signature moved onto another header.
            let signed = json!({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"});
            let sig = h.signature(Alg::Rs256, input_of(&signed).as_bytes());
            with(json!({"alg": "RS256", "kid": "rsa-1"}), &sig)
        }
        15 => with(json!({"alg": "EdDSA", "kid": "ed-1"}), &[0; 64]),
        16 => hmac_with(
            json!({"alg": "HS256", "kid": "ed-1"}),
            h.ed.public_key().as_ref(),
        ),
        17 => with(json!({"alg": "RS256", "kid": "rsa-1"}), &[0; 256]),
        18 => {
            // Signed by the real key, but with a critical extension we do not implement.
            let header = json!({"alg": "EdDSA", "kid": "ed-1", "b64": false, "crit": ["b64"]});
            let sig = h.signature(Alg::EdDsa, input_of(&header).as_bytes());
            with(header, &sig)
        }
        _ => {
            // A real signature over other claims.
            let header = json!({"alg": "EdDSA", "kid": "ed-1"});
            let other = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(GOOD_CLAIMS.as_bytes())
            );
            let sig = h.signature(Alg::EdDsa, other.as_bytes());
            if claims == GOOD_CLAIMS.as_bytes() {
                return;
            }
            with(header, &sig)
        }
    };
    h.assert_refused(&token, flags, &format!("forgery {}", attack % 20));
}

fn header_json(alg: Alg, with_kid: bool, typ: Option<&str>) -> String {
    let mut header = Map::new();
    header.insert("alg".into(), alg.name().into());
    if with_kid {
        header.insert("kid".into(), alg.kid().into());
    }
    if let Some(typ) = typ {
        header.insert("typ".into(), typ.into());
    }
    Value::Object(header).to_string()
}

/// Why `header` must not verify with the key and algorithm it was signed with.
fn header_fits(header: &[u8], alg: Alg) -> Result<(), String> {
    let header: Map<String, Value> =
        serde_json::from_slice(header).map_err(|e| format!("is not a JSON object: {e}"))?;
    if header.get("alg").and_then(Value::as_str) != Some(alg.name()) {
        return Err(format!("names alg {:?}", header.get("alg")));
    }
    match header.get("kid") {
        None => {}
        Some(Value::String(kid)) if kid == alg.kid() => {}
        Some(kid) => return Err(format!("names kid {kid}")),
    }
    match header.get("crit") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.is_empty() => {}
        Some(crit) => return Err(format!("has crit {crit}")),
    }
    Ok(())
}

struct TimeRules {
    require_exp: bool,
    max_age: Option<i64>,
}

/// The claims as a JSON object, if they are what the checks demand.
fn claims_fit(claims: &[u8], rules: &TimeRules) -> Result<Map<String, Value>, String> {
    let claims: Map<String, Value> =
        serde_json::from_slice(claims).map_err(|e| format!("the claims are not an object: {e}"))?;
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == ISSUER => {}
        iss => return Err(format!("iss is {iss:?}")),
    }
    match claims.get("aud") {
        Some(Value::String(aud)) if aud == AUDIENCE => {}
        // An array of strings (RFC 7519 §4.1.3) holding ours.
        Some(Value::Array(auds))
            if auds.iter().all(Value::is_string)
                && auds.iter().any(|a| a.as_str() == Some(AUDIENCE)) => {}
        aud => return Err(format!("aud is {aud:?}")),
    }
    let (now, leeway) = (NOW as f64, LEEWAY as f64);
    match number(&claims, "exp")? {
        Some(exp) if exp + leeway < now => return Err(format!("exp {exp} is past")),
        None if rules.require_exp => return Err("there is no exp".into()),
        _ => {}
    }
    // Whole seconds: a fraction is truncated, as RFC 7519 allows.
    if let Some(nbf) = number(&claims, "nbf")? {
        if nbf >= now + leeway + 1.0 {
            return Err(format!("nbf {nbf} is in the future"));
        }
    }
    if let Some(iat) = number(&claims, "iat")? {
        if iat >= now + leeway + 1.0 {
            return Err(format!("iat {iat} is in the future"));
        }
        if let Some(max_age) = rules.max_age {
            if iat < now - max_age as f64 - leeway {
                return Err(format!("iat {iat} is older than {max_age}s"));
            }
        }
    }
    Ok(claims)
}

/// A NumericDate claim; absent and `null` are the same.
fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(format!("{name} is not a number: {other}")),
    }
}

/// What an access token needs beyond a valid JWT (RFC 9068).
fn bearer_fits(header: &[u8], claims: &Map<String, Value>) -> Result<(), String> {
    let header: Map<String, Value> = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    match header.get("typ") {
        None | Some(Value::Null) => {}
        Some(Value::String(typ))
            if ["jwt", "at+jwt", "application/at+jwt"]
                .contains(&typ.to_ascii_lowercase().as_str()) => {}
        Some(typ) => return Err(format!("typ is {typ}")),
    }
    if claims.contains_key("nonce") {
        return Err("it has a nonce (an ID token)".into());
    }
    match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => Ok(()),
        sub => Err(format!("sub is {sub:?}")),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn pem(der: &[u8]) -> String {
    use base64::engine::general_purpose::STANDARD;
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// Serves `body` as JSON to every request on a local port, from a thread.
fn serve(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let addr = listener.local_addr().expect("local address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.read(&mut request);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    format!("http://{addr}/jwks.json")
}
