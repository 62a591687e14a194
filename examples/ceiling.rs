//! The ceiling of the read benchmark (workload 3 of `bench/run.sh`): actix-web doing nothing but answer
//! every GET with one fixed JSON body, as large as usersync's answer to the benchmark user's
//! `GET /Users/{id}`, with as many workers as usersync (one per core). usersync's read throughput is
//! reported as a fraction of this server's.
//!
//! `ceiling --listen 127.0.0.1:0 --body-bytes 612` prints `ceiling listening on http://ADDR` when ready.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;

#[derive(Parser)]
#[command(name = "ceiling", about = "Fixed-response actix-web server: the ceiling of the read benchmark")]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Size in bytes of the JSON body every GET gets.
    #[arg(long, default_value_t = 600)]
    body_bytes: usize,
    /// HTTP worker threads (default: one per core, as usersync).
    #[arg(long)]
    workers: Option<usize>,
}

/// A user-like JSON object padded to exactly `size` bytes (or the smallest such object, if larger).
fn body(size: usize) -> String {
    let head = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"ceiling","userName":"ceiling","pad":""#;
    let tail = r#""}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad))
}

fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let body = web::Bytes::from(body(cli.body_bytes));
    let workers = cli.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            let body = body.clone();
            App::new().default_service(web::get().to(move || {
                let body = body.clone();
                async move {
                    HttpResponse::Ok()
                        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/scim+json")))
                        .body(body)
                }
            }))
        })
        .workers(workers)
        .bind(&cli.listen)?;
        for addr in server.addrs() {
            println!("ceiling listening on http://{addr}");
        }
        server.run().await
    })
}
