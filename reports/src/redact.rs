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
            let value = if is_secret(key) {
                toml::Value::String(REDACTED.to_owned())
            } else {
                redacted_value(value)
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
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|fragment| match *fragment {
        "token" => key == "token" || key.ends_with("_token") || key.ends_with("-token"),
        fragment => key.contains(fragment),
    })
}

/// serde `serialize_with` for configuration tables.
pub(crate) fn serialize_table<S: serde::Serializer>(
    table: &toml::Table,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    redacted(table).serialize(serializer)
}
