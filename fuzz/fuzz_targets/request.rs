//! Fuzzes the decision routes with arbitrary bodies: every answer must be a clean 4xx or a
//! 200, never a 5xx, a panic or a hang.
//!
//! Run with (from the repository root; cargo-fuzz needs nightly features, which
//! RUSTC_BOOTSTRAP=1 enables on the stable toolchain):
//!
//! ```sh
//! cargo install cargo-fuzz --locked
//! RUSTC_BOOTSTRAP=1 cargo fuzz run request -- -max_total_time=60
//! ```
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gatehouse::decide::Decider;
use gatehouse::http::{self, AppState, HttpConfig, Shared};
use gatehouse::policy::{PolicyStore, Sources};
use gatehouse::telemetry::Metrics;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

fn app() -> &'static (axum::Router, tokio::runtime::Runtime) {
    static APP: OnceLock<(axum::Router, tokio::runtime::Runtime)> = OnceLock::new();
    APP.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let store = PolicyStore::open(Sources {
            policies: root.join("policies"),
            schema: root.join("schemas/project_sharing.cedarschema"),
            entities: None,
        })
        .expect("the bundled policies load");
        let state = AppState::new(Shared {
            store: Arc::new(store),
            decider: Decider::new(10_000, 10_000, Duration::from_secs(300)),
            metrics: Arc::new(Metrics::new()),
            log: None,
            config: HttpConfig::default(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        (http::app(state), runtime)
    })
}

fuzz_target!(|data: &[u8]| {
    let (app, runtime) = app();
    let path = match data.first().map(|b| b % 3) {
        Some(0) => "/v1/is_authorized",
        Some(1) => "/v1/is_authorized/batch",
        _ => "/v1/allowed_actions",
    };
    let request = axum::http::Request::post(path)
        .body(axum::body::Body::from(data.get(1..).unwrap_or_default().to_vec()))
        .expect("request");
    let response = runtime.block_on(app.clone().oneshot(request)).expect("infallible");
    assert!(response.status().as_u16() < 500, "{path}: {}", response.status());
});
