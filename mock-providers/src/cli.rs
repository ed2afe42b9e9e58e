//! The flags that start a mock server from a command line, shared by the `mock-providers`
//! binary and `harness mock` so both take the same options with the same meaning.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::{MockConfig, Profile, ProfileError};

/// Where the mock listens, how it paces, and how clients must reach it.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; loopback unless other hosts must reach it.
    #[arg(long, alias = "host", value_name = "IP", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 9000)]
    port: u16,
    /// `fast`, `realistic`, or the path of a TOML profile.
    #[arg(long, default_value = "realistic")]
    profile: String,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with a self-signed certificate made at start
    /// for 127.0.0.1, ::1 and localhost; its path is printed beside the URL (trust it with the
    /// client's CA option, `--ca-cert` for the harness).
    #[arg(long)]
    tls: bool,
    /// Where to write the certificate PEM with --tls [default: mock-providers-PORT.pem in the
    /// system temp directory].
    #[arg(long, value_name = "FILE", requires = "tls")]
    cert_out: Option<PathBuf>,
    /// Require this API key on every provider route (Authorization: Bearer KEY; x-api-key also
    /// on /v1/messages); a missing or wrong key gets the provider's 401.
    #[arg(long, value_name = "KEY", env = "MOCK_PROVIDERS_REQUIRE_KEY")]
    require_key: Option<String>,
}

impl ServeArgs {
    /// The server configuration these flags ask for; fails when the profile cannot be read.
    pub fn config(self) -> Result<MockConfig, ProfileError> {
        Ok(MockConfig {
            bind: SocketAddr::new(self.bind, self.port),
            tls: self.tls,
            cert_out: self.cert_out,
            api_key: self.require_key,
            ..MockConfig::new(Profile::from_name_or_file(&self.profile)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn config(args: &[&str]) -> Result<MockConfig, String> {
        let command = Command::try_parse_from(std::iter::once("mock").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        command.serve.config().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_listen_on_loopback_9000_with_the_realistic_profile() {
        let config = config(&[]).unwrap();
        assert_eq!(config.bind, SocketAddr::from(([127, 0, 0, 1], 9000)));
        assert_eq!(config.profile, Profile::realistic());
        assert!(!config.tls);
        assert_eq!(config.api_key, None);
    }

    #[test]
    fn flags_reach_the_configuration() {
        let config = config(&[
            "--bind",
            "::1",
            "--port",
            "0",
            "--profile",
            "fast",
            "--tls",
            "--cert-out",
            "m.pem",
            "--require-key",
            "sk-test",
        ])
        .unwrap();
        assert_eq!(config.bind, "[::1]:0".parse().unwrap());
        assert_eq!(config.profile, Profile::fast());
        assert!(config.tls);
        assert_eq!(config.cert_out, Some(PathBuf::from("m.pem")));
        assert_eq!(config.api_key.as_deref(), Some("sk-test"));
    }

    #[test]
    fn a_certificate_path_needs_tls_and_a_profile_must_exist() {
        let e = config(&["--cert-out", "m.pem"]).unwrap_err();
        assert!(e.contains("--tls"), "{e}");
        let e = config(&["--profile", "no-such-profile.toml"]).unwrap_err();
        assert!(e.contains("no-such-profile.toml"), "{e}");
    }
}
