//! The sidecar as `gatehouse serve` builds it: [`gatehouse_server::app`], with the reload
//! gates of the policy-author tools ([`crate::testing::gate`]).

pub use gatehouse_server::app::*;

use crate::config::Config;

/// Builds the sidecar from `config` as `gatehouse serve` does: [`Application::build_gated`]
/// with the gates of `--require-properties` and `--require-suites`.
pub async fn build(config: &Config) -> Result<Application, StartError> {
    Application::build_gated(config, crate::testing::gate::open).await
}
