//! Keeps secrets of the run configuration out of every file a run writes.

use serde::Serialize;

/// What a secret value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Key fragments that mark a value as secret (matched case-insensitively).
const SECRET_KEYS: [&str; 6] = [
    "api_key",
    "apikey",
    "token",
    "secret",
    "password",
    "authorization",
];

/// A copy of `table` with the values of secret-looking keys replaced by [`REDACTED`], at any depth.
///
/// Keys like `max_tokens` or `output_tokens` are counts, not credentials, so `token` only matches
/// a key that is `token` or ends with `_token` / `-token`.
pub fn redacted(table: &toml::Table) -> toml::Table {
    table
        .iter()
        .map(|(key, value)| {
            let value = match value {
                // Request headers keep the scheme word of a credential (`Bearer ***`).
                toml::Value::Table(headers) if key == "headers" => toml::Value::Table(
                    headers
                        .iter()
                        .map(|(name, value)| {
                            let shown = match value.as_str() {
                                Some(text) => header_value(name, text),
                                None => REDACTED.to_owned(),
                            };
                            (name.clone(), toml::Value::String(shown))
                        })
                        .collect(),
                ),
                _ if is_secret(key) => toml::Value::String(REDACTED.to_owned()),
                _ => redacted_value(value),
            };
            (key.clone(), value)
        })
        .collect()
}

fn redacted_value(value: &toml::Value) -> toml::Value {
    match value {
        toml::Value::Table(table) => toml::Value::Table(redacted(table)),
        toml::Value::Array(items) => toml::Value::Array(items.iter().map(redacted_value).collect()),
        other => other.clone(),
    }
}

fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    // `api_key_env` and the like name an environment variable, not its value.
    if key.ends_with("_env") {
        return false;
    }
    SECRET_KEYS.iter().any(|fragment| match *fragment {
        "token" => key == "token" || key.ends_with("_token") || key.ends_with("-token"),
        fragment => key.contains(fragment),
    })
}

/// True for headers that carry credentials: their values are never written or printed.
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "auth", "key", "token", "secret", "password", "cookie", "session",
    ]
    .iter()
    .any(|fragment| name.contains(fragment))
}

/// A header's value as a run may write it: a credential becomes `***`, keeping its scheme word
/// (`Bearer ***`) so a reader still sees how the target was reached.
pub fn header_value(name: &str, value: &str) -> String {
    if !is_secret_header(name) {
        return value.to_owned();
    }
    match value.trim().split_once(' ') {
        Some((scheme, _)) => format!("{scheme} ***"),
        None => "***".to_owned(),
    }
}

/// serde `serialize_with` for configuration tables.
pub(crate) fn serialize_table<S: serde::Serializer>(
    table: &toml::Table,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    redacted(table).serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_keep_only_their_scheme() {
        assert_eq!(header_value("Authorization", "Bearer sk-123"), "Bearer ***");
        assert_eq!(header_value("x-api-key", "sk-123"), "***");
        assert_eq!(header_value("X-Route", "tenant-a"), "tenant-a");
        assert!(is_secret_header("Proxy-Authorization"));
        assert!(!is_secret_header("anthropic-version"));
    }

    #[test]
    fn secret_keys_are_redacted_but_variable_names_are_not() {
        let table: toml::Table = toml::from_str(
            "api_key_env = \"OPENAI_API_KEY\"\nmax_tokens = 3\n[headers]\nx-api-key = \"sk\"\n",
        )
        .expect("valid");
        let redacted = redacted(&table);
        assert_eq!(redacted["api_key_env"].as_str(), Some("OPENAI_API_KEY"));
        assert_eq!(redacted["max_tokens"].as_integer(), Some(3));
        assert_eq!(redacted["headers"]["x-api-key"].as_str(), Some("***"));
    }
}
