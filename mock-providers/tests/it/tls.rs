//! HTTPS: a client trusting the written certificate is served over HTTP/1.1 and HTTP/2 (ALPN);
//! one that does not trust it fails its handshake without disturbing anyone else.

use std::time::Duration;

use http::Version;
use mock_providers::{MockConfig, MockServer, Outcome, Profile, Route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{anthropic_request, exchange, https_client, json_post, openai_request};

async fn start_tls(dir: &tempfile::TempDir, profile: Profile) -> MockServer {
    MockServer::start(MockConfig {
        tls: true,
        cert_out: Some(dir.path().join("mock.pem")),
        ..MockConfig::new(profile)
    })
    .await
    .expect("mock starts")
}

#[tokio::test]
async fn trusted_clients_get_chat_completions_over_http1_and_http2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mock = start_tls(&dir, Profile::fast()).await;
    assert!(
        mock.url().starts_with("https://127.0.0.1:"),
        "{}",
        mock.url()
    );
    let path = mock.certificate_path().expect("TLS on");
    assert_eq!(path, dir.path().join("mock.pem"));
    let pem = std::fs::read_to_string(path).expect("certificate written");
    assert_eq!(Some(pem.as_str()), mock.certificate_pem());
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

    let chat = format!("{}/v1/chat/completions", mock.url());
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let client = https_client(Some(&pem), version);
        let a = exchange(
            &client,
            json_post(&chat, &[], &openai_request(false, false)),
        )
        .await
        .expect("served");
        assert_eq!((a.status, a.version), (200, version), "{}", a.body);
        let v: serde_json::Value = serde_json::from_str(&a.body).expect("JSON body");
        assert_eq!(v["object"], "chat.completion");

        let a = exchange(&client, json_post(&chat, &[], &openai_request(true, true)))
            .await
            .expect("served");
        assert_eq!((a.status, a.version), (200, version), "{}", a.body);
        assert_eq!(
            a.headers["content-type"],
            "text/event-stream; charset=utf-8"
        );
        assert!(a.body.starts_with("data: {"), "{}", a.body);
        assert!(a.body.ends_with("data: [DONE]\n\n"), "{}", a.body);

        let messages = format!("{}/v1/messages", mock.url());
        let a = exchange(&client, json_post(&messages, &[], &anthropic_request(true)))
            .await
            .expect("served");
        assert_eq!((a.status, a.version), (200, version));
        assert!(
            a.body.ends_with("data: {\"type\":\"message_stop\"}\n\n"),
            "{}",
            a.body
        );
    }
    assert_eq!(mock.stats().count(Route::ChatCompletions, Outcome::Ok), 4);
    mock.shutdown().await;
}

#[tokio::test]
async fn the_certificate_names_every_loopback_address() {
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    let dir = tempfile::tempdir().expect("temp dir");
    let mock = start_tls(&dir, Profile::fast()).await;
    let pem = mock.certificate_pem().expect("TLS on");
    let cert = CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM parses");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).expect("root");
    let verifier = WebPkiServerVerifier::builder_with_provider(
        roots.into(),
        rustls::crypto::aws_lc_rs::default_provider().into(),
    )
    .build()
    .expect("verifier");
    let verify = |name: &'static str| {
        verifier.verify_server_cert(
            &cert,
            &[],
            &ServerName::try_from(name).expect("server name"),
            &[],
            UnixTime::now(),
        )
    };
    for name in ["127.0.0.1", "::1", "localhost"] {
        verify(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(verify("example.com").is_err());
    assert!(verify("10.0.0.1").is_err());

    // ALPN: h2 when the client offers it, HTTP/1.1 when that is all it speaks.
    for (offered, chosen) in [
        (vec![b"h2".to_vec(), b"http/1.1".to_vec()], b"h2".as_slice()),
        (vec![b"http/1.1".to_vec()], b"http/1.1".as_slice()),
    ] {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).expect("root");
        let mut config = rustls::ClientConfig::builder_with_provider(
            rustls::crypto::aws_lc_rs::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = offered;
        let tcp = tokio::net::TcpStream::connect(mock.addr())
            .await
            .expect("connect");
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(chosen));
    }

    // And a real client reaching the mock by name.
    let url = mock.url().replace("127.0.0.1", "localhost");
    let client = https_client(Some(pem), Version::HTTP_2);
    let a = exchange(
        &client,
        json_post(
            &format!("{url}/v1/chat/completions"),
            &[],
            &openai_request(false, false),
        ),
    )
    .await
    .expect("served by name");
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn failed_handshakes_do_not_disturb_other_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mock = start_tls(&dir, Profile::fast()).await;
    let pem = mock.certificate_pem().expect("TLS on").to_owned();
    let chat = format!("{}/v1/chat/completions", mock.url());

    // A trusted stream paced over ~0.6 s is in flight while the others fail.
    let trusted = https_client(Some(&pem), Version::HTTP_2);
    let slow = json_post(
        &chat,
        &[("x-mock-itl-ms", "20"), ("x-mock-tokens", "30")],
        &openai_request(true, false),
    );
    let in_flight = tokio::spawn({
        let trusted = trusted.clone();
        async move { exchange(&trusted, slow).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;

    for version in [Version::HTTP_11, Version::HTTP_2] {
        let untrusted = https_client(None, version);
        let err = exchange(
            &untrusted,
            json_post(&chat, &[], &openai_request(false, false)),
        )
        .await
        .expect_err("an untrusted certificate fails the handshake");
        assert!(err.is_connect(), "{err:?}");
        assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    }
    // Plain http to the TLS port, and a client that connects and says nothing: both dropped.
    let mut plain = tokio::net::TcpStream::connect(mock.addr())
        .await
        .expect("connect");
    plain
        .write_all(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the server closes a connection that is not TLS"
    );
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    let _silent = tokio::net::TcpStream::connect(mock.addr())
        .await
        .expect("connect");

    let a = in_flight.await.expect("task").expect("stream served");
    assert_eq!((a.status, a.version), (200, Version::HTTP_2));
    assert!(a.body.ends_with("data: [DONE]\n\n"), "{}", a.body);
    let a = exchange(
        &trusted,
        json_post(&chat, &[], &openai_request(false, false)),
    )
    .await
    .expect("still serving");
    assert_eq!(a.status, 200);
    // Shutdown does not wait for the silent client's handshake.
    tokio::time::timeout(Duration::from_secs(5), mock.shutdown())
        .await
        .expect("shut down in time");
}

#[tokio::test]
async fn plain_http_stays_the_default() {
    let mock = MockServer::start(MockConfig::new(Profile::fast()))
        .await
        .expect("mock starts");
    assert!(
        mock.url().starts_with("http://127.0.0.1:"),
        "{}",
        mock.url()
    );
    assert_eq!(mock.certificate_pem(), None);
    assert_eq!(mock.certificate_path(), None);
}
