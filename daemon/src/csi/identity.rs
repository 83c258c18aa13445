//! CSI Identity service.

use csi_proto::v1::identity_server::Identity;
use csi_proto::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, ProbeRequest, ProbeResponse,
};
use tonic::{Request, Response, Status};

/// GetPluginInfo, GetPluginCapabilities (no controller service is
/// advertised: vaultlet is node-only), Probe.
#[derive(Debug, Clone)]
pub struct IdentityService {
    driver_name: String,
}

impl IdentityService {
    /// `driver_name` was validated by `config`.
    pub fn new(driver_name: String) -> Self {
        Self { driver_name }
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: self.driver_name.clone(),
            vendor_version: env!("CARGO_PKG_VERSION").to_string(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: vec![],
        }))
    }

    async fn probe(&self, _: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        // The gRPC server starts only after the registry, the Key Vault
        // transport and the socket are ready, so answering means ready.
        Ok(Response::new(ProbeResponse { ready: Some(true) }))
    }
}
