//! The X (Twitter) archive: `data/tweets.js` (or `tweets-part1.js`…, or the older
//! `tweet.js`), `data/note-tweet.js` and `data/account.js`. Likes, DMs and everything else
//! are not the user's writing and are never opened.
//!
//! Each file is a JavaScript assignment, `window.YTD.tweets.part0 = [ … ]`: the JSON after
//! the first `=`. Quirks handled:
//! - `full_text` has t.co links (replaced by `entities.urls[].expanded_url`) and HTML
//!   entities (`&amp;`); media links (t.co pointing at the tweet's own photo) are dropped;
//! - retweets (`RT @…`) are someone else's text;
//! - a chain of self-replies is one thread, in order; a reply to someone else is a reply;
//! - posts longer than 280 characters are cut with "…" in `tweets.js` and whole in
//!   `note-tweet.js`, matched by creation time;
//! - an edited post appears once per edit, all sharing `editTweetIds`: the last one is kept.

use super::{dates, Archive, Body, Export, ExportItem, Kind, Platform};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The JSON array of a `window.YTD.… = [ … ]` file.
fn ytd_array(text: &str) -> Result<Vec<Value>, String> {
    let start = text
        .find('[')
        .ok_or("no JSON array after the `window.YTD… =` prefix")?;
    let prefix = &text[..start];
    if !prefix.trim().is_empty() && !prefix.contains('=') {
        return Err("does not start with `window.YTD… =`".into());
    }
    match serde_json::from_str::<Value>(text[start..].trim().trim_end_matches(';')) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(_) => Err("the value after the prefix is not an array".into()),
        Err(e) => Err(format!(
            "not valid JSON after the `window.YTD… =` prefix ({e})"
        )),
    }
}

struct Tweet {
    id: String,
    stamp: String,
    text: String,
    reply_to_status: Option<String>,
    reply_to_user: Option<String>,
    edit_group: Option<Vec<String>>,
    /// Likes + reposts, when the archive counts them.
    engagement: Option<i64>,
}

/// A count the archive writes as a string (`"12"`) or, in older archives, a number.
fn count_at(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str()
}

/// `full_text` with links expanded, media links dropped and entities decoded.
fn expand(tweet: &Value) -> String {
    let mut text = str_at(tweet, &["full_text"])
        .or_else(|| str_at(tweet, &["text"]))
        .unwrap_or_default()
        .to_string();
    let urls = tweet
        .pointer("/entities/urls")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for u in &urls {
        if let (Some(short), Some(long)) = (str_at(u, &["url"]), str_at(u, &["expanded_url"])) {
            text = text.replace(short, long);
        }
    }
    for key in ["/entities/media", "/extended_entities/media"] {
        for m in tweet
            .pointer(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(short) = str_at(m, &["url"]) {
                text = text.replace(short, "");
            }
        }
    }
    super::decode_entities(text.trim())
}

fn note_text(note: &Value) -> Option<(String, String)> {
    let n = note.get("noteTweet")?;
    let stamp = dates::timestamp(str_at(n, &["createdAt"])?)?;
    let mut text = str_at(n, &["core", "text"])?.to_string();
    for u in n
        .pointer("/core/urls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(short), Some(long)) = (str_at(u, &["shortUrl"]), str_at(u, &["expandedUrl"])) {
            text = text.replace(short, long);
        }
    }
    Some((stamp, super::decode_entities(text.trim())))
}

/// Read the archive.
pub fn read(archive: &mut Archive) -> Export {
    let mut export = Export::new(Platform::X);
    let mut account_id = None;
    let mut username = None;
    if let Some(name) = archive.find("data/account.js") {
        match archive.read_text(&name).and_then(|t| ytd_array(&t)) {
            Ok(a) => {
                let acc = a.first().and_then(|v| v.get("account"));
                account_id = acc
                    .and_then(|a| str_at(a, &["accountId"]))
                    .map(str::to_string);
                username = acc
                    .and_then(|a| str_at(a, &["username"]))
                    .map(str::to_string);
            }
            Err(e) => export.fail(&name, e),
        }
    }
    let mut notes: HashMap<String, String> = HashMap::new();
    if let Some(name) = archive.find("data/note-tweet.js") {
        match archive.read_text(&name).and_then(|t| ytd_array(&t)) {
            Ok(a) => notes.extend(a.iter().filter_map(note_text)),
            Err(e) => export.fail(&name, e),
        }
    }
    let mut parts: Vec<String> = archive
        .names()
        .filter(|n| {
            let file = n.rsplit('/').next().unwrap_or(n);
            n.contains("data/")
                && (file == "tweets.js"
                    || file == "tweet.js"
                    || (file.starts_with("tweets-part") && file.ends_with(".js")))
        })
        .map(str::to_string)
        .collect();
    parts.sort();
    let mut tweets = Vec::new();
    let mut part_of: HashMap<String, String> = HashMap::new();
    for name in parts {
        let array = match archive.read_text(&name).and_then(|t| ytd_array(&t)) {
            Ok(a) => a,
            Err(e) => {
                export.fail(&name, e);
                continue;
            }
        };
        for entry in array {
            let t = entry.get("tweet").unwrap_or(&entry);
            let Some(id) = str_at(t, &["id_str"]).or_else(|| str_at(t, &["id"])) else {
                export.skip("post without an id");
                continue;
            };
            let Some(stamp) = str_at(t, &["created_at"]).and_then(dates::timestamp) else {
                export.skip("post without a readable date");
                continue;
            };
            let mut text = expand(t);
            if text.starts_with("RT @") {
                export.skip("retweet (someone else's post)");
                continue;
            }
            if let Some(whole) = notes.get(&stamp) {
                // tweets.js cuts long posts with "…"; the note holds them whole.
                text = whole.clone();
            }
            let edit_group = t
                .pointer("/edit_info/initial/editTweetIds")
                .or_else(|| t.pointer("/edit_info/edit/editControlInitial/editTweetIds"))
                .and_then(Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .filter(|ids| ids.len() > 1);
            part_of.insert(id.to_string(), name.clone());
            tweets.push(Tweet {
                id: id.to_string(),
                stamp,
                text,
                reply_to_status: str_at(t, &["in_reply_to_status_id_str"]).map(str::to_string),
                reply_to_user: str_at(t, &["in_reply_to_user_id_str"]).map(str::to_string),
                edit_group,
                engagement: match (count_at(t, "favorite_count"), count_at(t, "retweet_count")) {
                    (None, None) => None,
                    (likes, reposts) => Some(likes.unwrap_or(0) + reposts.unwrap_or(0)),
                },
            });
        }
    }

    // Edits: keep the newest version of each post (the last id of its edit group that is
    // present); every version's id maps to it, so replies to an earlier version still chain.
    let present: HashSet<String> = tweets.iter().map(|t| t.id.clone()).collect();
    let mut replaced: HashMap<String, String> = HashMap::new();
    for t in &tweets {
        if let Some(group) = &t.edit_group {
            if let Some(newest) = group.iter().rev().find(|id| present.contains(*id)) {
                for id in group {
                    replaced.insert(id.clone(), newest.clone());
                }
            }
        }
    }
    let superseded = |id: &String| replaced.get(id).is_some_and(|newest| newest != id);
    let before = tweets.len();
    tweets.retain(|t| !superseded(&t.id));
    for _ in 0..before - tweets.len() {
        export.skip("earlier version of an edited post");
    }

    // Threads: a self-reply continues its parent; chains are joined in time order.
    let is_self = |t: &Tweet| match (&t.reply_to_user, &account_id) {
        (Some(u), Some(me)) => u == me,
        _ => false,
    };
    let ids: HashSet<String> = tweets.iter().map(|t| t.id.clone()).collect();
    let mut parent: HashMap<String, String> = HashMap::new();
    for t in &tweets {
        if is_self(t) {
            if let Some(p) = &t.reply_to_status {
                let p = replaced.get(p).unwrap_or(p);
                if ids.contains(p) {
                    parent.insert(t.id.clone(), p.clone());
                }
            }
        }
    }
    let root_of = |id: &str| {
        let mut cur = id.to_string();
        let mut hops = 0;
        while let Some(p) = parent.get(&cur) {
            cur = p.clone();
            hops += 1;
            if hops > 10_000 {
                break;
            }
        }
        cur
    };
    let mut chains: BTreeMap<String, Vec<&Tweet>> = BTreeMap::new();
    for t in &tweets {
        chains.entry(root_of(&t.id)).or_default().push(t);
    }
    for (root, mut chain) in chains {
        chain.sort_by(|a, b| {
            a.stamp
                .cmp(&b.stamp)
                .then(a.id.len().cmp(&b.id.len()))
                .then(a.id.cmp(&b.id))
        });
        let first = chain[0];
        let kind = if chain.len() > 1 {
            Kind::Thread
        } else if first.reply_to_status.is_some() && !is_self(first) {
            Kind::Reply
        } else {
            Kind::Post
        };
        let text = chain
            .iter()
            .map(|t| t.text.as_str())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n");
        if text.is_empty() {
            export.skip("media-only post");
            continue;
        }
        let user = username.as_deref().unwrap_or("i");
        export.items.push(ExportItem {
            platform: Platform::X,
            kind,
            id: root.clone(),
            url: Some(format!("https://x.com/{user}/status/{root}")),
            date: Some(first.stamp[..10].to_string()),
            title: None,
            author: None,
            draft: false,
            body: Body::Text(text),
            part: part_of.get(&root).cloned().unwrap_or_default(),
            // A thread was received as a whole: its posts' counts add up.
            engagement: chain
                .iter()
                .filter_map(|t| t.engagement)
                .reduce(|a, b| a + b),
        });
    }
    export
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ytd_prefix_is_stripped_and_bad_json_named() {
        let a = ytd_array("window.YTD.tweets.part0 = [ {\"tweet\": {}} ]").unwrap();
        assert_eq!(a.len(), 1);
        let e = ytd_array("window.YTD.tweets.part0 = [ {\"tweet\": ").unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn links_are_expanded_media_dropped_entities_decoded() {
        let t: Value = serde_json::from_str(
            r#"{"full_text": "Read this &amp; that https://t.co/abc https://t.co/pic",
                "entities": {"urls": [{"url": "https://t.co/abc", "expanded_url": "https://nell.dev/post"}],
                             "media": [{"url": "https://t.co/pic"}]}}"#,
        )
        .unwrap();
        assert_eq!(expand(&t), "Read this & that https://nell.dev/post");
    }
}
