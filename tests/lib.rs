//! Integration tests live in the files beside this one; this crate has no code of its own.
