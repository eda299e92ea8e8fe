//! End-to-end tests: the real `darkfactory` binary on a loopback port with
//! temporary directories, driven over HTTP and through its CLI.
//!
//! Needs the wasm skills built first (`make skills`; `make test` does it).

mod components;
mod harness;

mod api_errors;
mod authoring;
mod board;
mod cli;
mod config;
mod contract;
mod docs;
mod factory;
mod fleet;
mod hostile_clients;
mod hostile_components;
mod hostile_files;
mod idle;
mod ingest;
mod kpi;
mod languages;
mod lifecycle;
mod memory;
mod swap;
mod synthesis;
mod workflow;
