//! Polymorphic references: one column naming rows of several tables, told apart by a
//! discriminator column (Rails' `commentable_type`). Flagsmith's Django content types, the other
//! form of `when`, are tested on PostgreSQL in `postgres`.

use crate::util::*;

const SCHEMA: &str = "
CREATE TABLE orgs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE posts (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id), title TEXT NOT NULL);
CREATE TABLE photos (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id), url TEXT NOT NULL);
CREATE TABLE comments (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    commentable_type TEXT NOT NULL,
    commentable_id INTEGER NOT NULL,
    body TEXT NOT NULL
);";

const CONFIG: &str = r#"
root = "orgs"

[[reference]]
from = "comments.commentable_id"
to = "posts.id"
when = { commentable_type = "Post" }

[[reference]]
from = "comments.commentable_id"
to = "photos.id"
when = { commentable_type = "Photo" }
"#;

/// Each comment of `org` with what it is attached to: `body|Post:title` or `body|Photo:url`, or
/// the raw id for a kind no reference declares.
fn attached(db: &std::path::Path, org: i64) -> Vec<String> {
    texts(
        db,
        "SELECT c.body || '|' || c.commentable_type || ':' || coalesce(p.title, ph.url, c.commentable_id) FROM comments c \
         LEFT JOIN posts p ON c.commentable_type = 'Post' AND p.id = c.commentable_id AND p.org_id = c.org_id \
         LEFT JOIN photos ph ON c.commentable_type = 'Photo' AND ph.id = c.commentable_id AND ph.org_id = c.org_id \
         WHERE c.org_id = ?1 ORDER BY c.body",
        org,
    )
}

/// The one text column a query returns for an organisation, row by row.
fn texts(db: &std::path::Path, sql: &str, org: i64) -> Vec<String> {
    rows(&open(db), sql, &[&org])
        .into_iter()
        .map(|r| match &r[0] {
            Cell::Text(t) => t.clone(),
            other => panic!("text expected, got {:?}", other.storage_class()),
        })
        .collect()
}

#[test]
fn a_polymorphic_reference_follows_each_row_to_its_own_table() {
    let w = Work::new();
    // Post 1 and photo 1 share a key, so a reference followed into the wrong table shows.
    let src = w.db(
        "source.db",
        &format!(
            "{SCHEMA}
             INSERT INTO orgs VALUES (1, 'one'), (2, 'two');
             INSERT INTO posts VALUES (1, 1, 'first post'), (2, 1, 'second post'), (3, 2, 'post of two');
             INSERT INTO photos VALUES (1, 1, 'cat.png'), (2, 2, 'dog.png');
             INSERT INTO comments VALUES
                 (1, 1, 'Post', 1, 'a'), (2, 1, 'Photo', 1, 'b'), (3, 1, 'Post', 2, 'c'),
                 (4, 1, 'Photo', 2, 'd: another organisation''s photo'), (5, 1, 'Video', 9, 'e: an undeclared kind'),
                 (6, 2, 'Post', 3, 'f');"
        ),
    );
    let tgt = w.db(
        "target.db",
        &format!(
            "{SCHEMA}
             INSERT INTO orgs VALUES (10, 'ten');
             INSERT INTO posts VALUES (40, 10, 'old post');
             INSERT INTO photos VALUES (70, 10, 'old.png');
             INSERT INTO comments VALUES (100, 10, 'Post', 40, 'old');"
        ),
    );
    let config = w.config("orgport.toml", CONFIG);
    let plan = w.run(&["plan", "--db", &url(&src), "--config", config.to_str().unwrap()]);
    plan.ok();
    assert!(plan.stdout.contains("comments(commentable_id) → photos  when commentable_type = \"Photo\""), "{}", plan.stdout);

    let archive = w.path("org1.orgport");
    let export = w.export(&src, Some(&config), None, &["1"], &[], &archive);
    export.ok();
    // The comment on organisation 2's photo cannot come along (its column is NOT NULL).
    let cut = &w.manifest(&archive)["cut"];
    assert_eq!(cut.as_array().map(Vec::len), Some(1), "{cut}");
    assert_eq!(cut[0]["to"], "photos");
    assert_eq!(cut[0]["action"], "left out");

    let before = snapshot(&tgt);
    let report = w.import_json(&tgt, Some(&config), &archive);
    let new: i64 = new_org(&report).parse().unwrap();
    w.verify(&tgt, Some(&config), &archive, &[&new.to_string()]).ok();
    assert_only_added(&before, &snapshot(&tgt));
    assert_eq!(attached(&tgt, new), vec!["a|Post:first post", "b|Photo:cat.png", "c|Post:second post", "e: an undeclared kind|Video:9"]);
    let source: Vec<String> = attached(&src, 1).into_iter().filter(|c| !c.starts_with("d:")).collect();
    assert_eq!(attached(&tgt, new), source);
}

#[test]
fn a_condition_that_names_no_column_or_several_is_a_clear_error() {
    let w = Work::new();
    let src = w.db("source.db", &format!("{SCHEMA} INSERT INTO orgs VALUES (1, 'one');"));
    for (when, expected) in [
        ("{ commentable_type = \"Post\", body = \"x\" }", "reference[0].when: name exactly one column of `comments`"),
        ("{ kind = \"Post\" }", "reference[0].when: table `comments` has no column `kind`"),
        ("{ commentable_type = { name = \"Post\" } }", "`comments.commentable_type` refers to no table"),
    ] {
        let config = w.config(
            "bad.toml",
            &format!("root = \"orgs\"\n[[reference]]\nfrom = \"comments.commentable_id\"\nto = \"posts.id\"\nwhen = {when}\n"),
        );
        w.run(&["plan", "--db", &url(&src), "--config", config.to_str().unwrap()]).fails_with(&[expected]);
    }
}

/// Django's form: the kind is a row of a type table, whose keys differ between instances (and a
/// kind the target lacks is created by the import).
#[test]
fn a_type_row_decides_the_target_table_whatever_its_key_on_the_target() {
    let w = Work::new();
    let schema = "
        CREATE TABLE orgs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE kinds (id INTEGER PRIMARY KEY, app TEXT NOT NULL, model TEXT NOT NULL, UNIQUE (app, model));
        CREATE TABLE posts (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id), title TEXT NOT NULL);
        CREATE TABLE photos (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id), url TEXT NOT NULL);
        CREATE TABLE tags (
            id INTEGER PRIMARY KEY,
            org_id INTEGER NOT NULL REFERENCES orgs(id),
            kind_id INTEGER NOT NULL REFERENCES kinds(id),
            object_id INTEGER NOT NULL,
            label TEXT NOT NULL
        );";
    let src = w.db(
        "source.db",
        &format!(
            "{schema}
             INSERT INTO kinds VALUES (1, 'blog', 'post'), (2, 'media', 'photo');
             INSERT INTO orgs VALUES (1, 'one');
             INSERT INTO posts VALUES (1, 1, 'first post');
             INSERT INTO photos VALUES (1, 1, 'cat.png');
             INSERT INTO tags VALUES (1, 1, 1, 1, 'on the post'), (2, 1, 2, 1, 'on the photo');"
        ),
    );
    // On the target the post kind has another key and the photo kind does not exist yet.
    let tgt = w.db(
        "target.db",
        &format!(
            "{schema}
             INSERT INTO kinds VALUES (7, 'blog', 'post'), (8, 'other', 'thing');
             INSERT INTO orgs VALUES (5, 'five');
             INSERT INTO posts VALUES (30, 5, 'old post');
             INSERT INTO photos VALUES (60, 5, 'old.png');"
        ),
    );
    let config = w.config(
        "orgport.toml",
        r#"root = "orgs"
[[reference]]
from = "tags.object_id"
to = "posts.id"
when = { kind_id = { app = "blog", model = "post" } }
[[reference]]
from = "tags.object_id"
to = "photos.id"
when = { kind_id = { app = "media", model = "photo" } }
"#,
    );
    let archive = w.path("org1.orgport");
    w.export(&src, Some(&config), None, &["1"], &[], &archive).ok();
    let report = w.import_json(&tgt, Some(&config), &archive);
    let new: i64 = new_org(&report).parse().unwrap();
    w.verify(&tgt, Some(&config), &archive, &[&new.to_string()]).ok();
    let tagged = texts(
        &tgt,
        "SELECT t.label || ' → ' || k.app || '.' || k.model || ' ' || coalesce(p.title, ph.url, '?') FROM tags t \
         JOIN kinds k ON k.id = t.kind_id \
         LEFT JOIN posts p ON k.model = 'post' AND p.id = t.object_id AND p.org_id = t.org_id \
         LEFT JOIN photos ph ON k.model = 'photo' AND ph.id = t.object_id AND ph.org_id = t.org_id \
         WHERE t.org_id = ?1 ORDER BY t.label",
        new,
    );
    assert_eq!(tagged, vec!["on the photo → media.photo cat.png", "on the post → blog.post first post"]);
}
