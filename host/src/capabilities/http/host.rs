//! The host side of `wasi:http/outgoing-handler`: [`OutgoingHooks`] decides
//! on each request of one call against its skill's [`HttpGrant`] (the list,
//! the request count) and hands the ones allowed to the client
//! (`client.rs`). wasmtime's bindings do the guest side (resources,
//! streams, forbidden headers).

use super::client::send;
use super::{HttpGrant, Reach, Target};
use crate::runtime::SendRequestFuture;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::time::Instant;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Decides on and sends the outgoing requests of one call.
pub struct OutgoingHooks {
    skill: Arc<str>,
    grant: Option<Arc<HttpGrant>>,
    deadline: Instant,
    requests_left: u32,
    bytes_left: Arc<AtomicU64>,
    /// Whether this call's first refusal was logged: one line a call, so a
    /// guest that loops on refused requests cannot flood the log.
    refusal_logged: bool,
}

impl OutgoingHooks {
    /// The hooks of one call of `skill`, which must end by `deadline`.
    pub fn new(skill: Arc<str>, grant: Option<Arc<HttpGrant>>, deadline: Instant) -> Self {
        let (requests_left, bytes) = grant.as_ref().map_or((0, 0), |g| (g.requests, g.bytes));
        OutgoingHooks {
            skill,
            grant,
            deadline,
            requests_left,
            bytes_left: Arc::new(AtomicU64::new(bytes)),
            refusal_logged: false,
        }
    }

    /// Logs the call's first refusal (the reason, and where it went).
    fn refused(&mut self, error: Error, why: &str, target: Option<&Target>) -> Error {
        if !self.refusal_logged {
            self.refusal_logged = true;
            match target {
                Some(t) => tracing::info!(
                    skill = %self.skill,
                    host = %crate::runtime::bounded::cut(&t.host, 256),
                    port = t.port,
                    https = t.https,
                    "outgoing HTTP request denied: {why} (further refusals of this call are not logged)"
                ),
                None => tracing::info!(
                    skill = %self.skill,
                    "outgoing HTTP request denied: {why} (further refusals of this call are not logged)"
                ),
            }
        }
        error
    }

    /// The target and how far it may reach, or why the request is refused.
    fn admit(&mut self, uri: &http::Uri) -> Result<(Target, Reach), Error> {
        let Some(grant) = self.grant.clone() else {
            let why = "the skill's manifest has no `allowed_outbound_hosts`";
            return Err(self.refused(Error::HttpRequestDenied, why, None));
        };
        // Every attempt counts, allowed or not: a guest cannot spin on
        // refused requests either.
        if self.requests_left == 0 {
            let why = format!(
                "the call has sent its `outbound_requests` ({})",
                grant.requests
            );
            return Err(self.refused(Error::ConnectionLimitReached, &why, None));
        }
        self.requests_left -= 1;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(Error::HttpProtocolError),
        };
        // A user part would be sent on in `host` (virtual-host confusion
        // at the far end): refused.
        let Some(authority) = uri.authority().filter(|a| !a.as_str().contains('@')) else {
            return Err(Error::HttpRequestUriInvalid);
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let target = Target { https, host, port };
        let Some(reach) = grant.allows(&target) else {
            let why = "not in the skill's `allowed_outbound_hosts`";
            return Err(self.refused(Error::HttpRequestDenied, why, Some(&target)));
        };
        Ok((target, reach))
    }
}

impl WasiHttpHooks for OutgoingHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendRequestFuture {
        let admitted = self.admit(request.uri());
        let (deadline, budget, skill) =
            (self.deadline, self.bytes_left.clone(), self.skill.clone());
        Box::new(async move {
            let (target, reach) = admitted?;
            send(request, options, target, reach, deadline, budget, skill).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(hosts: &[&str], requests: u32) -> OutgoingHooks {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let grant = HttpGrant::parse(&hosts, Some(requests), None)
            .unwrap()
            .map(Arc::new);
        OutgoingHooks::new(
            "t".into(),
            grant,
            Instant::now() + std::time::Duration::from_secs(1),
        )
    }

    #[test]
    fn requests_are_admitted_by_the_list_and_counted() {
        let mut h = hooks(&["https://api.example.com"], 6);
        let ok: http::Uri = "https://API.example.com/v1?q=1".parse().unwrap();
        assert_eq!(h.admit(&ok).unwrap().1, Reach::Public);
        for refused in [
            "http://api.example.com/",
            "https://api.example.com:8443/",
            "https://evil.test@api.example.com/",
            "https://api.example.com.evil.test/",
        ] {
            let uri: http::Uri = refused.parse().unwrap();
            assert!(h.admit(&uri).is_err(), "{refused}");
        }
        // The refused attempts count too: the sixth attempt is the last.
        assert!(h.admit(&ok).is_ok());
        assert!(matches!(h.admit(&ok), Err(Error::ConnectionLimitReached)));
        // No grant: everything is denied.
        let mut none = OutgoingHooks::new("t".into(), None, Instant::now());
        assert!(matches!(none.admit(&ok), Err(Error::HttpRequestDenied)));
    }
}
