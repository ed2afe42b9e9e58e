//! `harness bare-proxy` (hidden): the bare proxy of `reference_impl::bare` as a process of its
//! own, so `harness overhead --bare` measures it like any other side.

use std::net::IpAddr;

use anyhow::Context;
use reference_impl::bare::BareProxy;
use reference_impl::server::listen;

use crate::signal::stop_signal;

/// Serves the bare proxy on `bind:port` in front of `upstream` until Ctrl-C or SIGTERM; prints
/// its address on stderr as the mock and the gateway do.
pub async fn serve_bare_proxy(upstream: &str, bind: IpAddr, port: u16) -> anyhow::Result<()> {
    let proxy = BareProxy::new(upstream)?;
    let stop = stop_signal()?;
    let listener = listen((bind, port).into()).with_context(|| format!("binding {bind}:{port}"))?;
    let address = listener.local_addr().context("reading the bound address")?;
    eprintln!("bare proxy at http://{address} (Ctrl-C stops)");
    tokio::select! {
        () = proxy.serve(listener) => Ok(()),
        stopped = stop => stopped,
    }
}
