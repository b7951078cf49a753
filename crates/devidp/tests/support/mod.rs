//! Test harness: starts a provider on 127.0.0.1:0 and talks to it over real HTTP
//! like a relying party (and a browser) would.

#![allow(dead_code)] // not every test module uses every helper

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::digest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis_devidp::{start, Client, ClientAuth, Config, DevIdp};
use serde_json::Value;

pub const CLIENT: &str = "app";
pub const SECRET: &str = "app-secret";
pub const REDIRECT: &str = "http://127.0.0.1:9/_auth/callback";
pub const POST_LOGOUT: &str = "http://127.0.0.1:9/signed-out";
pub const POST_CLIENT: &str = "post-app";
pub const POST_SECRET: &str = "post secret&+=";

/// The test clients: `app` (client_secret_basic) and `post-app` (client_secret_post).
pub fn config() -> Config {
    let mut app = Client::new(CLIENT, SECRET, REDIRECT);
    app.post_logout_redirect_uris = vec![POST_LOGOUT.to_owned()];
    let mut post = Client::new(POST_CLIENT, POST_SECRET, REDIRECT);
    post.auth_method = ClientAuth::Post;
    let mut config = Config::new(app);
    config.clients.push(post);
    config
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The redirect target (status must be 302).
    pub fn location(&self) -> url::Url {
        assert_eq!(
            self.status,
            StatusCode::FOUND,
            "expected a redirect: {}",
            self.text()
        );
        let loc = self.header(header::LOCATION).expect("Location header");
        url::Url::parse(loc).expect("absolute Location")
    }

    /// The query parameters of the redirect target.
    pub fn redirect_params(&self) -> HashMap<String, String> {
        self.location().query_pairs().into_owned().collect()
    }

    /// `name=value` of the first `Set-Cookie`.
    pub fn cookie(&self) -> Option<String> {
        let set = self.header(header::SET_COOKIE)?;
        Some(set.split(';').next()?.to_owned())
    }
}

/// A completed browser sign-in, up to the code.
#[derive(Debug)]
pub struct Login {
    pub code: String,
    pub verifier: String,
    pub nonce: String,
    pub state: String,
    /// The provider-session cookie (`name=value`).
    pub cookie: Option<String>,
}

/// The harness: a running provider and an HTTP client.
pub struct Harness {
    pub idp: DevIdp,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    counter: AtomicUsize,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with(config()).await
    }

    pub async fn with(config: Config) -> Self {
        let idp = start(config).await.expect("provider starts");
        Self {
            idp,
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
            counter: AtomicUsize::new(0),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.idp.issuer())
    }

    /// Sends a request; `target` is a path on the provider or an absolute URL.
    pub async fn send(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Resp {
        let uri = if target.starts_with("http") {
            target.to_owned()
        } else {
            self.url(target)
        };
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let resp = self.http.request(req).await.expect("provider answers");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, target: &str) -> Resp {
        self.send(Method::GET, target, &[], None).await
    }

    pub async fn get_with_cookie(&self, target: &str, cookie: Option<&str>) -> Resp {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        self.send(Method::GET, target, &headers, None).await
    }

    /// POSTs a form, with extra headers.
    pub async fn post_form(
        &self,
        target: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Resp {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        self.send(Method::POST, target, &all, Some(body)).await
    }

    /// A fresh PKCE verifier, nonce and state.
    pub fn secrets(&self) -> (String, String, String) {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        (
            format!("verifier-{n:04}-0123456789abcdefghijklmnopqrstuvwxyz"),
            format!("nonce-{n}"),
            format!("state-{n}"),
        )
    }

    /// The standard authorization request parameters for `app`.
    pub fn authorize_params(
        &self,
        verifier: &str,
        nonce: &str,
        state: &str,
    ) -> Vec<(String, String)> {
        vec![
            ("client_id".into(), CLIENT.into()),
            ("redirect_uri".into(), REDIRECT.into()),
            ("response_type".into(), "code".into()),
            ("scope".into(), "openid profile email".into()),
            ("state".into(), state.into()),
            ("nonce".into(), nonce.into()),
            ("code_challenge".into(), challenge(verifier)),
            ("code_challenge_method".into(), "S256".into()),
        ]
    }

    /// `/authorize?...` for `params`.
    pub fn authorize_target(&self, params: &[(String, String)]) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        format!("/authorize?{query}")
    }

    /// Signs `user` in through the HTML page, as a browser: GET the page, then
    /// POST its form with the user's button.
    pub async fn login(&self, user: &str) -> Login {
        self.login_as(user, CLIENT).await
    }

    pub async fn login_as(&self, user: &str, client_id: &str) -> Login {
        let (verifier, nonce, state) = self.secrets();
        let mut params = self.authorize_params(&verifier, &nonce, &state);
        params[0].1 = client_id.to_owned();
        let page = self.get(&self.authorize_target(&params)).await;
        assert_eq!(page.status, StatusCode::OK, "sign-in page: {}", page.text());
        let mut form = hidden_fields(&page.text());
        form.push(("user".into(), user.into()));
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let resp = self.post_form("/authorize", &form, &[]).await;
        let back = resp.redirect_params();
        assert_eq!(back.get("state"), Some(&state));
        Login {
            code: back.get("code").expect("code").clone(),
            verifier,
            nonce,
            state,
            cookie: resp.cookie(),
        }
    }

    /// Exchanges a code as `app` with client_secret_basic.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Resp {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ];
        self.post_form(
            "/token",
            &form,
            &[("authorization", &basic(CLIENT, SECRET))],
        )
        .await
    }

    /// Signs alice (or `user`) in and returns the token response.
    pub async fn tokens(&self, user: &str) -> (Login, Value) {
        let login = self.login(user).await;
        let resp = self.exchange(&login.code, &login.verifier).await;
        assert_eq!(
            resp.status,
            StatusCode::OK,
            "token response: {}",
            resp.text()
        );
        (login, resp.json())
    }

    /// A refresh as `app`.
    pub async fn refresh(&self, refresh_token: &str) -> Resp {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        self.post_form(
            "/token",
            &form,
            &[("authorization", &basic(CLIENT, SECRET))],
        )
        .await
    }

    pub async fn userinfo(&self, access_token: &str) -> Resp {
        let auth = format!("Bearer {access_token}");
        self.send(Method::GET, "/userinfo", &[("authorization", &auth)], None)
            .await
    }

    /// The provider's JWKS, parsed by jsonwebtoken.
    pub async fn jwks(&self) -> JwkSet {
        serde_json::from_value(self.get("/jwks").await.json())
            .expect("a JWKS jsonwebtoken can read")
    }

    /// Validates `token` independently (jsonwebtoken against the JWKS), with
    /// issuer and audience; returns the claims or jsonwebtoken's error.
    pub async fn decode(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<Value, jsonwebtoken::errors::Error> {
        let jwks = self.jwks().await;
        let header = jsonwebtoken::decode_header(token)?;
        let kid = header
            .kid
            .ok_or(jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(
                "kid".into(),
            ))?;
        let jwk = jwks
            .find(&kid)
            .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
        let key = DecodingKey::from_jwk(jwk)?;
        // The algorithm comes from the key we trust, never from the token.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[self.idp.issuer()]);
        validation.leeway = 5;
        Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
    }
}

/// `BASE64URL(SHA256(verifier))`.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
pub fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// The header and claims of a JWT, unverified.
pub fn parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let mut next = || {
        let seg = it.next().expect("segment");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).expect("base64url")).expect("JSON")
    };
    let header = next();
    (header, next())
}

/// The hidden `<input>`s of the sign-in page, unescaped.
pub fn hidden_fields(page: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for chunk in page.split("<input type=\"hidden\" ").skip(1) {
        let attr = |name: &str| {
            let start = chunk.find(&format!("{name}=\"")).expect("attribute") + name.len() + 2;
            let end = chunk[start..].find('"').expect("closing quote") + start;
            unescape(&chunk[start..end])
        };
        fields.push((attr("name"), attr("value")));
    }
    fields
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
