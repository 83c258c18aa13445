//! The CSI gRPC services: Identity, Node, and Controller's
//! `ControllerGetCapabilities`. Handlers never `Debug`-print a request.

mod controller;
mod identity;
mod node;
pub mod status;
pub mod target;

pub use controller::ControllerService;
pub use identity::IdentityService;
pub use node::NodeService;
