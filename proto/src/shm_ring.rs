//! The shared-memory single-producer single-consumer byte ring between sensor and agent.
