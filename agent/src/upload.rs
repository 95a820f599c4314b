//! Delivery of signed alerts to the collector over HTTPS, in seq order, with bounded retries.
