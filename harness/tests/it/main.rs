//! The harness's integration tests, one binary: each module runs the built `harness` binary
//! (scenarios against the embedded stack or real servers on loopback, compare, gate, merge,
//! overhead, usage errors) and checks what it prints, writes and exits with. `common` runs it,
//! starts its servers and reads its run directories; `common::MACHINE` keeps the tests that
//! time closely from running beside another test's load.

mod common;

mod accuracy;
mod cli_errors;
mod compare;
mod coordinated_omission;
mod embedded;
mod external;
mod gate;
mod merge;
mod overhead;
mod round_robin;
mod websocket;
