//! Ghost's JSON export: `db[0].data` with `posts` (`html`, `status`, `type`,
//! `published_at`), `users`, and `posts_authors` joining them. Pages are kind page; posts
//! by other staff carry their author's name for [`super::Export::select`].

use super::{dates, Body, Export, ExportItem, Kind, Platform};
use serde_json::Value;
use std::collections::HashMap;

/// Read a Ghost export's bytes (`part` names the file in messages).
pub fn read(bytes: &[u8], part: &str) -> Export {
    let mut export = Export::new(Platform::Ghost);
    let root: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            export.fail(part, format!("not valid JSON ({e})"));
            return export;
        }
    };
    let Some(data) = root.pointer("/db/0/data") else {
        export.fail(part, "no db[0].data: not a Ghost export");
        return export;
    };
    let list = |key: &str| {
        data.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let id_of = |v: &Value| {
        v.get("id").map(|i| {
            i.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| i.to_string())
        })
    };
    let users: HashMap<String, String> = list("users")
        .iter()
        .filter_map(|u| Some((id_of(u)?, s(u, "name").or_else(|| s(u, "slug"))?)))
        .collect();
    let mut author_of: HashMap<String, String> = HashMap::new();
    let mut links = list("posts_authors");
    links.sort_by_key(|l| l.get("sort_order").and_then(Value::as_i64).unwrap_or(0));
    for l in &links {
        if let (Some(p), Some(a)) = (s(l, "post_id"), s(l, "author_id")) {
            if let Some(name) = users.get(&a) {
                author_of.entry(p).or_insert_with(|| name.clone());
            }
        }
    }
    let posts = list("posts");
    if posts.is_empty() && data.get("posts").is_none() {
        export.fail(part, "no posts table in db[0].data");
    }
    for p in posts {
        let Some(id) = id_of(&p) else {
            export.skip("post without an id");
            continue;
        };
        let html = s(&p, "html").unwrap_or_default();
        if html.trim().is_empty() {
            export.skip("empty post");
            continue;
        }
        let kind = match s(&p, "type").as_deref() {
            Some("page") => Kind::Page,
            _ => Kind::Article,
        };
        let author = author_of
            .get(&id)
            .cloned()
            .or_else(|| s(&p, "author_id").and_then(|a| users.get(&a).cloned()));
        if let Some(a) = &author {
            *export.authors.entry(a.clone()).or_default() += 1;
        }
        export.items.push(ExportItem {
            platform: Platform::Ghost,
            kind,
            id,
            url: s(&p, "canonical_url").filter(|u| !u.is_empty()),
            date: s(&p, "published_at")
                .or_else(|| s(&p, "created_at"))
                .and_then(|d| dates::day(&d)),
            title: s(&p, "title"),
            author,
            draft: s(&p, "status").as_deref() != Some("published"),
            body: Body::Html(html),
            part: part.to_string(),
            engagement: None,
        });
    }
    export
}
