//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`), so `grpcurl` and similar
//! tools can list and call tollgate's services without local `.proto` files.
//!
//! It advertises the Check service from a descriptor set that `build.rs` compiles from the
//! Envoy `.proto` files vendored in `proto/` (envoy-types ships none), and the health
//! service from the descriptor set tonic-health ships.

use tonic_reflection::server::{Builder, Error};
use tonic_reflection::server::{v1, v1alpha};

/// The encoded `FileDescriptorSet` of `envoy/service/auth/v3/external_auth.proto` and
/// everything it imports.
pub const EXT_AUTHZ_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ext_authz_descriptor_set.bin"));

/// The `grpc.reflection.v1` service.
///
/// # Errors
///
/// When a built-in descriptor set does not decode, which a test rules out.
pub fn v1() -> Result<v1::ServerReflectionServer<impl v1::ServerReflection>, Error> {
    builder().build_v1()
}

/// The `grpc.reflection.v1alpha` service, for clients that predate v1.
///
/// # Errors
///
/// When a built-in descriptor set does not decode, which a test rules out.
pub fn v1alpha() -> Result<v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>, Error> {
    builder().build_v1alpha()
}

fn builder() -> Builder<'static> {
    Builder::configure()
        .register_encoded_file_descriptor_set(EXT_AUTHZ_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}
