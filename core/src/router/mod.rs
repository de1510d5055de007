//! Routing: host and path to API, method and URL template to operation.
