//! Integration, fault and compile-fail suites for the cache workspace, and
//! the support they share.

pub mod deployment;
mod node;
mod redis_binary;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
pub mod stampede;
pub mod support;
