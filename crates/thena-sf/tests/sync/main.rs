//! The connector driven through its library, in-process: the sync pipeline,
//! provisioning and the doctor, reliability under faults, the token refresh
//! race, and the store's suite on both backends. One test binary, grouped by
//! feature (ARCHITECTURE.md, "Testing").

mod pipeline;
mod provision;
mod refresh_race;
mod reliability;
mod store_suite;
