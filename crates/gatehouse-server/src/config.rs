//! The sidecar's configuration: every setting of `gatehouse serve`, its flag, its
//! environment variable and its default, in one place. Parsed once at start (by clap, in
//! `main`) and passed down; tests build it with [`Config::default`] and change what they
//! need.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::decide::cache::{Budget, Budgets};
use crate::policy::Sources;
use crate::telemetry::LogFormat;

/// Every default, used both by the command line and by [`Config::default`].
pub mod defaults {
    /// `--listen`.
    pub const LISTEN: &str = "127.0.0.1:8180";
    /// `--policies`.
    pub const POLICIES: &str = "policies";
    /// `--schema`.
    pub const SCHEMA: &str = "schemas/project_sharing.cedarschema";
    /// `--entities-cache`.
    pub const ENTITIES_CACHE: u64 = 100_000;
    /// `--max-staleness`, in seconds.
    pub const MAX_STALENESS: &str = "5";
    /// `--consistency-wait`, in seconds.
    pub const CONSISTENCY_WAIT: &str = "1";
    /// `--entities-poll`.
    pub const ENTITIES_POLL: &str = "5ms";
    /// `--cache-capacity`.
    pub const CACHE_CAPACITY: u64 = 100_000;
    /// `--entity-cache-capacity`.
    pub const ENTITY_CACHE_CAPACITY: u64 = 1_000;
    /// `--cache-ttl`, in seconds.
    pub const CACHE_TTL_SECS: u64 = 300;
    /// `--max-body`, in bytes.
    pub const MAX_BODY: usize = 1 << 20;
    /// `--max-batch`.
    pub const MAX_BATCH: usize = 100;
    /// `--max-entities`.
    pub const MAX_ENTITIES: usize = 10_000;
    /// `--max-concurrency`.
    pub const MAX_CONCURRENCY: usize = 1024;
    /// `--request-timeout`, in seconds.
    pub const REQUEST_TIMEOUT_SECS: u64 = 10;
    /// `--shadow-queue`.
    pub const SHADOW_QUEUE: usize = 4096;
    /// `--cache-bytes`.
    pub const CACHE_BYTES: &str = "256MiB";
    /// `--settle`, in seconds.
    pub const SETTLE: &str = "2";
    /// `--header-read-timeout`, in seconds.
    pub const HEADER_READ_TIMEOUT: &str = "10";
    /// `--idle-timeout`, in seconds.
    pub const IDLE_TIMEOUT: &str = "75";
    /// `--shutdown-grace`, in seconds.
    pub const SHUTDOWN_GRACE: &str = "10";
    /// `--max-connections` at most, when it is derived from the open-file limit.
    pub const MAX_CONNECTIONS: usize = 16_384;
    /// File descriptors kept for what is not a connection (policy files, the log, the
    /// watcher, a solver).
    pub const RESERVED_FDS: usize = 128;
}

/// What each cache may hold ([`Config::cache_budgets`]).
#[derive(Debug, Clone, Copy)]
pub struct CacheBudgets {
    /// The live decider's decisions, parsed entities and stores.
    pub decider: Budgets,
    /// Rendered answers.
    pub hot: Budget,
    /// Plans.
    pub plans: Budget,
    /// The candidate's decider (with `--shadow-policies`).
    pub shadow: Budgets,
    /// The candidate's memo of compared bodies.
    pub shadow_memo: Budget,
}

/// Reads a size in bytes: a number, or a number with a unit (`B`, `K`/`KiB`, `M`/`MiB`,
/// `G`/`GiB`; `KB`, `MB`, `GB` are read as binary units too).
pub fn bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write `268435456`, `256MiB` or `1GiB`"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "`{other}` is not a unit of size: use B, KiB, MiB or GiB"
            ));
        }
    };
    Ok((number * scale as f64) as u64)
}

/// Reads a duration: a number of seconds (`2`, `0.5`) or a humantime duration (`500ms`,
/// `1m30s`).
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(Duration::from_secs_f64(secs)),
        Ok(_) => Err(format!(
            "`{text}` is not a duration: give a number of seconds, 0 or more"
        )),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("`{text}` is not a duration ({e}): write `2`, `0.5` or `500ms`")),
    }
}

/// Where the policy set is: flattened into every subcommand that loads one.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Directory of `*.cedar` policy files.
    #[arg(long, env = "GATEHOUSE_POLICIES", default_value = defaults::POLICIES)]
    pub policies: PathBuf,
    /// Cedar schema file (human syntax).
    #[arg(long, env = "GATEHOUSE_SCHEMA", default_value = defaults::SCHEMA)]
    pub schema: PathBuf,
}

impl Default for PolicyArgs {
    fn default() -> Self {
        Self {
            policies: defaults::POLICIES.into(),
            schema: defaults::SCHEMA.into(),
        }
    }
}

impl PolicyArgs {
    /// The sources these arguments name, without stored entities.
    pub fn sources(&self) -> Sources {
        Sources {
            policies: self.policies.clone(),
            schema: self.schema.clone(),
            entities: None,
        }
    }
}

/// What an entity a request sends does when the entity database holds one with its uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RequestEntities {
    /// The database's is decided on: a request only adds entities the database lacks.
    Add,
    /// The request's replaces the database's, for that request.
    Override,
}

/// Where entities live: a database read and written through a mapping file (`gatehouse
/// entities`).
#[derive(Debug, Clone, Args)]
pub struct EntitySourceArgs {
    /// The database entities live in: `sqlite://FILE` (created when missing) or
    /// `postgres://…`.
    #[arg(long, env = "GATEHOUSE_ENTITIES_DB", value_name = "URL")]
    pub entities_db: String,
    /// The mapping file (TOML) saying where each entity type lives in it; without it, the
    /// bundled domain's tables, which are created in the database when missing.
    #[arg(long, env = "GATEHOUSE_ENTITIES_MAP", value_name = "FILE")]
    pub entities_map: Option<PathBuf>,
}

/// Everything `gatehouse serve` is told; each setting also read from its `GATEHOUSE_*`
/// variable (a flag wins).
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "GATEHOUSE_LISTEN", default_value = defaults::LISTEN)]
    pub listen: String,
    /// The policy set.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Cedar entity JSON that every decision sees (watched and reloaded like the policies).
    /// An entity sent with a request replaces the stored one with the same uid.
    #[arg(long, env = "GATEHOUSE_ENTITIES", value_name = "FILE")]
    pub entities: Option<PathBuf>,
    /// Read the entities a question needs from this database (`sqlite://FILE`, created when
    /// missing, or `postgres://…`), through `--entities-map`: a question may then name its
    /// principal, action and resource by id alone.
    #[arg(long, env = "GATEHOUSE_ENTITIES_DB", value_name = "URL")]
    pub entities_db: Option<String>,
    /// The mapping file (TOML) saying where each entity type lives in `--entities-db`;
    /// without it, the bundled domain's tables, created when missing.
    #[arg(
        long,
        env = "GATEHOUSE_ENTITIES_MAP",
        value_name = "FILE",
        requires = "entities_db"
    )]
    pub entities_map: Option<PathBuf>,
    /// With `--entities-db`, what an entity a request sends does when the database holds
    /// one with its uid: `add` (the database's is decided on; a request only adds what the
    /// database lacks) or `override` (the request's replaces it, for that request).
    #[arg(long, env = "GATEHOUSE_REQUEST_ENTITIES", value_enum, default_value_t = RequestEntities::Add)]
    pub request_entities: RequestEntities,
    /// With `--entities-db`, how many entities read from it are kept, exact by its changes
    /// (an absent one counts too).
    #[arg(long, env = "GATEHOUSE_ENTITIES_CACHE", default_value_t = defaults::ENTITIES_CACHE, value_name = "N")]
    pub entities_cache: u64,
    /// With `--entities-db`, the longest its changes may go unread (the
    /// database lost, say) before questions are answered 503 `entities_unavailable` rather
    /// than decided on what may be stale. Seconds, or a duration (`500ms`).
    #[arg(long, env = "GATEHOUSE_MAX_STALENESS", default_value = defaults::MAX_STALENESS, value_name = "SECS",
          value_parser = duration)]
    pub max_staleness: Duration,
    /// With `--entities-db`, how long a question whose `consistency.at_least`
    /// names a position not yet applied waits for it before 503 `stale_entities`.
    #[arg(long, env = "GATEHOUSE_CONSISTENCY_WAIT", default_value = defaults::CONSISTENCY_WAIT, value_name = "SECS",
          value_parser = duration)]
    pub consistency_wait: Duration,
    /// With `--entities-db` on SQLite, how often the sidecar looks for another connection's
    /// commits.
    #[arg(long, env = "GATEHOUSE_ENTITIES_POLL", default_value = defaults::ENTITIES_POLL, value_name = "SECS",
          value_parser = duration, hide = true)]
    pub entities_poll: Duration,
    /// Require `Authorization: Bearer <T>` on /v1/status, /v1/policies and /v1/reload.
    /// Prefer `--admin-token-file`: a flag is visible to every user in the process list.
    #[arg(
        long,
        env = "GATEHOUSE_ADMIN_TOKEN",
        value_name = "T",
        hide_env_values = true,
        conflicts_with = "admin_token_file"
    )]
    pub admin_token: Option<String>,
    /// Read the admin token from this file (its first line; a mounted Kubernetes Secret).
    #[arg(long, env = "GATEHOUSE_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Write one JSON line per decision to this file, or `-` for stdout.
    #[arg(long, env = "GATEHOUSE_DECISION_LOG", value_name = "PATH|-")]
    pub decision_log: Option<String>,
    /// Include each question's context and entities in the decision log.
    #[arg(long, env = "GATEHOUSE_DECISION_LOG_FULL")]
    pub decision_log_full: bool,
    /// Answer 400 `missing_entity`, naming it, when an entity a question names or its
    /// deciding path reads is neither sent nor stored, instead of a decision made without it
    /// (a question may ask so itself with `"strict_entities": true`).
    #[arg(long, env = "GATEHOUSE_STRICT_ENTITIES")]
    pub strict_entities: bool,
    /// AuthZEN type names to Cedar entity types, `user=User,record=Docs::Record`; an
    /// unmapped AuthZEN type names the schema's entity type that matches it without regard
    /// to case (with or without its namespace).
    #[arg(
        long,
        env = "GATEHOUSE_AUTHZEN_TYPES",
        value_name = "MAP",
        default_value = ""
    )]
    pub authzen_types: String,
    /// The URL callers reach this sidecar at, for `/.well-known/authzen-configuration`
    /// (default: `http://` and the request's `Host`).
    #[arg(long, env = "GATEHOUSE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Most decisions kept in the cache (0 disables it); a tenth as many rendered answers
    /// are kept by the digest of the exact body.
    #[arg(long, env = "GATEHOUSE_CACHE_CAPACITY", default_value_t = defaults::CACHE_CAPACITY, value_name = "N")]
    pub cache_capacity: u64,
    /// Most parsed request entities kept (entities repeat across questions: the project, its
    /// organization, its groups), so that each is parsed once. Also bounds the stores
    /// assembled for the part of questions seen before, at N stores. Both within their
    /// share of `--cache-bytes` too.
    #[arg(long, env = "GATEHOUSE_ENTITY_CACHE_CAPACITY", default_value_t = defaults::ENTITY_CACHE_CAPACITY, value_name = "N")]
    pub entity_cache_capacity: u64,
    /// The memory every cache may take together, by the estimated weight of what each
    /// holds, whatever the size of the questions: 30 % for decisions, 15 % for rendered
    /// answers, 20 % for parsed entities, 25 % for assembled stores, 10 % for plans (with
    /// `--shadow-policies`, the candidate's caches take a quarter of it). Bytes, or with a
    /// unit: `512MiB`, `2GiB`.
    #[arg(long, env = "GATEHOUSE_CACHE_BYTES", default_value = defaults::CACHE_BYTES,
          value_name = "BYTES", value_parser = bytes)]
    pub cache_bytes: u64,
    /// Longest a cached decision is kept.
    #[arg(long, env = "GATEHOUSE_CACHE_TTL", default_value_t = defaults::CACHE_TTL_SECS, value_name = "SECS")]
    pub cache_ttl: u64,
    /// How log lines are written: text, or one JSON object a line.
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// Leave the admin routes open on an address other than loopback, with no admin token
    /// (without it, `serve` refuses: anyone who reaches the port could reload the policies
    /// and read them).
    #[arg(long, env = "GATEHOUSE_OPEN_ADMIN")]
    pub open_admin: bool,
    /// Largest accepted request body.
    #[arg(long, env = "GATEHOUSE_MAX_BODY", default_value_t = defaults::MAX_BODY, value_name = "BYTES")]
    pub max_body: usize,
    /// Most questions in one batch.
    #[arg(long, env = "GATEHOUSE_MAX_BATCH", default_value_t = defaults::MAX_BATCH, value_name = "N")]
    pub max_batch: usize,
    /// Most entities in one request (per question, shared and own lists together).
    #[arg(long, env = "GATEHOUSE_MAX_ENTITIES", default_value_t = defaults::MAX_ENTITIES, value_name = "N")]
    pub max_entities: usize,
    /// Most requests served at once; past that, 503 with `Retry-After: 1`.
    #[arg(long, env = "GATEHOUSE_MAX_CONCURRENCY", default_value_t = defaults::MAX_CONCURRENCY, value_name = "N")]
    pub max_concurrency: usize,
    /// Longest a client may take to send a request's head, from its first byte (however
    /// slowly it trickles): then the connection is closed. Seconds, or a duration.
    #[arg(long, env = "GATEHOUSE_HEADER_READ_TIMEOUT", default_value = defaults::HEADER_READ_TIMEOUT,
          value_name = "SECS", value_parser = duration)]
    pub header_read_timeout: Duration,
    /// Longest a connection may stay open between requests (keep-alive): then it is closed.
    /// Seconds, or a duration.
    #[arg(long, env = "GATEHOUSE_IDLE_TIMEOUT", default_value = defaults::IDLE_TIMEOUT,
          value_name = "SECS", value_parser = duration)]
    pub idle_timeout: Duration,
    /// Most connections open at once; past it the idlest is closed to make room, and a new
    /// one is refused when every open one has a request in flight [default: the open-file
    /// limit less 128, at most 16 384].
    #[arg(long, env = "GATEHOUSE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// At SIGTERM, longest the requests in flight may take to finish (idle and half-open
    /// connections are closed at once); what still runs then is dropped. Seconds, or a
    /// duration.
    #[arg(long, env = "GATEHOUSE_SHUTDOWN_GRACE", default_value = defaults::SHUTDOWN_GRACE,
          value_name = "SECS", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// Longest a request may take, body upload included (answered 408 after).
    #[arg(long, env = "GATEHOUSE_REQUEST_TIMEOUT", default_value_t = defaults::REQUEST_TIMEOUT_SECS, value_name = "SECS")]
    pub request_timeout: u64,
    /// A candidate policy set, loaded and hot-reloaded beside the live one: every decision
    /// is asked of it too, off the response path, and disagreements are counted and logged.
    /// Answers never change.
    #[arg(long, env = "GATEHOUSE_SHADOW_POLICIES", value_name = "DIR")]
    pub shadow_policies: Option<PathBuf>,
    /// The candidate's schema (default: the live one).
    #[arg(
        long,
        env = "GATEHOUSE_SHADOW_SCHEMA",
        value_name = "FILE",
        requires = "shadow_policies"
    )]
    pub shadow_schema: Option<PathBuf>,
    /// Most decisions waiting for the candidate; past that they are dropped (counted in
    /// `gatehouse_shadow_dropped_total`), never waited for.
    #[arg(long, env = "GATEHOUSE_SHADOW_QUEUE", default_value_t = defaults::SHADOW_QUEUE, value_name = "N")]
    pub shadow_queue: usize,
    /// Reload gate: swap in a changed set only when every safety property of this `.cedar`
    /// file or directory (as `gatehouse prove --properties`) is proven of it; otherwise the
    /// last good set stays and `/v1/status` shows the refuted property with its
    /// counterexample. Needs cvc5 (`CVC5`, or on the `PATH`): without it, serve refuses to
    /// start.
    #[arg(long, env = "GATEHOUSE_REQUIRE_PROPERTIES", value_name = "FILE|DIR")]
    pub require_properties: Option<PathBuf>,
    /// Reload gate: swap in a changed set only when every case of these policy suites (a
    /// directory of `*.test.json`, as `gatehouse test`) passes; otherwise the last good set
    /// stays and `/v1/status` shows the failed cases.
    #[arg(long, env = "GATEHOUSE_REQUIRE_SUITES", value_name = "DIR")]
    pub require_suites: Option<PathBuf>,
    /// A changed set that drops policies the live set has (a file emptied, truncated or
    /// removed) goes live only once the files have stayed unchanged this long: a save in
    /// progress is not served. Seconds, or a duration (`500ms`); 0 applies it at once.
    #[arg(long, env = "GATEHOUSE_SETTLE", default_value = defaults::SETTLE, value_name = "SECS",
          value_parser = duration)]
    pub settle: Duration,
    /// The percentage of requests asked of the candidate too, spread evenly (100: all).
    #[arg(long, env = "GATEHOUSE_SHADOW_SAMPLE", default_value_t = 100, value_name = "PERCENT",
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub shadow_sample: u8,
}

impl Default for Config {
    #[expect(
        clippy::expect_used,
        reason = "the defaults are constants that read (every test builds a Config from them)"
    )]
    fn default() -> Self {
        Self {
            listen: defaults::LISTEN.into(),
            policy: PolicyArgs::default(),
            entities: None,
            entities_db: None,
            entities_map: None,
            request_entities: RequestEntities::Add,
            entities_cache: defaults::ENTITIES_CACHE,
            max_staleness: duration(defaults::MAX_STALENESS)
                .expect("the default staleness bound reads"),
            consistency_wait: duration(defaults::CONSISTENCY_WAIT)
                .expect("the default consistency wait reads"),
            entities_poll: duration(defaults::ENTITIES_POLL)
                .expect("the default poll interval reads"),
            admin_token: None,
            admin_token_file: None,
            decision_log: None,
            decision_log_full: false,
            strict_entities: false,
            authzen_types: String::new(),
            public_url: None,
            cache_capacity: defaults::CACHE_CAPACITY,
            entity_cache_capacity: defaults::ENTITY_CACHE_CAPACITY,
            cache_ttl: defaults::CACHE_TTL_SECS,
            cache_bytes: bytes(defaults::CACHE_BYTES).expect("the default cache budget reads"),
            max_body: defaults::MAX_BODY,
            max_batch: defaults::MAX_BATCH,
            max_entities: defaults::MAX_ENTITIES,
            max_concurrency: defaults::MAX_CONCURRENCY,
            request_timeout: defaults::REQUEST_TIMEOUT_SECS,
            shadow_policies: None,
            shadow_schema: None,
            shadow_queue: defaults::SHADOW_QUEUE,
            shadow_sample: 100,
            require_properties: None,
            require_suites: None,
            settle: duration(defaults::SETTLE).expect("the default settle time reads"),
            header_read_timeout: duration(defaults::HEADER_READ_TIMEOUT)
                .expect("the default header-read timeout reads"),
            idle_timeout: duration(defaults::IDLE_TIMEOUT).expect("the default idle timeout reads"),
            max_connections: None,
            log_format: LogFormat::Text,
            open_admin: false,
            shutdown_grace: duration(defaults::SHUTDOWN_GRACE)
                .expect("the default shutdown grace reads"),
        }
    }
}

impl Config {
    /// The defaults, serving the set at `sources`.
    pub fn for_sources(sources: &Sources) -> Self {
        Self {
            policy: PolicyArgs {
                policies: sources.policies.clone(),
                schema: sources.schema.clone(),
            },
            entities: sources.entities.clone(),
            ..Self::default()
        }
    }

    /// The policy files, schema and stored entities to load.
    pub fn sources(&self) -> Sources {
        Sources {
            entities: self.entities.clone(),
            ..self.policy.sources()
        }
    }

    /// The candidate set's files (`--shadow-policies`), with the live stored entities.
    pub fn shadow_sources(&self) -> Option<Sources> {
        let policies = self.shadow_policies.clone()?;
        Some(Sources {
            policies,
            schema: self
                .shadow_schema
                .clone()
                .unwrap_or_else(|| self.policy.schema.clone()),
            entities: self.entities.clone(),
        })
    }

    /// `--cache-ttl` as a duration.
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl)
    }

    /// `--request-timeout` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout)
    }

    /// `--max-connections`, or the open-file limit less what the process needs besides
    /// connections.
    pub fn max_connections(&self) -> usize {
        self.max_connections.unwrap_or_else(|| {
            open_file_limit().map_or(defaults::MAX_CONNECTIONS, |limit| {
                limit
                    .saturating_sub(defaults::RESERVED_FDS)
                    .clamp(16, defaults::MAX_CONNECTIONS)
            })
        })
    }

    /// How many rendered answers the hot cache keeps: the hottest tenth of the decisions.
    pub fn hot_capacity(&self) -> u64 {
        self.cache_capacity / 10
    }

    /// What each cache may hold, from `--cache-bytes` and the count flags.
    pub fn cache_budgets(&self) -> CacheBudgets {
        let total = self.cache_bytes;
        let live = if self.shadow_policies.is_some() {
            total / 4 * 3
        } else {
            total
        };
        let share = |of: u64, percent: u64| of / 100 * percent;
        let shadow_total = total - live;
        CacheBudgets {
            decider: Budgets {
                decisions: Budget::new(self.cache_capacity, share(live, 30)),
                entities: Budget::new(self.entity_cache_capacity, share(live, 20)),
                stores: Budget::new(self.entity_cache_capacity, share(live, 25)),
            },
            hot: Budget::new(self.hot_capacity(), share(live, 15)),
            plans: Budget::new(self.cache_capacity, share(live, 10)),
            shadow: Budgets {
                decisions: Budget::new(self.cache_capacity, share(shadow_total, 40)),
                entities: Budget::new(self.entity_cache_capacity, share(shadow_total, 25)),
                stores: Budget::new(self.entity_cache_capacity, share(shadow_total, 25)),
            },
            shadow_memo: Budget::new(self.hot_capacity(), share(shadow_total, 10)),
        }
    }
}

/// The soft limit on open files (`Max open files` of `/proc/self/limits`), where there is
/// one.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
