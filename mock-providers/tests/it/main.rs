//! The mock's integration tests, one binary: a real HTTP client against the native server
//! (plain and HTTPS, keyed, faulty, paced), the `mock-providers` binary, and the wiremock
//! builders byte for byte against the native server. `common` starts mocks and reads answers.

mod common;

mod auth;
#[cfg(unix)]
mod binary;
mod faults;
mod limits;
mod timing;
mod tls;
mod wire;
