use std::net::SocketAddr;

use portcullis_devidp::{start, Config, Error};

#[tokio::test]
async fn a_non_loopback_listen_address_is_refused() {
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let config = Config {
            listen: addr.parse::<SocketAddr>().expect("address"),
            ..Config::default()
        };
        let err = start(config).await.expect_err("must refuse");
        assert!(matches!(err, Error::NotLoopback { .. }), "{addr}: {err}");
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let idp = start(Config::default()).await.expect("starts");
    let addr = idp.addr();
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    drop(idp);
    // The accept task is aborted; give the runtime a moment to drop the listener.
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "still accepting after shutdown");
}
