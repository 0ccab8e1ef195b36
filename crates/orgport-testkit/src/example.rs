//! The example SaaS database: `examples/saas/schema.sql` filled with
//! deterministic data.
//!
//! The data is shaped to hit what makes exporting one tenant hard: users
//! shared between workspaces, a root <-> child cycle, a self-referencing
//! tree (with a parent whose id is greater than its child's, and an optional
//! deep chain), composite foreign keys, a cross-tenant reference, a table
//! without a primary key holding duplicate rows, NULL next to empty strings,
//! Unicode everywhere, empty and all-bytes blobs, and extreme integers.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rusqlite::{params, Connection, Statement};

/// The schema is compiled in so that `examples/saas/schema.sql` stays the
/// single source of truth.
const SCHEMA_SQL: &str = include_str!("../../../examples/saas/schema.sql");

/// The size and shape of the generated database.
///
/// The same options always produce the same file, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleOptions {
    /// Number of workspaces (tenants).
    pub orgs: usize,
    /// Id of the first workspace; the others follow consecutively.
    pub first_org: i64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Tasks in each project, not counting the chain (see `chain_depth`).
    pub tasks_per_project: usize,
    /// Projects in each workspace.
    pub projects_per_org: usize,
    /// Size of the user pool shared by all workspaces.
    pub users: usize,
    /// Length of an extra chain of tasks, each the parent of the next, in the
    /// first project of workspace `first_org`; 0 = no chain.
    pub chain_depth: usize,
    /// Prefix of every workspace slug: the slug is `{slug_prefix}{id}`.
    pub slug_prefix: String,
}

impl Default for ExampleOptions {
    fn default() -> Self {
        ExampleOptions {
            orgs: 3,
            first_org: 1,
            seed: 42,
            tasks_per_project: 20,
            projects_per_org: 5,
            users: 12,
            chain_depth: 0,
            slug_prefix: "ws-".to_owned(),
        }
    }
}

/// Creates the example database at `path` and fills it as `opts` says.
///
/// Fails if `path` already exists. Everything is written in one transaction;
/// on failure the new file is removed again.
pub fn create_example_db(path: &Path, opts: &ExampleOptions) -> Result<()> {
    check(opts)?;
    // `create_new` makes "must not exist" atomic; SQLite treats the empty
    // file as a new database.
    fs::OpenOptions::new().write(true).create_new(true).open(path).with_context(|| format!("creating `{}`", path.display()))?;
    let filled = fill(path, opts);
    if filled.is_err() {
        // A half-written fixture must not be mistaken for a good one later;
        // the fill error is the one worth reporting.
        let _ = fs::remove_file(path);
    }
    filled.with_context(|| format!("generating the example database `{}`", path.display()))
}

fn check(opts: &ExampleOptions) -> Result<()> {
    let last_offset = i64::try_from(opts.orgs.saturating_sub(1)).context("`orgs` is too large")?;
    if opts.first_org.checked_add(last_offset).is_none() {
        bail!("workspace ids from `first_org` {} overflow a 64-bit integer", opts.first_org);
    }
    if opts.chain_depth > 0 && (opts.orgs == 0 || opts.projects_per_org == 0) {
        bail!("`chain_depth` needs at least one workspace with one project");
    }
    Ok(())
}

fn fill(path: &Path, opts: &ExampleOptions) -> Result<()> {
    let mut conn = Connection::open(path).context("opening the new file")?;
    // foreign_keys: the generator must produce a consistent database, so let
    // SQLite check it. synchronous: a fixture needs no durability, and fsyncs
    // would dominate the run time.
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = OFF;").context("setting pragmas")?;
    conn.execute_batch(SCHEMA_SQL).context("running examples/saas/schema.sql")?;
    let tx = conn.transaction().context("starting the transaction")?;
    Generator::new(&tx, opts)?.run()?;
    // Deferred foreign keys (workspaces.default_project_id) are checked here.
    tx.commit().context("committing")
}

/// Plans exist, identical, on every instance (`keep` in orgport.toml), so
/// they do not depend on the options.
const PLANS: [(&str, &str, Option<i64>); 3] = [("free", "Free", Some(3)), ("team", "Team", Some(50)), ("enterprise", "Enterprise", None)];

// Text pools: accents, CJK, RTL scripts, emoji (including a ZWJ sequence),
// quotes and control characters, so encoding and quoting bugs show up.
const PERSON_NAMES: &[&str] = &[
    "Zoë Müller",
    "José Álvarez",
    "李小龍",
    "山田 太郎",
    "أحمد منصور",
    "דנה לוי",
    "Siobhán O'Brien",
    "Ana \"Nan\" Silva",
    "Łukasz Żółć",
    "Ngozi Okonkwo",
    "Åsa Ström",
    "Дмитрий Иванов",
];
const WORKSPACE_NAMES: &[&str] = &["Acme Ltd", "Ünïcødé GmbH", "株式会社サンプル", "שלום Labs", "Café Olé", "Initech 🚀"];
const PROJECT_NAMES: &[&str] = &["Website", "Mobile app 📱", "Rechnungsprüfung", "数据迁移", "تطبيق الجوال", "Q3 roadmap"];
const TASK_TITLES: &[&str] = &[
    "Fix login on Safari",
    "Écrire la documentation",
    "修复登录错误",
    "Deploy 🚀 to production",
    "تحديث الترجمة العربية",
    "עדכון תנאי השימוש",
    "Handle 'single' and \"double\" quotes",
    "Tab\tand newline\nin a title",
    "Family emoji 👨‍👩‍👧‍👦 renders",
    "Ünïcödé ✓ normalisation",
];
/// Every project gets these labels; the colours cover a value, '' and NULL.
const LABELS: [(&str, Option<&str>); 4] =
    [("bug", Some("#d73a4a")), ("feature", Some("#a2eeef")), ("needs design 🎨", Some("")), ("wontfix", None)];
const ROLES: &[&str] = &["admin", "member", "member", "viewer"];
const FILE_NAMES: &[&str] = &["spec.pdf", "screenshot 2024-01-01.png", "données.csv", "截图.png", "notes.txt"];
const OTP_DEVICE_LABELS: &[&str] = &["iPhone 15", "YubiKey 5C NFC"];
/// Task metadata: nested objects and arrays, Unicode, JSON escapes, and
/// integers at both ends of the 64-bit range.
const TASK_METADATA: &[Option<&str>] = &[
    None,
    Some("{}"),
    Some(
        r#"{"priority":2,"tags":["α","β","🚧"],"checklist":[{"item":"Review","done":true},{"item":"Ship","done":false}],"links":{"jira":"PRJ-12","nested":{"deep":[1,[2,[3]]]}}}"#,
    ),
    Some(r#"{"counters":{"max":9223372036854775807,"min":-9223372036854775808},"ratio":-0.5,"note":null}"#),
    Some(r#"["plain","array",42,true,null,"مرحبا"]"#),
    Some(r#"{"source":"import","escaped":"line\nbreak \"quoted\" \\ backslash \u00e9"}"#),
];
const SEARCH_CACHE: &[(&str, &str)] = &[("login bug", "[1,5,9]"), ("roadmap", "[]"), ("données", "[3]"), ("移行", "[2,4]"), ("", "[]")];

/// Ids the generator hands out itself for one table, from 1. Explicit ids let
/// a row point at a row inserted later (the deferred
/// `workspaces.default_project_id`) without asking SQLite.
struct IdSequence(i64);

impl IdSequence {
    fn new() -> Self {
        IdSequence(1)
    }

    fn peek(&self) -> i64 {
        self.0
    }

    fn take(&mut self) -> i64 {
        let id = self.0;
        self.0 += 1;
        id
    }
}

struct NextIds {
    project: IdSequence,
    task: IdSequence,
    otp_device: IdSequence,
    attachment: IdSequence,
    gift_card: IdSequence,
    redemption: IdSequence,
    audit_event: IdSequence,
}

/// One prepared statement per table, prepared once for the whole run.
struct Inserts<'c> {
    plan: Statement<'c>,
    user: Statement<'c>,
    otp_device: Statement<'c>,
    workspace: Statement<'c>,
    membership: Statement<'c>,
    project: Statement<'c>,
    label: Statement<'c>,
    task: Statement<'c>,
    reparent_task: Statement<'c>,
    task_label: Statement<'c>,
    attachment: Statement<'c>,
    gift_card: Statement<'c>,
    redemption: Statement<'c>,
    api_token: Statement<'c>,
    audit_event: Statement<'c>,
    event_log: Statement<'c>,
    search_cache: Statement<'c>,
}

impl<'c> Inserts<'c> {
    fn prepare(conn: &'c Connection) -> Result<Self> {
        let prepare = |sql: &str| conn.prepare(sql).with_context(|| format!("preparing `{sql}`"));
        Ok(Inserts {
            plan: prepare("INSERT INTO plans (id, name, seats) VALUES (?1, ?2, ?3)")?,
            user: prepare(
                "INSERT INTO users (id, email, display_name, password_hash, otp_secret, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?,
            otp_device: prepare("INSERT INTO otp_devices (id, user_id, label, secret) VALUES (?1, ?2, ?3, ?4)")?,
            workspace: prepare(
                "INSERT INTO workspaces (id, slug, name, plan_id, settings, logo, created_at, default_project_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?,
            membership: prepare("INSERT INTO memberships (workspace_id, user_id, role, joined_at) VALUES (?1, ?2, ?3, ?4)")?,
            project: prepare("INSERT INTO projects (id, workspace_id, name, budget, archived) VALUES (?1, ?2, ?3, ?4, ?5)")?,
            label: prepare("INSERT INTO labels (project_id, name, color) VALUES (?1, ?2, ?3)")?,
            task: prepare(
                "INSERT INTO tasks (id, project_id, parent_id, assignee_id, title, estimate, due_date, done, \
                 metadata, \"Created By Name\") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?,
            reparent_task: prepare("UPDATE tasks SET parent_id = ?1 WHERE id = ?2")?,
            task_label: prepare("INSERT INTO task_labels (task_id, project_id, label_name) VALUES (?1, ?2, ?3)")?,
            attachment: prepare("INSERT INTO attachments (id, task_id, file_name, content, size) VALUES (?1, ?2, ?3, ?4, ?5)")?,
            gift_card: prepare("INSERT INTO gift_cards (id, workspace_id, code, amount_cents) VALUES (?1, ?2, ?3, ?4)")?,
            redemption: prepare("INSERT INTO redemptions (id, workspace_id, gift_card_id, amount_cents) VALUES (?1, ?2, ?3, ?4)")?,
            api_token: prepare("INSERT INTO api_tokens (id, workspace_id, token, created_by, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")?,
            audit_event: prepare("INSERT INTO audit_events (id, workspace_id, action, at) VALUES (?1, ?2, ?3, ?4)")?,
            event_log: prepare("INSERT INTO \"event-log\" (workspace_id, kind, payload) VALUES (?1, ?2, ?3)")?,
            search_cache: prepare("INSERT INTO search_cache (query, result_ids, computed_at) VALUES (?1, ?2, ?3)")?,
        })
    }
}

/// What the rows of the workspace being generated need to know about it.
struct Org {
    id: i64,
    /// User ids of its members (bounded by the user pool, not by row count).
    members: Vec<i64>,
    /// Attachments generated so far, so that every workspace gets the
    /// special blobs first.
    attachments: usize,
}

struct Generator<'c, 'o> {
    opts: &'o ExampleOptions,
    rng: StdRng,
    sql: Inserts<'c>,
    ids: NextIds,
}

impl<'c, 'o> Generator<'c, 'o> {
    fn new(conn: &'c Connection, opts: &'o ExampleOptions) -> Result<Self> {
        Ok(Generator {
            opts,
            rng: StdRng::seed_from_u64(opts.seed),
            sql: Inserts::prepare(conn)?,
            ids: NextIds {
                project: IdSequence::new(),
                task: IdSequence::new(),
                otp_device: IdSequence::new(),
                attachment: IdSequence::new(),
                gift_card: IdSequence::new(),
                redemption: IdSequence::new(),
                audit_event: IdSequence::new(),
            },
        })
    }

    fn run(&mut self) -> Result<()> {
        for (id, name, seats) in PLANS {
            self.sql.plan.execute(params![id, name, seats]).context("inserting into plans")?;
        }
        self.users()?;
        let mut previous_org_card = None;
        for index in 0..self.opts.orgs {
            previous_org_card = Some(self.workspace(index, previous_org_card)?);
        }
        self.search_cache()
    }

    fn users(&mut self) -> Result<()> {
        // Emails are fixed per pool position but ids follow a seeded shuffle:
        // the same person gets different ids under different seeds, so an
        // import between two generated databases that matched users by id
        // instead of by email would show.
        let mut numbers: Vec<usize> = (1..=self.opts.users).collect();
        numbers.shuffle(&mut self.rng);
        for (id, number) in (1_i64..).zip(numbers) {
            let rng = &mut self.rng;
            let password_hash =
                format!("$argon2id$v=19$m=19456,t=2,p=1${}${}", random_chars(rng, BASE64, 22), random_chars(rng, BASE64, 43));
            // Half have a secret; the rest are split between NULL and the ''
            // that legacy rows use for "none".
            let otp_secret = match number % 4 {
                0 | 2 => Some(random_chars(rng, BASE32, 32)),
                1 => None,
                _ => Some(String::new()),
            };
            self.sql
                .user
                .execute(params![
                    id,
                    format!("user{number:03}@example.test"),
                    PERSON_NAMES[number % PERSON_NAMES.len()],
                    password_hash,
                    otp_secret,
                    timestamp(rng),
                ])
                .context("inserting into users")?;
            if number % 3 == 0 {
                for label in &OTP_DEVICE_LABELS[..1 + number % 2] {
                    self.sql
                        .otp_device
                        .execute(params![self.ids.otp_device.take(), id, label, random_chars(rng, BASE32, 32)])
                        .context("inserting into otp_devices")?;
                }
            }
        }
        Ok(())
    }

    /// Generates workspace number `index` and everything it owns. A workspace
    /// after the first also redeems `previous_org_card`, a gift card of the
    /// workspace before it (the cross-tenant reference). Returns the gift card
    /// the next workspace should redeem.
    fn workspace(&mut self, index: usize, previous_org_card: Option<i64>) -> Result<i64> {
        let opts = self.opts;
        // `check` made sure this cannot overflow.
        let id = opts.first_org + index as i64;
        let rng = &mut self.rng;
        // User 1 belongs to every workspace and the others to some, so users
        // are shared between tenants.
        let members: Vec<i64> = (1..=opts.users as i64).filter(|&user| user == 1 || rng.gen_bool(0.4)).collect();
        let settings = match index % 3 {
            0 => Some(
                r#"{"theme":"dark","locale":"fr-FR","welcome":"Bienvenue 👋","features":["gantt","sso"],"limits":{"seats":25,"storage_gb":100}}"#,
            ),
            1 => Some("{}"),
            _ => None,
        };
        let logo: Option<Vec<u8>> = match index % 3 {
            0 => Some((0..=255).collect()),
            1 => Some(Vec::new()),
            _ => None,
        };
        // The root -> project edge of the cycle; deferred, so it may name the
        // project before that project exists.
        let default_project = (opts.projects_per_org > 0).then(|| self.ids.project.peek());
        self.sql
            .workspace
            .execute(params![
                id,
                format!("{}{id}", opts.slug_prefix),
                WORKSPACE_NAMES[index % WORKSPACE_NAMES.len()],
                PLANS[index % PLANS.len()].0,
                settings,
                logo,
                timestamp(rng),
                default_project,
            ])
            .context("inserting into workspaces")?;
        self.audit_event(id, "workspace.created")?;

        for (position, &user) in members.iter().enumerate() {
            let rng = &mut self.rng;
            let role = if position == 0 { "owner" } else { pick(rng, ROLES) };
            let joined_at = rng.gen_bool(0.9).then(|| timestamp(rng));
            self.sql.membership.execute(params![id, user, role, joined_at]).context("inserting into memberships")?;
            self.audit_event(id, "member.joined")?;
        }

        let mut org = Org { id, members, attachments: 0 };
        for position in 0..opts.projects_per_org {
            let project = self.project(&mut org, position)?;
            if index == 0 && position == 0 && opts.chain_depth > 0 {
                self.chain(&org, project)?;
            }
        }
        let card_for_next_org = self.gift_cards_and_redemptions(&org, previous_org_card)?;
        self.api_tokens(&org)?;
        self.event_log(&org)?;
        Ok(card_for_next_org)
    }

    /// Generates one project with its labels, tasks, task labels and
    /// attachments. Returns the project id.
    fn project(&mut self, org: &mut Org, position: usize) -> Result<i64> {
        let id = self.ids.project.take();
        let rng = &mut self.rng;
        // Decimal text: SQLite's NUMERIC affinity decides how it is stored.
        let budget = match rng.gen_range(0..4) {
            0 => None,
            1 => Some("0.00".to_owned()),
            _ => Some(format!("{}.{:02}", rng.gen_range(100..1_000_000), rng.gen_range(0..100))),
        };
        self.sql
            .project
            .execute(params![
                id,
                org.id,
                format!("{} {}", PROJECT_NAMES[position % PROJECT_NAMES.len()], position + 1),
                budget,
                position % 4 == 3,
            ])
            .context("inserting into projects")?;
        self.audit_event(org.id, "project.created")?;
        for (name, color) in LABELS {
            self.sql.label.execute(params![id, name, color]).context("inserting into labels")?;
        }

        let count = self.opts.tasks_per_project;
        let first_task = self.ids.task.peek();
        for position in 0..count {
            let task = self.ids.task.take();
            // A forest: some roots, the other tasks under an earlier task of
            // the project. The last task stays a root for the re-parenting below.
            let is_root = position == 0 || (count >= 3 && position == count - 1) || self.rng.gen_bool(0.3);
            let parent = (!is_root).then(|| self.rng.gen_range(first_task..task));
            let title = format!("{} #{}", pick(&mut self.rng, TASK_TITLES), position + 1);
            self.task(org, id, task, parent, &title)?;
            for offset in 0..position % 3 {
                let (label, _) = LABELS[(position + offset) % LABELS.len()];
                self.sql.task_label.execute(params![task, id, label]).context("inserting into task_labels")?;
            }
            if position % 10 == 0 {
                self.attachment(org, task)?;
            }
        }
        if count >= 3 {
            // Give the second task the last task as parent: a parent with a
            // greater id than its child, so an importer cannot rely on id
            // order. The last task is a childless root, so no cycle appears.
            let last_task = first_task + count as i64 - 1;
            self.sql.reparent_task.execute(params![last_task, first_task + 1]).context("updating tasks.parent_id")?;
        }
        Ok(id)
    }

    /// Appends `chain_depth` tasks to `project`, each the parent of the next.
    fn chain(&mut self, org: &Org, project: i64) -> Result<()> {
        let mut parent = None;
        for step in 1..=self.opts.chain_depth {
            let task = self.ids.task.take();
            self.task(org, project, task, parent, &format!("Chain step {step}"))?;
            parent = Some(task);
        }
        Ok(())
    }

    fn task(&mut self, org: &Org, project: i64, id: i64, parent: Option<i64>, title: &str) -> Result<()> {
        let rng = &mut self.rng;
        let assignee = if rng.gen_bool(0.8) { org.members.choose(rng).copied() } else { None };
        let estimate = match rng.gen_range(0..5) {
            0 => None,
            // Not exact in binary floating point.
            1 => Some(0.1),
            _ => Some(f64::from(rng.gen_range(1..=80_u32)) * 0.25),
        };
        let due_date = rng.gen_bool(0.6).then(|| date(rng));
        let done = rng.gen_bool(0.4);
        let metadata = *pick(rng, TASK_METADATA);
        let created_by_name = match rng.gen_range(0..4) {
            0 => None,
            1 => Some(""),
            _ => Some(*pick(rng, PERSON_NAMES)),
        };
        self.sql
            .task
            .execute(params![id, project, parent, assignee, title, estimate, due_date, done, metadata, created_by_name])
            .context("inserting into tasks")?;
        Ok(())
    }

    fn attachment(&mut self, org: &mut Org, task: i64) -> Result<()> {
        let rng = &mut self.rng;
        // Each workspace's first two attachments are every byte value and an
        // empty blob; the rest are small random blobs.
        let content: Vec<u8> = match org.attachments {
            0 => (0..=255).collect(),
            1 => Vec::new(),
            _ => {
                let len = rng.gen_range(1..=64);
                (0..len).map(|_| rng.gen()).collect()
            }
        };
        org.attachments += 1;
        self.sql
            .attachment
            .execute(params![self.ids.attachment.take(), task, pick(rng, FILE_NAMES), content, content.len()])
            .context("inserting into attachments")?;
        Ok(())
    }

    /// Returns the gift card the next workspace should redeem.
    fn gift_cards_and_redemptions(&mut self, org: &Org, previous_org_card: Option<i64>) -> Result<i64> {
        let first_card = self.ids.gift_card.peek();
        for position in 0..3 {
            let id = self.ids.gift_card.take();
            let rng = &mut self.rng;
            // The first card is an internal test card holding the largest
            // amount an INTEGER can store.
            let amount = if position == 0 { i64::MAX } else { rng.gen_range(1..=500) * 1000 };
            // The id part makes codes unique whatever the random part.
            let code = format!("GC-{id:06}-{}", random_chars(rng, GIFT_CODE_CHARS, 8));
            self.sql.gift_card.execute(params![id, org.id, code, amount]).context("inserting into gift_cards")?;
        }
        let regular_card = first_card + 1;
        let redemptions = [
            (Some(regular_card), 2500),
            // A refund.
            (Some(regular_card), -2500),
            // Promotional credit, no card.
            (None, 1000),
        ];
        // The cross-tenant reference: a card bought by another workspace.
        let cross_tenant = previous_org_card.map(|card| (Some(card), 5000));
        for (card, amount) in redemptions.into_iter().chain(cross_tenant) {
            self.sql.redemption.execute(params![self.ids.redemption.take(), org.id, card, amount]).context("inserting into redemptions")?;
        }
        Ok(regular_card)
    }

    fn api_tokens(&mut self, org: &Org) -> Result<()> {
        let rng = &mut self.rng;
        // One token with a creator and an expiry, one with neither.
        let tokens = [(org.members.choose(rng).copied(), Some(timestamp(rng))), (None, None)];
        for (created_by, expires_at) in tokens {
            let token = format!("tok_{}", random_chars(rng, ALPHANUMERIC, 32));
            self.sql
                .api_token
                .execute(params![uuid_v4(rng), org.id, token, created_by, expires_at])
                .context("inserting into api_tokens")?;
        }
        Ok(())
    }

    fn event_log(&mut self, org: &Org) -> Result<()> {
        let rows = [
            (Some("workspace.created"), Some(r#"{"via":"signup","referrer":null}"#)),
            // Identical rows: a table without a primary key can hold them, and
            // an export must keep both.
            (Some("plan.changed"), Some(r#"{"from":"free","to":"team"}"#)),
            (Some("plan.changed"), Some(r#"{"from":"free","to":"team"}"#)),
            (None, Some("[]")),
            (Some(""), None),
        ];
        for (kind, payload) in rows {
            self.sql.event_log.execute(params![org.id, kind, payload]).context("inserting into \"event-log\"")?;
        }
        Ok(())
    }

    fn audit_event(&mut self, workspace: i64, action: &str) -> Result<()> {
        self.sql
            .audit_event
            .execute(params![self.ids.audit_event.take(), workspace, action, timestamp(&mut self.rng)])
            .context("inserting into audit_events")?;
        Ok(())
    }

    fn search_cache(&mut self) -> Result<()> {
        for (query, result_ids) in SEARCH_CACHE {
            self.sql.search_cache.execute(params![query, result_ids, timestamp(&mut self.rng)]).context("inserting into search_cache")?;
        }
        Ok(())
    }
}

const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// No 0/O or 1/I: codes people type in.
const GIFT_CODE_CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn random_chars(rng: &mut StdRng, alphabet: &[u8], len: usize) -> String {
    (0..len).map(|_| char::from(*pick(rng, alphabet))).collect()
}

/// A random element of a non-empty constant pool.
fn pick<'a, T>(rng: &mut StdRng, pool: &'a [T]) -> &'a T {
    &pool[rng.gen_range(0..pool.len())]
}

/// A version 4 UUID in its usual lowercase text form.
fn uuid_v4(rng: &mut StdRng) -> String {
    let mut bytes: [u8; 16] = rng.gen();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// `YYYY-MM-DD HH:MM:SS`, SQLite's own `CURRENT_TIMESTAMP` format.
fn timestamp(rng: &mut StdRng) -> String {
    let date = date(rng);
    format!("{date} {:02}:{:02}:{:02}", rng.gen_range(0..24), rng.gen_range(0..60), rng.gen_range(0..60))
}

/// `YYYY-MM-DD`; days stop at 28 so every date is valid.
fn date(rng: &mut StdRng) -> String {
    format!("{}-{:02}-{:02}", rng.gen_range(2019..=2025), rng.gen_range(1..=12), rng.gen_range(1..=28))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rusqlite::types::Value;

    use super::*;

    fn generate(dir: &tempfile::TempDir, name: &str, opts: &ExampleOptions) -> PathBuf {
        let path = dir.path().join(name);
        create_example_db(&path, opts).expect("generating the example database");
        path
    }

    fn open(path: &Path) -> Connection {
        Connection::open(path).expect("opening the generated database")
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |row| row.get(0)).expect(sql)
    }

    /// Every table (SQLite's own included) with its rows, rendered and sorted
    /// so that the comparison does not depend on scan order.
    fn contents(path: &Path) -> Vec<(String, Vec<String>)> {
        let conn = open(path);
        let mut tables = conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").unwrap();
        let names: Vec<String> = tables.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
        names
            .into_iter()
            .map(|name| {
                let mut select = conn.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
                let columns = select.column_count();
                let mut rows: Vec<String> = select
                    .query_map([], |row| {
                        let values: Vec<Value> = (0..columns).map(|i| row.get(i)).collect::<rusqlite::Result<_>>()?;
                        Ok(format!("{values:?}"))
                    })
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                rows.sort();
                (name, rows)
            })
            .collect()
    }

    #[test]
    fn same_options_give_the_same_database() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ExampleOptions { chain_depth: 7, ..ExampleOptions::default() };
        let first = generate(&dir, "first.db", &opts);
        let second = generate(&dir, "second.db", &opts);
        let first_contents = contents(&first);
        assert!(first_contents.iter().any(|(table, rows)| table == "tasks" && !rows.is_empty()));
        assert_eq!(first_contents, contents(&second));
        assert_eq!(fs::read(&first).unwrap(), fs::read(&second).unwrap(), "files differ byte for byte");
    }

    #[test]
    fn another_seed_gives_other_data() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(&dir, "first.db", &ExampleOptions::default());
        let other = generate(&dir, "other.db", &ExampleOptions { seed: 7, ..ExampleOptions::default() });
        assert_ne!(contents(&first), contents(&other));
    }

    #[test]
    fn foreign_keys_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = generate(&dir, "saas.db", &ExampleOptions { chain_depth: 10, ..ExampleOptions::default() });
        let conn = open(&path);
        let mut check = conn.prepare("PRAGMA foreign_key_check").unwrap();
        let violations: Vec<String> = check.query_map([], |row| row.get::<_, String>(0)).unwrap().map(Result::unwrap).collect();
        assert!(violations.is_empty(), "foreign key violations in {violations:?}");
        let integrity: String = conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
        assert_eq!(integrity, "ok");
    }

    #[test]
    fn the_second_workspace_redeems_a_gift_card_of_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = generate(&dir, "saas.db", &ExampleOptions { first_org: 41, ..ExampleOptions::default() });
        let cross_tenant = count(
            &open(&path),
            "SELECT count(*) FROM redemptions r JOIN gift_cards g ON g.id = r.gift_card_id \
             WHERE r.workspace_id = 42 AND g.workspace_id = 41",
        );
        assert!(cross_tenant >= 1);
    }

    #[test]
    fn the_chain_has_the_requested_depth_in_the_first_project_of_the_first_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ExampleOptions { first_org: 5, tasks_per_project: 10, chain_depth: 300, ..ExampleOptions::default() };
        let conn = open(&generate(&dir, "saas.db", &opts));
        let (depth, project): (i64, i64) = conn
            .query_row(
                "WITH RECURSIVE tree(id, project_id, depth) AS ( \
                     SELECT id, project_id, 1 FROM tasks WHERE parent_id IS NULL \
                     UNION ALL \
                     SELECT t.id, t.project_id, tree.depth + 1 FROM tasks t JOIN tree ON t.parent_id = tree.id) \
                 SELECT depth, project_id FROM tree ORDER BY depth DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(depth, 300);
        assert_eq!(project, count(&conn, "SELECT min(id) FROM projects WHERE workspace_id = 5"));
    }

    #[test]
    fn refuses_to_overwrite_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precious.db");
        fs::write(&path, "keep me").unwrap();
        assert!(create_example_db(&path, &ExampleOptions::default()).is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "keep me");
    }

    #[test]
    fn rejects_a_chain_without_a_project_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saas.db");
        let opts = ExampleOptions { projects_per_org: 0, chain_depth: 3, ..ExampleOptions::default() };
        assert!(create_example_db(&path, &opts).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn contains_the_promised_edge_cases() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&generate(&dir, "saas.db", &ExampleOptions::default()));
        let checks = [
            // The cycle: every workspace's default project is one of its own.
            (
                "SELECT count(*) = 3 FROM workspaces w JOIN projects p \
                 ON p.id = w.default_project_id AND p.workspace_id = w.id",
                "default projects",
            ),
            ("SELECT count(*) > 0 FROM attachments WHERE content = zeroblob(0)", "empty blob"),
            ("SELECT count(*) > 0 FROM attachments WHERE length(content) = 256 AND hex(content) LIKE '000102%FEFF'", "all-bytes blob"),
            ("SELECT count(*) > 0 FROM tasks WHERE \"Created By Name\" IS NULL", "NULL text"),
            ("SELECT count(*) > 0 FROM tasks WHERE \"Created By Name\" = ''", "empty text"),
            ("SELECT count(*) > 0 FROM tasks WHERE parent_id > id", "parent with a greater id"),
            ("SELECT count(*) > 0 FROM gift_cards WHERE amount_cents = 9223372036854775807", "i64::MAX"),
            ("SELECT count(*) > 0 FROM redemptions WHERE amount_cents < 0", "negative integer"),
            ("SELECT count(*) > 0 FROM tasks WHERE metadata LIKE '%-9223372036854775808%'", "i64::MIN in JSON"),
            ("SELECT count(*) > 0 FROM tasks WHERE title GLOB '*[一-龥]*'", "CJK title"),
            (
                "SELECT count(*) > 0 FROM (SELECT user_id FROM memberships GROUP BY user_id HAVING count(*) > 1)",
                "user in several workspaces",
            ),
            (
                "SELECT count(*) > 0 FROM (SELECT 1 FROM \"event-log\" GROUP BY workspace_id, kind, payload HAVING count(*) > 1)",
                "duplicate rows in a table without a primary key",
            ),
            ("SELECT count(*) * 2 = (SELECT count(*) FROM users) FROM users WHERE otp_secret <> ''", "half with OTP"),
            ("SELECT count(*) = 0 FROM users WHERE password_hash NOT LIKE '$argon2id$v=19$%'", "password hashes"),
            ("SELECT count(*) > 0 FROM otp_devices", "OTP devices"),
        ];
        for (sql, what) in checks {
            assert_eq!(count(&conn, sql), 1, "{what}: {sql}");
        }
    }
}
