//! gRPC server reflection: what `grpcurl` sees without local `.proto` files.

// The helpers below run only inside tests: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use prost::Message;
use prost_types::FileDescriptorProto;
use tokio_stream::StreamExt;
use tollgate::config::Config;
use tollgate::server::Server;
use tonic::transport::Channel;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};
use tonic_reflection::pb::v1alpha;

const CHECK_SERVICE: &str = "envoy.service.auth.v3.Authorization";
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

#[tokio::test]
async fn reflection_lists_the_check_and_health_services() {
    let (_server, channel) = start().await;

    let answer = reflect(&channel, MessageRequest::ListServices(String::new())).await;

    let MessageResponse::ListServicesResponse(list) = answer else {
        panic!("not a service list: {answer:?}");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            CHECK_SERVICE.to_owned(),
            HEALTH_SERVICE.to_owned(),
            "grpc.reflection.v1.ServerReflection".to_owned(),
        ])
    );
}

#[tokio::test]
async fn the_check_method_resolves_to_its_file_and_every_import() {
    let (_server, channel) = start().await;

    let files = reflect(
        &channel,
        MessageRequest::FileContainingSymbol(format!("{CHECK_SERVICE}.Check")),
    )
    .await;
    let file = first_file(files);
    let missing = unresolved_imports(&channel, &file).await;

    assert_eq!(
        file.name(),
        "envoy/service/auth/v3/external_auth.proto",
        "{file:?}"
    );
    let service = &file.service[0];
    assert_eq!(service.name(), "Authorization");
    assert_eq!(service.method[0].name(), "Check");
    assert_eq!(
        service.method[0].input_type(),
        ".envoy.service.auth.v3.CheckRequest"
    );
    assert_eq!(
        service.method[0].output_type(),
        ".envoy.service.auth.v3.CheckResponse"
    );
    assert!(missing.is_empty(), "imports not served: {missing:?}");
}

#[tokio::test]
async fn the_health_service_resolves_to_its_file() {
    let (_server, channel) = start().await;

    let files = reflect(
        &channel,
        MessageRequest::FileContainingSymbol(HEALTH_SERVICE.into()),
    )
    .await;

    assert_eq!(first_file(files).package(), "grpc.health.v1");
}

#[tokio::test]
async fn v1alpha_reflection_lists_the_check_service_too() {
    use v1alpha::server_reflection_client::ServerReflectionClient;
    use v1alpha::server_reflection_request::MessageRequest;
    use v1alpha::server_reflection_response::MessageResponse;

    let (_server, channel) = start().await;
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };

    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap().message_response;

    let Some(MessageResponse::ListServicesResponse(list)) = answer else {
        panic!("not a service list: {answer:?}");
    };
    assert!(list.service.iter().any(|s| s.name == CHECK_SERVICE));
}

async fn start() -> (Server, Channel) {
    let yaml = "server: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }\n";
    let config = Config::parse(yaml, Path::new("test.yaml")).unwrap();
    let server = Server::start(config).await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (server, channel)
}

async fn reflect(channel: &Channel, request: MessageRequest) -> MessageResponse {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let answer: ServerReflectionResponse = answers.next().await.unwrap().unwrap();
    answer.message_response.expect("a response")
}

fn first_file(answer: MessageResponse) -> FileDescriptorProto {
    let MessageResponse::FileDescriptorResponse(files) = answer else {
        panic!("not a file descriptor: {answer:?}");
    };
    FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice()).unwrap()
}

/// Follows imports by file name, as grpcurl does; returns those the server cannot serve.
async fn unresolved_imports(channel: &Channel, root: &FileDescriptorProto) -> Vec<String> {
    let mut seen = BTreeSet::from([root.name().to_owned()]);
    let mut todo: Vec<String> = root.dependency.clone();
    let mut missing = Vec::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        match reflect(channel, MessageRequest::FileByFilename(name.clone())).await {
            MessageResponse::FileDescriptorResponse(files) => {
                for raw in files.file_descriptor_proto {
                    let file = FileDescriptorProto::decode(raw.as_slice()).unwrap();
                    todo.extend(file.dependency);
                }
            }
            _ => missing.push(name),
        }
    }
    missing
}
