//! Configuration snapshot model.
