//! State-machine test (see below).
