//! Health for load balancers and orchestrators, unauthenticated and cheap: `/livez` (and its alias
//! `/healthz`) says the process answers; `/readyz` says whether it should be sent traffic — the store is
//! open and writable, the rule engine runs, and no graceful shutdown has begun.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;

/// Whether the server is on its way out; set from the moment a graceful shutdown starts.
#[derive(Debug, Default)]
pub struct Readiness {
    shutting_down: AtomicBool,
}

impl Readiness {
    /// From now on `/readyz` answers 503: the load balancer stops sending new requests while the ones in
    /// flight finish.
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    for path in ["/livez", "/healthz"] {
        cfg.service(web::resource(path).route(web::get().to(livez)).route(web::head().to(livez)));
    }
    cfg.service(web::resource("/readyz").route(web::get().to(readyz)).route(web::head().to(readyz)));
}

pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.writable();
    let engine = state.engine.as_ref().is_some_and(|e| e.running());
    let serving = !state.readiness.is_shutting_down();
    let checks = json!({
        "store": if store { "writable" } else { "not writable" },
        "engine": if engine { "running" } else { "stopped" },
        "server": if serving { "serving" } else { "shutting down" },
    });
    if store && engine && serving {
        HttpResponse::Ok().json(json!({"status": "ready", "checks": checks}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable", "checks": checks}))
    }
}
