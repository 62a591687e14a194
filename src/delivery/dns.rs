//! DNS look-ups for domain verification: the TXT records at `_usersync.<domain>`, asked of the resolver
//! given by `--dns-resolver ADDR:PORT` or else the system's (`/etc/resolv.conf`). Plain DNS over UDP with
//! TCP for long answers; nothing is cached, so a record just published (or corrected) counts at the next
//! check.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};

use crate::rules::domains::TxtAnswer;

/// How long one question to the resolver may take, and how often it is asked again.
const TIMEOUT: Duration = Duration::from_secs(3);
const ATTEMPTS: usize = 2;

/// Asks TXT questions of one configured resolver.
pub struct TxtChecker {
    resolver: Result<TokioResolver, String>,
}

impl TxtChecker {
    /// A checker asking `server`, or the system's resolvers. A system configuration that cannot be read
    /// does not stop the server: each check then answers why it cannot be made.
    pub fn new(server: Option<SocketAddr>) -> TxtChecker {
        let provider = TokioRuntimeProvider::default();
        let builder = match server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                Ok(Resolver::builder_with_config(ResolverConfig::from_name_servers(vec![server]), provider))
            }
            None => Resolver::builder(provider).map_err(|e| format!("the system's DNS configuration: {e}")),
        };
        let resolver = builder.and_then(|mut b| {
            let options: &mut ResolverOpts = b.options_mut();
            options.timeout = TIMEOUT;
            options.attempts = ATTEMPTS;
            options.cache_size = 0;
            b.build().map_err(|e| format!("the DNS resolver: {e}"))
        });
        if let Err(e) = &resolver {
            log::warn!("domain verification by DNS is unavailable: {e}");
        }
        TxtChecker { resolver }
    }

    /// The TXT records at `name` (a fully qualified name without its trailing dot). `Err` when the
    /// resolver could not answer (timeout, server failure), in words.
    pub async fn txt(&self, name: &str) -> Result<TxtAnswer, String> {
        let resolver = self.resolver.as_ref().map_err(Clone::clone)?;
        match resolver.txt_lookup(format!("{name}.")).await {
            Ok(lookup) => {
                let records: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(txt) => {
                            Some(txt.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect::<String>())
                        }
                        _ => None,
                    })
                    .collect();
                Ok(if records.is_empty() { TxtAnswer::NoRecord } else { TxtAnswer::Records(records) })
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(TxtAnswer::NoRecord),
            Err(e) => Err(format!("the DNS look-up of {name} failed: {e}")),
        }
    }
}
