//! The control socket (Unix, 0600, in the state directory) that the CLI queries while the agent runs.
