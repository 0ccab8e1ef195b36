-- The example SaaS application orgport is developed and tested against.
--
-- Tenant root: `workspaces`. Everything a workspace owns hangs off it through
-- foreign keys, with the awkward cases real schemas have: a root <-> child
-- cycle, a self-reference, composite and WITHOUT ROWID keys, a shared `users`
-- table, a lookup table, a cross-tenant reference, a table without a foreign
-- key, a table without a primary key, quoted names, and an unrelated table.
--
-- Plain SQLite DDL, no pragmas: run it with `PRAGMA foreign_keys = ON`.
-- Tables are in dependency order except for the deliberate forward reference
-- `workspaces.default_project_id -> projects`.

-- Lookup table: the same rows exist on every instance (`keep` in orgport.toml).
CREATE TABLE plans (
    id    TEXT PRIMARY KEY,
    name  TEXT NOT NULL,
    seats INTEGER            -- NULL = unlimited
);

-- The tenant root.
CREATE TABLE workspaces (
    id                 INTEGER PRIMARY KEY,
    slug               TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    plan_id            TEXT NOT NULL REFERENCES plans(id),
    settings           JSON,
    logo               BLOB,
    created_at         TIMESTAMP NOT NULL,
    -- Root -> child edge closing a cycle with projects.workspace_id; deferred
    -- so a workspace and its first project can be inserted in one transaction.
    default_project_id INTEGER REFERENCES projects(id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX workspaces_plan_id ON workspaces(plan_id);
CREATE INDEX workspaces_default_project_id ON workspaces(default_project_id);

-- Shared between workspaces (through memberships); matched by email on import.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    otp_secret    TEXT,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE otp_devices (
    id      INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    label   TEXT NOT NULL,
    secret  TEXT NOT NULL
);
CREATE INDEX otp_devices_user_id ON otp_devices(user_id);

CREATE TABLE memberships (
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    user_id      INTEGER NOT NULL REFERENCES users(id),
    role         TEXT NOT NULL,
    joined_at    TIMESTAMP,
    PRIMARY KEY (workspace_id, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_user_id ON memberships(user_id);

CREATE TABLE projects (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    name         TEXT NOT NULL,
    budget       DECIMAL(12,2),
    archived     BOOLEAN NOT NULL DEFAULT 0,
    UNIQUE (workspace_id, name)
);
-- No separate index on projects.workspace_id: UNIQUE (workspace_id, name)
-- already provides one with workspace_id as its leading column.

CREATE TABLE labels (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    name       TEXT NOT NULL,
    color      TEXT,
    PRIMARY KEY (project_id, name)
);

CREATE TABLE tasks (
    id                INTEGER PRIMARY KEY,
    project_id        INTEGER NOT NULL REFERENCES projects(id),
    parent_id         INTEGER REFERENCES tasks(id),
    assignee_id       INTEGER REFERENCES users(id),
    title             TEXT NOT NULL,
    estimate          REAL,
    due_date          DATE,
    done              BOOLEAN NOT NULL DEFAULT 0,
    metadata          JSON,
    "Created By Name" TEXT
);
CREATE INDEX tasks_project_id ON tasks(project_id);
CREATE INDEX tasks_parent_id ON tasks(parent_id);
CREATE INDEX tasks_assignee_id ON tasks(assignee_id);

CREATE TABLE task_labels (
    task_id    INTEGER NOT NULL REFERENCES tasks(id),
    project_id INTEGER NOT NULL,
    label_name TEXT NOT NULL,
    PRIMARY KEY (task_id, project_id, label_name),
    FOREIGN KEY (project_id, label_name) REFERENCES labels(project_id, name)
);
CREATE INDEX task_labels_label ON task_labels(project_id, label_name);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,   -- UUID
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    token        TEXT NOT NULL UNIQUE,
    created_by   INTEGER REFERENCES users(id),
    expires_at   TIMESTAMP
);
CREATE INDEX api_tokens_workspace_id ON api_tokens(workspace_id);
CREATE INDEX api_tokens_created_by ON api_tokens(created_by);

CREATE TABLE attachments (
    id        INTEGER PRIMARY KEY,
    task_id   INTEGER NOT NULL REFERENCES tasks(id),
    file_name TEXT NOT NULL,
    content   BLOB NOT NULL,
    size      INTEGER NOT NULL
);
CREATE INDEX attachments_task_id ON attachments(task_id);

CREATE TABLE gift_cards (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    code         TEXT NOT NULL UNIQUE,
    amount_cents INTEGER NOT NULL
);
CREATE INDEX gift_cards_workspace_id ON gift_cards(workspace_id);

-- A workspace may redeem a gift card bought by another workspace: the
-- gift_card_id can point across tenants.
CREATE TABLE redemptions (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    gift_card_id INTEGER REFERENCES gift_cards(id),
    amount_cents INTEGER NOT NULL
);
CREATE INDEX redemptions_workspace_id ON redemptions(workspace_id);
CREATE INDEX redemptions_gift_card_id ON redemptions(gift_card_id);

-- Belongs to a workspace but deliberately has no foreign key (orgport.toml
-- declares the reference).
CREATE TABLE audit_events (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL,
    action       TEXT NOT NULL,
    at           TIMESTAMP NOT NULL
);
CREATE INDEX audit_events_workspace_id ON audit_events(workspace_id);

-- No primary key (identical rows can exist) and a name that needs quoting.
CREATE TABLE "event-log" (
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    kind         TEXT,
    payload      JSON
);
CREATE INDEX "event-log_workspace_id" ON "event-log"(workspace_id);

-- Unrelated to tenants: no foreign key in or out.
CREATE TABLE search_cache (
    query       TEXT PRIMARY KEY,
    result_ids  TEXT NOT NULL,
    computed_at TIMESTAMP NOT NULL
);
