//! Elastic detection rules: loading TOML, KQL and EQL, and the compiled matcher.
