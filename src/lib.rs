//! tollgate: external authorization for Envoy.
//!
//! Envoy's `ext_authz` filter calls [`service::CheckService`] over gRPC
//! (`envoy.service.auth.v3.Authorization/Check`) for every request. tollgate picks the
//! route's [`policy`], finds the bearer [`token`], verifies it against the provider's
//! keys ([`jwks`], [`verify`]), checks the policy's requirements, and answers with a
//! [`decision`]: allow with headers for the upstream, or deny with status, challenge and
//! reason.
//!
//! The request path (`service` → `policy` → `token` → `verify` → `decision`) does no
//! network I/O: keys come from snapshots that one refresh task per provider keeps fresh
//! and swaps atomically. Start reading at [`authorizer::Authorizer::check`].

pub mod admin;
pub mod apim;
pub mod authorizer;
pub mod config;
pub mod correlation;
pub mod decision;
pub mod explain;
pub mod jwks;
pub mod policy;
pub mod probe;
pub mod request;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod token;
pub mod token_cache;
pub mod verify;

/// Seconds since the Unix epoch, as JWT NumericDate values count them.
pub type UnixTime = i64;

/// The current time as [`UnixTime`].
pub fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
