//! One TOML table laid over another: how a gateway configuration takes a user's overlay file,
//! and how `harness scenario`'s flags take precedence over its `--config` file.

/// Sets every key of `extra` in `into`, descending into tables present in both.
pub(crate) fn overlay(into: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => overlay(inner, value),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}
