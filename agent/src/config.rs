//! The agent configuration: TOML keys, defaults, `--config` / `$NIGHTJAR_CONFIG` / platform path.
