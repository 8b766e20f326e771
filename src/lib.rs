//! Outguard: an outbound spam-gateway appliance. The library holds every
//! part of the daemon; `main.rs` is only the command-line entry. Being a
//! library lets integration tests and fuzz targets reach the parsers.

pub mod admin;
pub mod app;
pub mod appliance;
pub mod auth;
pub mod behaviour;
pub mod bounds;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datadir;
pub mod delivery;
pub mod dkim;
pub mod housekeeping;
pub mod import;
pub mod incoming;
pub mod intl;
pub mod jail;
pub mod logsafe;
pub mod notify;
pub mod policy;
pub mod privilege;
pub mod scan;
pub mod settings;
pub mod smtp;
pub mod stdout;
pub mod store;
pub mod submission;
pub mod tls;
pub mod users;
