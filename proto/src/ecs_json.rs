//! Decoder for ECS NDJSON documents (`--format ecs`) into [`crate::ExecEvent`].
