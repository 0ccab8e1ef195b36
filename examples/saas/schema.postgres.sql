-- The example SaaS schema (schema.sql) in PostgreSQL's types, for cross-engine round trips:
-- an archive exported from the SQLite example imports here.

CREATE TABLE plans (
    id    text PRIMARY KEY,
    name  text NOT NULL,
    seats bigint
);

CREATE TABLE workspaces (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug               text NOT NULL UNIQUE,
    name               text NOT NULL,
    plan_id            text NOT NULL REFERENCES plans(id),
    settings           json,
    logo               bytea,
    created_at         timestamp NOT NULL,
    default_project_id bigint
);

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    display_name  text NOT NULL,
    password_hash text NOT NULL,
    otp_secret    text,
    created_at    timestamp NOT NULL
);

CREATE TABLE otp_devices (
    id      bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users(id),
    label   text NOT NULL,
    secret  text NOT NULL
);

CREATE TABLE memberships (
    workspace_id bigint NOT NULL REFERENCES workspaces(id),
    user_id      bigint NOT NULL REFERENCES users(id),
    role         text NOT NULL,
    joined_at    timestamp,
    PRIMARY KEY (workspace_id, user_id)
);

CREATE TABLE projects (
    id           bigserial PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES workspaces(id),
    name         text NOT NULL,
    budget       numeric(12,2),
    archived     boolean NOT NULL DEFAULT false,
    UNIQUE (workspace_id, name)
);

ALTER TABLE workspaces ADD FOREIGN KEY (default_project_id) REFERENCES projects(id) DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE labels (
    project_id bigint NOT NULL REFERENCES projects(id),
    name       text NOT NULL,
    color      text,
    PRIMARY KEY (project_id, name)
);

CREATE TABLE tasks (
    id                bigserial PRIMARY KEY,
    project_id        bigint NOT NULL REFERENCES projects(id),
    parent_id         bigint REFERENCES tasks(id) DEFERRABLE INITIALLY DEFERRED,
    assignee_id       bigint REFERENCES users(id),
    title             text NOT NULL,
    estimate          double precision,
    due_date          date,
    done              boolean NOT NULL DEFAULT false,
    metadata          json,
    "Created By Name" text
);
CREATE INDEX tasks_project_id ON tasks(project_id);
CREATE INDEX tasks_parent_id ON tasks(parent_id);

CREATE TABLE task_labels (
    task_id    bigint NOT NULL REFERENCES tasks(id),
    project_id bigint NOT NULL,
    label_name text NOT NULL,
    PRIMARY KEY (task_id, project_id, label_name),
    FOREIGN KEY (project_id, label_name) REFERENCES labels(project_id, name)
);

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES workspaces(id),
    token        text NOT NULL UNIQUE,
    created_by   bigint REFERENCES users(id),
    expires_at   timestamp
);

CREATE TABLE attachments (
    id        bigserial PRIMARY KEY,
    task_id   bigint NOT NULL REFERENCES tasks(id),
    file_name text NOT NULL,
    content   bytea NOT NULL,
    size      bigint NOT NULL
);

CREATE TABLE gift_cards (
    id           bigserial PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES workspaces(id),
    code         text NOT NULL UNIQUE,
    amount_cents bigint NOT NULL
);

CREATE TABLE redemptions (
    id           bigserial PRIMARY KEY,
    workspace_id bigint NOT NULL REFERENCES workspaces(id),
    gift_card_id bigint REFERENCES gift_cards(id),
    amount_cents bigint NOT NULL
);

CREATE TABLE audit_events (
    id           bigserial PRIMARY KEY,
    workspace_id bigint NOT NULL,
    action       text NOT NULL,
    at           timestamp NOT NULL
);

CREATE TABLE "event-log" (
    workspace_id bigint NOT NULL REFERENCES workspaces(id),
    kind         text,
    payload      json
);

CREATE TABLE search_cache (
    query       text PRIMARY KEY,
    result_ids  text NOT NULL,
    computed_at timestamp NOT NULL
);

INSERT INTO plans VALUES ('free', 'Free', 3), ('team', 'Team', 50), ('enterprise', 'Enterprise', NULL);
