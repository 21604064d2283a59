//! The `thena-sf` binary run as a process: its command line, crash and
//! restart, the hardening review's attacks, company networks (CA, proxy), a
//! database outage, and replicas on one PostgreSQL. One test binary, grouped
//! by feature (ARCHITECTURE.md, "Testing").

mod cli;
mod crash;
mod hardening;
mod operations;
mod outage;
mod replicas;
