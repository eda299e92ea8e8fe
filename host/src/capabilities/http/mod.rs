//! Outgoing HTTP (`wasi:http/outgoing-handler`) for skills granted it.
//!
//! JavaScript components import `wasi:http` for `fetch` whether they use it
//! or not, and a skill may call an external API directly, so the host serves
//! the interface; what a call may reach is its manifest's
//! `allowed_outbound_hosts` (the shape of Spin's key of that name). Deny by
//! default: without the key every request answers `HTTP-request-denied`.
//!
//! An entry is `scheme://host[:port]`: scheme `http`, `https` or `*`; host a
//! name, `*.domain` (its subdomains), `*` (any public host), or an IP
//! literal; port a number or `*`, and the scheme's default when left out.
//! The host resolves names itself and connects to the address it checked:
//! a name that resolves to a loopback, private, link-local or otherwise
//! non-public address is refused (DNS rebinding), unless the entry names
//! that address literally or is `localhost`. Redirects are never followed by
//! the host; a guest library that follows one sends a new request, which is
//! checked again. Each call may send `outbound_requests` requests (16 by
//! default) and move `outbound_mib` MiB of bodies (16 by default), and no
//! request outlives the call's deadline.

mod client;
mod host;

pub use host::OutgoingHooks;

use std::net::IpAddr;

/// Requests one call may send unless its manifest says otherwise.
pub const DEFAULT_REQUESTS: u32 = 16;
/// Most requests a manifest may allow one call.
pub const MAX_REQUESTS: u32 = 1024;
/// Body bytes (sent and received) one call may move by default, in MiB.
pub const DEFAULT_MIB: u64 = 16;
/// Most body MiB a manifest may allow one call.
pub const MAX_MIB: u64 = 1024;

/// The outgoing HTTP a skill may do: its allow-list and per-call budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    rules: Vec<Rule>,
    /// Requests per call.
    pub requests: u32,
    /// Body bytes (both ways) per call.
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Any host (public addresses only).
    Any,
    /// `*.suffix`: every subdomain of `suffix` (not `suffix` itself).
    Subdomains(String),
    /// One name.
    Name(String),
    /// One address, which may be private: it is named.
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// The default port of the request's scheme.
    Default,
    One(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    scheme: Scheme,
    host: HostPattern,
    port: PortPattern,
}

/// Where a request goes, as the allow-list sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `true` for `https`.
    pub https: bool,
    /// The host, lower case, without brackets.
    pub host: String,
    /// The port (the scheme's default when the URI has none).
    pub port: u16,
}

/// What the allow-list allows of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Public addresses only.
    Public,
    /// Any address: the rule names the address, or is `localhost`.
    Named,
}

impl HttpGrant {
    /// Parses the manifest's keys; `None` when there is no allow-list.
    pub fn parse(
        hosts: &[String],
        requests: Option<u32>,
        mib: Option<u64>,
    ) -> Result<Option<Self>, String> {
        if hosts.is_empty() {
            if requests.is_some() || mib.is_some() {
                return Err(
                    "`outbound_requests` and `outbound_mib` need `allowed_outbound_hosts`".into(),
                );
            }
            return Ok(None);
        }
        let rules = hosts
            .iter()
            .map(|h| Rule::parse(h).map_err(|e| format!("`allowed_outbound_hosts`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let requests = requests.unwrap_or(DEFAULT_REQUESTS);
        if requests == 0 || requests > MAX_REQUESTS {
            return Err(format!(
                "`outbound_requests` is {requests}; it must be between 1 and {MAX_REQUESTS}"
            ));
        }
        let mib = mib.unwrap_or(DEFAULT_MIB);
        if mib == 0 || mib > MAX_MIB {
            return Err(format!(
                "`outbound_mib` is {mib}; it must be between 1 and {MAX_MIB}"
            ));
        }
        Ok(Some(HttpGrant {
            rules,
            requests,
            bytes: mib << 20,
        }))
    }

    /// What the allow-list allows of `target`; `None` when no rule matches.
    pub fn allows(&self, target: &Target) -> Option<Reach> {
        let mut best = None;
        for rule in &self.rules {
            if let Some(reach) = rule.matches(target) {
                if reach == Reach::Named {
                    return Some(reach);
                }
                best = Some(reach);
            }
        }
        best
    }
}

impl Rule {
    fn parse(text: &str) -> Result<Self, String> {
        let entry = text.trim();
        let Some((scheme, rest)) = entry.split_once("://") else {
            return Err(format!(
                "`{entry}` has no scheme: write `https://{entry}` (or `http://`, `*://`)"
            ));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "*" => Scheme::Any,
            other => {
                return Err(format!(
                    "`{entry}`: the scheme `{other}` is not `http`, `https` or `*`"
                ))
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{entry}` is more than `scheme://host[:port]`: an allowed host has no path, \
                 query or user"
            ));
        }
        let (host, port) = split_host_port(rest)
            .ok_or_else(|| format!("`{entry}`: cannot read the host and port"))?;
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::One(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("`{entry}`: `{p}` is not a port (1-65535 or `*`)"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            check_name(suffix).map_err(|e| format!("`{entry}`: {e}"))?;
            HostPattern::Subdomains(suffix.to_string())
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostPattern::Ip(ip)
        } else {
            check_name(&host).map_err(|e| format!("`{entry}`: {e}"))?;
            HostPattern::Name(host)
        };
        Ok(Rule { scheme, host, port })
    }

    fn matches(&self, target: &Target) -> Option<Reach> {
        let scheme = match self.scheme {
            Scheme::Any => true,
            Scheme::Https => target.https,
            Scheme::Http => !target.https,
        };
        let default_port = if target.https { 443 } else { 80 };
        let port = match self.port {
            PortPattern::Any => true,
            PortPattern::Default => target.port == default_port,
            PortPattern::One(p) => target.port == p,
        };
        if !scheme || !port {
            return None;
        }
        match &self.host {
            HostPattern::Any => Some(Reach::Public),
            HostPattern::Subdomains(suffix) => target
                .host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.ends_with('.') && head.len() > 1)
                .then_some(Reach::Public),
            HostPattern::Name(name) if *name == target.host => Some(if name == "localhost" {
                Reach::Named
            } else {
                Reach::Public
            }),
            HostPattern::Name(_) => None,
            HostPattern::Ip(ip) => {
                (target.host.parse::<IpAddr>().ok() == Some(*ip)).then_some(Reach::Named)
            }
        }
    }
}

/// Splits `host[:port]`, with IPv6 literals in brackets.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((text, None)),
    }
    .filter(|(host, _)| !host.is_empty())
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a host name"))
    }
}

/// Whether `ip` is an address of the public internet: not loopback,
/// private, link-local, shared (CGNAT), documentation, benchmarking,
/// multicast, broadcast, unspecified or reserved, nor an IPv6 address that
/// embeds one of those (mapped, NAT64, 6to4) or is unique-local.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 192 && b == 88 && c == 99)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // Local-use NAT64 (64:ff9b:1::/48, RFC 8215) and SIIT
            // (::ffff:0:0:0/96) lead to addresses of a local network.
            if (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) || s[0..5] == [0, 0, 0, 0, 0xffff] {
                return false;
            }
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address.
            let v4 = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
            };
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                return is_public(v4(s[6], s[7]));
            }
            if s[0] == 0x2002 {
                return is_public(v4(s[1], s[2]));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                // Teredo (2001::/32), benchmarking (2001:2::/48), ORCHID
                // (2001:10::/28).
                || (s[0] == 0x2001 && (s[1] == 0 || s[1] == 2 || (s[1] & 0xfff0) == 0x10))
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])
                || s[0..6] == [0, 0, 0, 0, 0, 0])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(hosts: &[&str]) -> HttpGrant {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        HttpGrant::parse(&hosts, None, None).unwrap().unwrap()
    }

    fn target(https: bool, host: &str, port: u16) -> Target {
        Target {
            https,
            host: host.into(),
            port,
        }
    }

    #[test]
    fn entries_match_scheme_host_and_port() {
        let g = grant(&["https://api.example.com", "http://*.internal.test:8080"]);
        assert_eq!(
            g.allows(&target(true, "api.example.com", 443)),
            Some(Reach::Public)
        );
        assert_eq!(g.allows(&target(false, "api.example.com", 80)), None);
        assert_eq!(g.allows(&target(true, "api.example.com", 8443)), None);
        assert_eq!(g.allows(&target(true, "evil-api.example.com", 443)), None);
        assert_eq!(
            g.allows(&target(false, "a.internal.test", 8080)),
            Some(Reach::Public)
        );
        assert_eq!(g.allows(&target(false, "internal.test", 8080)), None);
        assert_eq!(g.allows(&target(false, "xinternal.test", 8080)), None);
        let g = grant(&["*://*:*"]);
        assert_eq!(g.allows(&target(false, "x.y", 1)), Some(Reach::Public));
    }

    #[test]
    fn only_named_addresses_and_localhost_reach_beyond_the_internet() {
        let g = grant(&["http://127.0.0.1:9000", "http://localhost:*", "https://*"]);
        assert_eq!(
            g.allows(&target(false, "127.0.0.1", 9000)),
            Some(Reach::Named)
        );
        assert_eq!(g.allows(&target(false, "127.0.0.1", 9001)), None);
        assert_eq!(g.allows(&target(false, "localhost", 5)), Some(Reach::Named));
        assert_eq!(
            g.allows(&target(true, "10.0.0.1", 443)),
            Some(Reach::Public)
        );
        let g = grant(&["http://[::1]:80"]);
        assert_eq!(g.allows(&target(false, "::1", 80)), Some(Reach::Named));
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry() {
        for (entry, needle) in [
            ("api.example.com", "no scheme"),
            ("ftp://x.test", "scheme `ftp`"),
            ("https://x.test/path", "no path"),
            ("https://user@x.test", "no path"),
            ("https://x.test:0", "not a port"),
            ("https://x.test:http", "not a port"),
            ("https://bad host", "not a host name"),
            ("https://", "cannot read"),
        ] {
            let err = HttpGrant::parse(&[entry.to_string()], None, None).unwrap_err();
            assert!(err.contains(needle), "{entry}: {err}");
        }
        let err = HttpGrant::parse(&[], Some(3), None).unwrap_err();
        assert!(err.contains("need `allowed_outbound_hosts`"), "{err}");
        let err = HttpGrant::parse(&["https://x.test".into()], Some(0), None).unwrap_err();
        assert!(err.contains("`outbound_requests` is 0"), "{err}");
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2001:db8::1",
            "192.88.99.1",
            "64:ff9b:1::a00:1",
            "::ffff:0:a00:1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
