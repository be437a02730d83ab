//! stub
pub mod store;
pub mod ssh;
pub mod transport;
