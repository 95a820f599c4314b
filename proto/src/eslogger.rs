//! Decoder for `eslogger exec` JSON lines into [`crate::ExecEvent`].
