//! Integration, fault and compile-fail suites for the cache workspace.
