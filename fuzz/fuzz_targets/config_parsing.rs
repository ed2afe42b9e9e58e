//! SLO files, gateway configs and mock profiles: any text gets a value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = reports::slo::parse_slos(text);
    if let Ok(config) = reference_impl::GatewayConfig::from_toml(text) {
        let _ = config.validate();
    }
    let _ = mock_providers::Profile::from_toml(text);
});
