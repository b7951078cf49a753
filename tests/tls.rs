//! TLS termination and HTTP/2 over ALPN, with a certificate made by rcgen.

use std::sync::Arc;

use http::{Request, StatusCode, Version};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::{self, base_config, Echo, Proxy};

struct TestCa {
    cert_pem: String,
    key_pem: String,
}

fn certificate() -> TestCa {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    TestCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

async fn tls_proxy(echo: &Echo) -> (Proxy, TestCa) {
    let ca = certificate();
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, &ca.cert_pem).expect("cert");
    std::fs::write(&key, &ca.key_pem).expect("key");
    let toml = base_config(&echo.url(), "[[route]]\npath = \"/\"\nauth = \"public\"\n").replace(
        "public_url = \"http://app.test\"",
        &format!(
            "public_url = \"https://localhost\"\ntls = {{ cert_file = \"{}\", key_file = \"{}\" }}",
            cert.display(),
            key.display()
        ),
    );
    let proxy = Proxy::start(&toml).await;
    std::mem::forget(dir); // the files must outlive the proxy's start; the OS cleans /tmp
    (proxy, ca)
}

fn tls_client(
    ca: &TestCa,
    h2: bool,
) -> Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    support::TestBody,
> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let der =
        rustls_pki_types::CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).expect("pem");
    roots.add(der).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    let connector = if h2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let mut client = Client::builder(TokioExecutor::new());
    client.http2_only(h2);
    client.build(connector)
}

#[tokio::test]
async fn serves_http2_over_tls_via_alpn_and_forwards_upstream() {
    let echo = Echo::start().await;
    let (proxy, ca) = tls_proxy(&echo).await;
    let url = format!("https://localhost:{}/h2?x=1", proxy.addr.port());
    let resp = tls_client(&ca, true)
        .request(Request::get(url).body(support::full("")).expect("request"))
        .await
        .expect("h2 over TLS");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let seen: support::Seen = serde_json::from_slice(&body).expect("echo json");
    assert_eq!(seen.target, "/h2?x=1");
    assert_eq!(seen.one("x-forwarded-proto"), Some("https"));
    assert_eq!(
        seen.one("host"),
        Some(format!("localhost:{}", proxy.addr.port()).as_str())
    );
}

#[tokio::test]
async fn serves_http1_over_tls() {
    let echo = Echo::start().await;
    let (proxy, ca) = tls_proxy(&echo).await;
    let url = format!("https://localhost:{}/", proxy.addr.port());
    let resp = tls_client(&ca, false)
        .request(Request::get(url).body(support::full("")).expect("request"))
        .await
        .expect("http/1.1 over TLS");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_11);
}

#[tokio::test]
async fn h2c_prior_knowledge_works_on_the_plain_listener() {
    let echo = Echo::start().await;
    let proxy = Proxy::start(&base_config(
        &echo.url(),
        "[[route]]\npath = \"/\"\nauth = \"public\"\n",
    ))
    .await;
    let mut client = Client::builder(TokioExecutor::new());
    client.http2_only(true);
    let client = client.build(hyper_util::client::legacy::connect::HttpConnector::new());
    let resp = client
        .request(
            Request::get(proxy.url("/c"))
                .body(support::full(""))
                .expect("request"),
        )
        .await
        .expect("h2c");
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn reload_rotates_the_certificate_for_new_handshakes() {
    let echo = Echo::start().await;
    let first = certificate();
    let files = tempfile::tempdir().expect("tempdir");
    let cert = files.path().join("tls.crt");
    let key = files.path().join("tls.key");
    std::fs::write(&cert, &first.cert_pem).expect("cert");
    std::fs::write(&key, &first.key_pem).expect("key");
    let toml = base_config(&echo.url(), "[[route]]\npath = \"/\"\nauth = \"public\"\n").replace(
        "public_url = \"http://app.test\"",
        &format!(
            "public_url = \"https://localhost\"\ntls = {{ cert_file = \"{}\", key_file = \"{}\" }}",
            cert.display(),
            key.display()
        ),
    );
    let proxy = Proxy::start(&toml).await;
    let url = format!("https://localhost:{}/", proxy.addr.port());
    let get_with = |ca: &TestCa| {
        let client = tls_client(ca, false);
        let url = url.clone();
        async move {
            client
                .request(Request::get(url).body(support::full("")).expect("request"))
                .await
                .map(|r| r.status())
        }
    };
    assert_eq!(get_with(&first).await.ok(), Some(StatusCode::OK));

    let second = certificate();
    std::fs::write(&cert, &second.cert_pem).expect("cert");
    std::fs::write(&key, &second.key_pem).expect("key");
    let running = proxy.running.as_ref().expect("running");
    running
        .reloader()
        .reload_file(&proxy.dir.path().join("portcullis.toml"))
        .await
        .expect("reload");
    assert_eq!(
        get_with(&second).await.ok(),
        Some(StatusCode::OK),
        "new handshakes get the new certificate"
    );
    assert!(
        get_with(&first).await.is_err(),
        "the old certificate is no longer presented"
    );
}
