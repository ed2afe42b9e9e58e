//! TLS for `https://` targets: rustls on aws-lc-rs, the bundled web PKI roots plus an optional
//! private CA, or no verification at all when the run asks for it.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::ClientError;
use super::options::Verify;

/// The rustls configuration for `verify`. ALPN is left to the connector, which offers `h2`
/// unless the run forces HTTP/1.1.
pub(crate) fn config(verify: &Verify) -> Result<ClientConfig, ClientError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let config = match verify {
        Verify::WebPki => builder.with_root_certificates(web_pki_roots()),
        Verify::WithCa(path) => {
            let mut roots = web_pki_roots();
            for cert in ca_certificates(path)? {
                roots.add(cert).map_err(|e| ClientError::CaCert {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            }
            builder.with_root_certificates(roots)
        }
        Verify::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider))),
    };
    Ok(config.with_no_client_auth())
}

fn web_pki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// Every certificate of a PEM file; a file with none is an error, not an empty trust store.
fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let invalid = |why: String| ClientError::CaCert {
        path: path.to_owned(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

/// The TLS failure somewhere in `error`'s chain of causes, if the failure was one. An
/// `io::Error` hides the error it wraps from `source()`, so it is looked into as well.
pub(crate) fn tls_failure<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let wrapped = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref());
    if let Some(tls) = wrapped.and_then(|inner| tls_failure(inner)) {
        return Some(tls);
    }
    error.source().and_then(tls_failure)
}

/// `--insecure`: accepts any certificate, still checking that the handshake's signatures are
/// made by the key in it (so the connection is at least encrypted to whoever answered).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("gatebench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let error = config(&Verify::WithCa(empty.clone())).expect_err("no certificate");
        assert!(error.to_string().contains("empty.pem"), "{error}");
        let missing = config(&Verify::WithCa(dir.join("missing.pem"))).expect_err("missing");
        assert!(missing.to_string().contains("missing.pem"), "{missing}");
        std::fs::remove_dir_all(&dir).ok();
        assert!(config(&Verify::WebPki).is_ok());
        assert!(config(&Verify::Insecure).is_ok());
    }
}
