//! A bounded pid -> last exec table, so `process.parent.*` and effective-parent fields can be resolved.
