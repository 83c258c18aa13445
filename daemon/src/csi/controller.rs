//! The one Controller RPC a node-only driver answers, so that csi-sanity can
//! run its node tests: ControllerGetCapabilities with one UNKNOWN capability.

use csi_proto::v1::controller_server::Controller;
use csi_proto::v1::controller_service_capability::{Rpc, Type, rpc};
use csi_proto::v1::{
    ControllerGetCapabilitiesRequest, ControllerGetCapabilitiesResponse,
    ControllerServiceCapability,
};
use tonic::{Request, Response, Status};

/// Controller service stub.
#[derive(Debug, Clone, Default)]
pub struct ControllerService;

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn controller_get_capabilities(
        &self,
        _: Request<ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        Ok(Response::new(ControllerGetCapabilitiesResponse {
            capabilities: vec![ControllerServiceCapability {
                r#type: Some(Type::Rpc(Rpc {
                    r#type: rpc::Type::Unknown as i32,
                })),
            }],
        }))
    }
}
