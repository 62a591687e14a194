//! The console's static files, compiled into the binary: vendored htmx (see its LICENCE file beside it),
//! the console's own script and style sheet.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const HTMX: &[u8] = include_bytes!("assets/htmx-2.0.11.min.js");
const SCRIPT: &[u8] = include_bytes!("assets/console.js");
const STYLE: &[u8] = include_bytes!("assets/console.css");

fn asset(body: &'static [u8], content_type: &'static str, cache: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(content_type).insert_header((header::CACHE_CONTROL, cache)).body(body)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    // htmx's name carries its version, so it can be kept for a year; the console's own files change with
    // the binary and are checked again after an hour.
    cfg.route(
        "/assets/htmx-2.0.11.min.js",
        web::get().to(|| async {
            asset(HTMX, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable")
        }),
    )
    .route(
        "/assets/console.js",
        web::get().to(|| async { asset(SCRIPT, "text/javascript; charset=utf-8", "public, max-age=3600") }),
    )
    .route(
        "/assets/console.css",
        web::get().to(|| async { asset(STYLE, "text/css; charset=utf-8", "public, max-age=3600") }),
    );
}
