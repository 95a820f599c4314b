//! The running agent: ring reader, rule evaluation, durable alerting, uploader and control threads.

pub mod status;
