//! The keys of `darkfactory.toml`: one per flag of `serve`, grouped in
//! tables the way an operator thinks of them (`[http]`, `[planka]`, …).
//! This list is the only place a key is named; the file reader, `config
//! show`, `config keys` and docs/configuration.md all come from it, and a
//! test fails when a flag of `serve` has no key here.

/// What a key's value is in the file, so a wrong type is refused where it
/// is written (`max_body = "1M"` is not a number of bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A string.
    Text,
    /// A string naming a file or directory; relative to the file's directory.
    Path,
    /// An integer.
    Integer,
    /// An integer or a float.
    Number,
    /// `true` or `false` (an on/off flag).
    Bool,
    /// A string such as `"10s"`, `"1m 30s"`.
    Duration,
    /// Ingest sources: an array of `"NAMESPACE=PATH"` or `"PATH"` strings,
    /// each path relative to the file's directory.
    Sources,
    /// An array of strings, taken as written.
    Strings,
}

impl Kind {
    /// How the kind is named in an error: "expected {what}".
    pub(super) fn expected(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::Path => "a path (a string)",
            Kind::Integer => "an integer",
            Kind::Number => "a number",
            Kind::Bool => "true or false",
            Kind::Duration => "a duration as a string, e.g. \"10s\"",
            Kind::Sources => "an array of strings, \"NAMESPACE=PATH\" or \"PATH\"",
            Kind::Strings => "an array of strings",
        }
    }
}

/// Whether a key holds a secret, which the file names but never holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Secret {
    /// Not a secret: the value is written in the file.
    No,
    /// A secret: the file says where to read it, `KEY_file = "PATH"` or
    /// `KEY_env = "VARIABLE"`; `KEY = "..."` is refused.
    Yes,
    /// A URL that may carry a password (`redis://:pw@host`): written in the
    /// file only without one; `KEY_file` and `KEY_env` read it otherwise.
    UrlPassword,
}

/// One key of the file and the flag of `serve` it sets.
#[derive(Debug)]
pub(super) struct Key {
    /// The table it lives in; `None` for the top level.
    pub section: Option<&'static str>,
    /// Its name in that table.
    pub name: &'static str,
    /// The clap id of the flag (the field of `ServeArgs`).
    pub arg: &'static str,
    /// What its value is.
    pub kind: Kind,
    /// Whether it is a secret.
    pub secret: Secret,
}

impl Key {
    /// Its dotted name: `planka.api_key`, `listen`.
    pub(super) fn dotted(&self) -> String {
        match self.section {
            Some(section) => format!("{section}.{}", self.name),
            None => self.name.to_string(),
        }
    }
}

const fn key(
    section: Option<&'static str>,
    name: &'static str,
    arg: &'static str,
    kind: Kind,
) -> Key {
    Key {
        section,
        name,
        arg,
        kind,
        secret: Secret::No,
    }
}

const fn secret(section: Option<&'static str>, name: &'static str, arg: &'static str) -> Key {
    Key {
        section,
        name,
        arg,
        kind: Kind::Text,
        secret: Secret::Yes,
    }
}

const TOP: Option<&str> = None;
const HTTP: Option<&str> = Some("http");
const LIMITS: Option<&str> = Some("limits");
const INGEST: Option<&str> = Some("ingest");
const EMBEDDINGS: Option<&str> = Some("embeddings");
const QDRANT: Option<&str> = Some("qdrant");
const PLANKA: Option<&str> = Some("planka");
const FLEET: Option<&str> = Some("fleet");
const KPI: Option<&str> = Some("kpi");
const FACTORY: Option<&str> = Some("factory");
const CI: Option<&str> = Some("ci");
const TELEGRAM: Option<&str> = Some("telegram");
const OPENCLAW: Option<&str> = Some("openclaw");
const LLM: Option<&str> = Some("llm");

/// Every key, in the order `config show` and the docs print them.
pub(super) static KEYS: &[Key] = &[
    key(TOP, "listen", "listen", Kind::Text),
    key(TOP, "skills", "skills", Kind::Path),
    key(TOP, "data", "data", Kind::Path),
    secret(TOP, "token", "token"),
    secret(TOP, "read_token", "read_token"),
    key(TOP, "max_skill_bytes", "max_skill_bytes", Kind::Integer),
    key(
        TOP,
        "compile_concurrency",
        "compile_concurrency",
        Kind::Integer,
    ),
    key(TOP, "strict_imports", "strict_imports", Kind::Bool),
    key(HTTP, "max_connections", "max_connections", Kind::Integer),
    key(HTTP, "header_timeout", "header_timeout", Kind::Duration),
    key(HTTP, "idle_timeout", "idle_timeout", Kind::Duration),
    key(HTTP, "body_timeout", "body_timeout", Kind::Duration),
    key(HTTP, "shutdown_grace", "shutdown_grace", Kind::Duration),
    key(HTTP, "max_body", "max_body", Kind::Integer),
    key(
        LIMITS,
        "default_deadline_ms",
        "default_deadline_ms",
        Kind::Integer,
    ),
    key(
        LIMITS,
        "default_memory_mib",
        "default_memory_mib",
        Kind::Integer,
    ),
    key(LIMITS, "max_instances", "max_instances", Kind::Integer),
    key(
        LIMITS,
        "max_output_bytes",
        "max_output_bytes",
        Kind::Integer,
    ),
    key(
        LIMITS,
        "max_core_instances",
        "max_core_instances",
        Kind::Integer,
    ),
    key(LIMITS, "max_memories", "max_memories", Kind::Integer),
    key(LIMITS, "max_tables", "max_tables", Kind::Integer),
    key(
        LIMITS,
        "log_records_per_call",
        "log_records_per_call",
        Kind::Integer,
    ),
    key(INGEST, "sources", "ingest", Kind::Sources),
    key(INGEST, "at", "ingest_at", Kind::Text),
    key(INGEST, "every", "ingest_every", Kind::Duration),
    key(INGEST, "min_density", "ingest_min_density", Kind::Number),
    key(EMBEDDINGS, "url", "embeddings_url", Kind::Text),
    key(EMBEDDINGS, "model", "embeddings_model", Kind::Text),
    secret(EMBEDDINGS, "key", "embeddings_key"),
    key(QDRANT, "url", "qdrant_url", Kind::Text),
    secret(QDRANT, "api_key", "qdrant_api_key"),
    key(QDRANT, "collection", "qdrant_collection", Kind::Text),
    key(PLANKA, "url", "planka_url", Kind::Text),
    secret(PLANKA, "api_key", "planka_api_key"),
    key(PLANKA, "user", "planka_user", Kind::Text),
    secret(PLANKA, "password", "planka_password"),
    key(PLANKA, "accept_terms", "planka_accept_terms", Kind::Bool),
    key(PLANKA, "board_id", "planka_board_id", Kind::Text),
    key(PLANKA, "project", "planka_project", Kind::Text),
    key(PLANKA, "board", "planka_board", Kind::Text),
    key(PLANKA, "timeout", "planka_timeout", Kind::Duration),
    secret(PLANKA, "webhook_secret", "planka_webhook_secret"),
    key(FLEET, "interval", "fleet_interval", Kind::Duration),
    key(FLEET, "seed", "fleet_seed", Kind::Integer),
    Key {
        section: FLEET,
        name: "redis_url",
        arg: "redis_url",
        kind: Kind::Text,
        secret: Secret::UrlPassword,
    },
    key(FLEET, "redis_prefix", "redis_prefix", Kind::Text),
    key(KPI, "retention", "kpi_retention", Kind::Duration),
    key(
        KPI,
        "downsample_after",
        "kpi_downsample_after",
        Kind::Duration,
    ),
    key(FACTORY, "eval_interval", "eval_interval", Kind::Duration),
    key(FACTORY, "rules", "rules", Kind::Path),
    key(FACTORY, "blocked_after", "blocked_after", Kind::Duration),
    key(FACTORY, "cost_window", "cost_window", Kind::Duration),
    Key {
        section: FACTORY,
        name: "prometheus_url",
        arg: "prometheus_url",
        kind: Kind::Text,
        secret: Secret::UrlPassword,
    },
    key(CI, "repos", "ci_repos", Kind::Strings),
    secret(CI, "github_token", "github_token"),
    secret(CI, "gitea_token", "gitea_token"),
    secret(CI, "forgejo_token", "forgejo_token"),
    secret(CI, "webhook_secret", "ci_webhook_secret"),
    secret(TELEGRAM, "bot_token", "telegram_bot_token"),
    key(TELEGRAM, "chat_id", "telegram_chat_id", Kind::Text),
    key(TELEGRAM, "api_url", "telegram_api_url", Kind::Text),
    key(TELEGRAM, "approvers", "telegram_approvers", Kind::Strings),
    key(
        TELEGRAM,
        "approval_chat",
        "telegram_approval_chat",
        Kind::Text,
    ),
    secret(TELEGRAM, "webhook_secret", "telegram_webhook_secret"),
    key(TELEGRAM, "poll_wait", "telegram_poll_wait", Kind::Duration),
    key(LLM, "url", "llm_url", Kind::Text),
    key(LLM, "model", "llm_model", Kind::Text),
    secret(LLM, "key", "llm_key"),
    key(LLM, "timeout", "llm_timeout", Kind::Duration),
    key(LLM, "rounds", "llm_rounds", Kind::Integer),
    key(LLM, "prompt_price", "llm_prompt_price", Kind::Number),
    key(
        LLM,
        "completion_price",
        "llm_completion_price",
        Kind::Number,
    ),
    key(OPENCLAW, "hooks_url", "openclaw_hooks_url", Kind::Text),
    secret(OPENCLAW, "hooks_token", "openclaw_hooks_token"),
    key(OPENCLAW, "agent", "openclaw_agent", Kind::Text),
];

/// The tables of the file, in order.
pub(super) fn sections() -> Vec<&'static str> {
    let mut sections: Vec<&'static str> = Vec::new();
    for section in KEYS.iter().filter_map(|k| k.section) {
        if !sections.contains(&section) {
            sections.push(section);
        }
    }
    sections
}

/// Whether a URL carries a password: `scheme://user:password@host`, or a
/// `pass=` / `password=` query parameter (Redis reads one for Unix sockets).
pub(super) fn url_has_password(url: &str) -> bool {
    !password_spans(url).is_empty()
}

/// The URL with each password replaced by `********`.
pub(super) fn url_without_password(url: &str) -> String {
    let mut masked = String::new();
    let mut from = 0;
    for (start, end) in password_spans(url) {
        masked.push_str(&url[from..start]);
        masked.push_str("********");
        from = end;
    }
    masked.push_str(&url[from..]);
    masked
}

/// Where the passwords of a URL are, as byte offsets, in order.
fn password_spans(url: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if let Some(at) = authority.rfind('@') {
        if let Some(colon) = authority[..at].find(':') {
            if colon + 1 < at {
                spans.push((authority_start + colon + 1, authority_start + at));
            }
        }
    }
    if let Some(q) = url.find('?') {
        let query_end = url[q..].find('#').map_or(url.len(), |i| q + i);
        let mut start = q + 1;
        for param in url[q + 1..query_end].split('&') {
            let value_at = ["pass=", "password="]
                .iter()
                .find(|p| param.starts_with(*p))
                .map(|p| start + p.len());
            if let Some(value_at) = value_at {
                let end = start + param.len();
                if value_at < end {
                    spans.push((value_at, end));
                }
            }
            start += param.len() + 1;
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_of_urls() {
        assert!(url_has_password("redis://:pw@redis:6379/0"));
        assert!(url_has_password("redis://user:pw@redis"));
        assert!(!url_has_password("redis://redis:6379/0"));
        assert!(!url_has_password("redis://user@redis:6379"));
        assert!(!url_has_password("redis://redis:6379/0?a=b@c:d"));
        assert_eq!(
            url_without_password("redis://user:s3cret@redis:6379/0"),
            "redis://user:********@redis:6379/0"
        );
        assert_eq!(url_without_password("redis://redis"), "redis://redis");
        assert!(url_has_password(
            "redis+unix:///run/redis.sock?db=1&pass=s3cret"
        ));
        assert!(!url_has_password("redis+unix:///run/redis.sock?db=1&pass="));
        assert_eq!(
            url_without_password("redis+unix:///run/r.sock?pass=s3cret&db=1#x"),
            "redis+unix:///run/r.sock?pass=********&db=1#x"
        );
        assert_eq!(
            url_without_password("redis://u:p@h/0?password=q"),
            "redis://u:********@h/0?password=********"
        );
    }

    #[test]
    fn every_key_is_named_once() {
        let mut dotted: Vec<String> = KEYS.iter().map(Key::dotted).collect();
        let mut args: Vec<&str> = KEYS.iter().map(|k| k.arg).collect();
        dotted.sort();
        args.sort();
        let (n, m) = (dotted.len(), args.len());
        dotted.dedup();
        args.dedup();
        assert_eq!((dotted.len(), args.len()), (n, m));
        for k in KEYS {
            assert!(
                !sections().contains(&k.name) || k.section.is_some(),
                "top-level key `{}` is also a table",
                k.name
            );
        }
    }
}
