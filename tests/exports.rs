//! Platform exports end to end through `twin import`: LinkedIn, X, Medium, Substack,
//! WordPress and Ghost, each built here from the formats as the platforms document and
//! deliver them, quirks included, then checked in the library: the right documents, dates,
//! kinds and URLs; nothing that is not the user's writing; re-imports that touch only what
//! changed; damaged exports named part by part.

mod common;

use common::{json, run_ok, twin};
use std::io::Write;
use std::path::{Path, PathBuf};
use twin_core::store::{Document, Store};

/// Words planted in text that must never reach the library.
const NOT_MINE: &[&str] = &[
    "zebracrossingdm",     // a LinkedIn message
    "quokkaconnection",    // a LinkedIn connection
    "pangolinrepost",      // X retweet
    "narwhallike",         // X like
    "axolotldirect",       // X DM
    "wombatdraft",         // Medium draft
    "ocelotsubscriber",    // Substack subscriber list
    "okapipage",           // Substack page
    "tapirother",          // WordPress post by another author
    "lemurcomment",        // WordPress reader comment
    "capybarawpdraft",     // WordPress draft
    "marmotghostother",    // Ghost post by another author
    "dingoghostdraft",     // Ghost draft
    "gecko-subscribe-now", // Substack button
    "iguanawppage",        // WordPress page (imported only with --include-pages)
];

fn zip(path: &Path, files: &[(&str, &str)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, body) in files {
        z.start_file(*name, opts).unwrap();
        z.write_all(body.as_bytes()).unwrap();
    }
    z.finish().unwrap();
}

fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (name, body) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

// ---- LinkedIn ----------------------------------------------------------------------------

/// `Shares.csv` as LinkedIn writes it: each line of a multi-line post in its own quotes, math
/// bold letters, a repost without commentary.
fn linkedin_shares(extra_post: &str) -> String {
    let mut s = String::from("Date,ShareLink,ShareCommentary,SharedUrl,MediaUrl,Visibility\n");
    // After a CSV parse: `𝐏𝐫𝐢𝐜𝐞 is a signal."⏎""⏎"Charge more than feels comfortable.`
    s.push_str("2024-03-05 09:15:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A7001,\"𝐏𝐫𝐢𝐜𝐞 is a signal.\"\"\n\"\"\"\"\n\"\"Charge more than feels comfortable, then earn it.\",,,MEMBER_NETWORK\n");
    s.push_str("2024-04-10 18:00:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A7002,,https://example.com/someone-elses-post,,PUBLIC\n");
    s.push_str(&format!("2024-05-20 07:30:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A7003,\"{extra_post}\",,,PUBLIC\n"));
    s
}

fn linkedin_export(path: &Path, extra_post: &str) {
    zip(
        path,
        &[
            ("Shares.csv", &linkedin_shares(extra_post)),
            (
                "Comments.csv",
                "Date,Link,Message\n2024-06-01 12:00:00,https://www.linkedin.com/feed/update/urn:li:activity:9001,\"Agreed: \\\"ship small\\\" beats a grand plan every time.\"\n",
            ),
            (
                "Articles/Articles/Handing over a codebase.html",
                "<html><head><title>Handing over a codebase</title></head><body>\
                 <h1><a href=\"https://www.linkedin.com/pulse/handing-over-codebase-nell-hart\">Handing over a codebase</a></h1>\
                 <p class=\"created\">Created on 2023-11-02 10:00</p>\
                 <p class=\"published\">Published on 2023-11-03 08:00</p>\
                 <div><p>Write the map before you leave the territory.</p><p>A handover note beats a handover meeting.</p></div>\
                 </body></html>",
            ),
            ("messages.csv", "CONVERSATION ID,FROM,TO,CONTENT\n1,Nell,Sam,zebracrossingdm\n"),
            ("Connections.csv", "First Name,Last Name\nquokkaconnection,Smith\n"),
            ("Profile.csv", "First Name,Last Name,Headline\nNell,Hart,Writer\n"),
        ],
    );
}

// ---- X -------------------------------------------------------------------------------------

fn tweet(id: &str, created: &str, text: &str, extra: &str) -> String {
    format!(
        r#"{{"tweet": {{"id_str": "{id}", "id": "{id}", "created_at": "{created}", "full_text": "{text}", "entities": {{"urls": [{{"url": "https://t.co/abc", "expanded_url": "https://nell.dev/pricing"}}], "media": []}}{extra}}}}}"#
    )
}

fn x_export(path: &Path) {
    let long_cut = "Pricing is the most honest conversation you will have with a customer. It tells them what you think your work is worth and it tells you what they think. Most founders flinch first. Do not flinch: name the number, then stop talking and let the silence do its…";
    let tweets = [
        tweet(
            "100",
            "Tue Mar 19 14:05:17 +0000 2019",
            "Small teams ship &amp; learn faster. Notes: https://t.co/abc",
            r#", "favorite_count": "12", "retweet_count": "3""#,
        ),
        tweet(
            "101",
            "Wed Mar 20 10:00:00 +0000 2019",
            "RT @someone: pangolinrepost is a great idea",
            "",
        ),
        // A thread of three, listed out of order, each replying to the previous.
        tweet(
            "203",
            "Thu Mar 21 10:02:00 +0000 2019",
            "3/ Then write the handover note.",
            r#", "in_reply_to_status_id_str": "202", "in_reply_to_user_id_str": "111""#,
        ),
        tweet(
            "201",
            "Thu Mar 21 10:00:00 +0000 2019",
            "1/ How to hand over a codebase.",
            r#", "favorite_count": "5", "retweet_count": "1""#,
        ),
        tweet(
            "202",
            "Thu Mar 21 10:01:00 +0000 2019",
            "2/ First, delete what nobody uses.",
            r#", "in_reply_to_status_id_str": "201", "in_reply_to_user_id_str": "111", "favorite_count": 2"#,
        ),
        // A reply to someone else.
        tweet(
            "300",
            "Fri Mar 22 09:00:00 +0000 2019",
            "@sam Yes, and price it higher.",
            r#", "in_reply_to_status_id_str": "299", "in_reply_to_user_id_str": "999""#,
        ),
        // A long post cut in tweets.js, whole in note-tweet.js.
        tweet("400", "Sat Mar 23 08:00:00 +0000 2019", long_cut, ""),
        // An edited post: two versions, the last kept.
        tweet(
            "500",
            "Sun Mar 24 08:00:00 +0000 2019",
            "Saying no is a product desicion.",
            r#", "edit_info": {"initial": {"editTweetIds": ["500", "501"]}}"#,
        ),
        tweet(
            "501",
            "Sun Mar 24 08:05:00 +0000 2019",
            "Saying no is a product decision.",
            r#", "edit_info": {"edit": {"initialTweetId": "500", "editControlInitial": {"editTweetIds": ["500", "501"]}}}"#,
        ),
    ];
    let tweets_js = format!("window.YTD.tweets.part0 = [\n{}\n]", tweets.join(",\n"));
    let note = r#"window.YTD.note_tweet.part0 = [ { "noteTweet": { "noteTweetId": "9", "createdAt": "2019-03-23T08:00:00.000Z", "core": { "text": "Pricing is the most honest conversation you will have with a customer. It tells them what you think your work is worth and it tells you what they think. Most founders flinch first. Do not flinch: name the number, then stop talking and let the silence do its work. Whoever speaks next has decided.", "urls": [] } } } ]"#;
    zip(
        path,
        &[
            (
                "data/account.js",
                r#"window.YTD.account.part0 = [ { "account": { "accountId": "111", "username": "nellhart", "accountDisplayName": "Nell Hart" } } ]"#,
            ),
            ("data/tweets.js", &tweets_js),
            ("data/note-tweet.js", note),
            (
                "data/like.js",
                r#"window.YTD.like.part0 = [ { "like": { "tweetId": "1", "fullText": "narwhallike" } } ]"#,
            ),
            (
                "data/direct-messages.js",
                r#"window.YTD.direct_messages.part0 = [ { "dmConversation": { "messages": [ { "messageCreate": { "text": "axolotldirect" } } ] } } ]"#,
            ),
        ],
    );
}

// ---- Medium (unpacked folder) ------------------------------------------------------------

fn medium_page(
    title: Option<&str>,
    body: &str,
    published: Option<&str>,
    canonical: &str,
) -> String {
    let title_graf = title
        .map(|t| format!("<h3 class=\"graf graf--h3 graf--leading graf--title\">{t}</h3>"))
        .unwrap_or_default();
    let time = published
        .map(|d| format!("<time class=\"dt-published\" datetime=\"{d}\">{d}</time>"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html><html><head><title>{t}</title></head><body><article class=\"h-entry\">\
         <header><h1 class=\"p-name\">{t}</h1></header>\
         <section data-field=\"body\" class=\"e-content\"><section class=\"section section--body\"><div class=\"section-inner\">\
         {title_graf}{body}</div></section></section>\
         <footer><p>By <a class=\"p-author h-card\" href=\"https://medium.com/@nell\">Nell Hart</a> on {time}</p>\
         <p><a href=\"{canonical}\" class=\"p-canonical\">Canonical link</a></p></footer></article></body></html>",
        t = title.unwrap_or("Response")
    )
}

fn medium_export(root: &Path) {
    write_tree(
        root,
        &[
            (
                "posts/2023-04-01_Why-a-tiny-company-should-say-no-ab12cd34ef56.html",
                &medium_page(
                    Some("Why a tiny company should say no"),
                    "<p class=\"graf graf--p\">Every yes costs a maintenance budget you do not have.</p><p class=\"graf graf--p\">Say no kindly and often.</p>",
                    Some("2023-04-01T09:00:00.000Z"),
                    "https://medium.com/@nell/why-a-tiny-company-should-say-no-ab12cd34ef56",
                ),
            ),
            (
                "posts/draft_Unfinished-99aa11bb22cc.html",
                &medium_page(Some("Unfinished"), "<p class=\"graf graf--p\">wombatdraft half a thought.</p>", None, "https://medium.com/p/99aa11bb22cc"),
            ),
            (
                "posts/2023-05-02_Great-point--1234abcd5678.html",
                &medium_page(None, "<p class=\"graf graf--p\">Great point about pricing; I would add that discounts train customers to wait.</p>", Some("2023-05-02T10:00:00.000Z"), "https://medium.com/@nell/1234abcd5678"),
            ),
            ("profile/profile.html", "<html><body><h3>Nell Hart</h3></body></html>"),
            ("README.html", "<html><body>Medium export</body></html>"),
        ],
    );
}

// ---- Substack ------------------------------------------------------------------------------

fn substack_export(path: &Path) {
    let posts_csv = "post_id,post_date,is_published,email_sent_at,inbox_sent_at,type,audience,title,subtitle,podcast_url\n\
        12345.the-price-letter,2024-02-01T08:00:00.000Z,true,2024-02-01T08:00:00.000Z,,newsletter,everyone,The price letter,On charging what you are worth,\n\
        12346.not-yet,2024-03-01T08:00:00.000Z,false,,,newsletter,everyone,Not yet,,\n\
        12347.about,2023-01-01T08:00:00.000Z,true,,,page,everyone,About,,\n";
    zip(
        path,
        &[
            ("posts.csv", posts_csv),
            (
                "posts/12345.the-price-letter.html",
                "<p>This month I raised my prices and nobody left.</p>\
                 <div class=\"subscription-widget-wrap\"><p>gecko-subscribe-now Thanks for reading! Subscribe for free.</p></div>\
                 <p>Charge for the outcome, not the hours.</p>\
                 <p class=\"button-wrapper\"><a class=\"button primary\" href=\"https://nell.substack.com/p/the-price-letter/comments\"><span>Leave a comment</span></a></p>",
            ),
            ("posts/12346.not-yet.html", "<p>wombatdraft is not ready.</p>"),
            ("posts/12347.about.html", "<p>okapipage about me.</p>"),
            ("posts/12345.the-price-letter.opens.csv", "email,opened\nocelotsubscriber@example.com,1\n"),
            ("email_list.nell.csv", "email,active_subscription\nocelotsubscriber@example.com,true\n"),
        ],
    );
}

// ---- WordPress (bare WXR) --------------------------------------------------------------------

fn wp_item(
    id: u32,
    title: &str,
    creator: &str,
    status: &str,
    kind: &str,
    content: &str,
    extra: &str,
) -> String {
    format!(
        "<item><title>{title}</title><link>https://nell.blog/?p={id}</link>\
         <pubDate>Tue, 19 Mar 2019 14:05:17 +0000</pubDate>\
         <dc:creator><![CDATA[{creator}]]></dc:creator>\
         <guid isPermaLink=\"false\">https://nell.blog/?p={id}</guid>\
         <content:encoded><![CDATA[{content}]]></content:encoded>\
         <wp:post_id>{id}</wp:post_id><wp:post_date><![CDATA[2019-03-19 14:05:17]]></wp:post_date>\
         <wp:status><![CDATA[{status}]]></wp:status><wp:post_type><![CDATA[{kind}]]></wp:post_type>{extra}</item>"
    )
}

fn wordpress_export(path: &Path) {
    let items = [
        wp_item(1, "Ship small", "nell", "publish", "post", "<!-- wp:paragraph -->\n<p>Ship small, ship often &amp; listen.</p>\n<!-- /wp:paragraph -->", "<wp:comment><wp:comment_author>Reader</wp:comment_author><wp:comment_content><![CDATA[lemurcomment nice]]></wp:comment_content></wp:comment>"),
        wp_item(2, "Classic notes", "nell", "publish", "post", "First paragraph of a classic post.\nStill the first.\n\nSecond paragraph.", ""),
        wp_item(3, "Guest post", "sam", "publish", "post", "<p>tapirother wrote this.</p>", ""),
        wp_item(4, "Someday", "nell", "draft", "post", "<p>capybarawpdraft idea.</p>", ""),
        wp_item(5, "About", "nell", "publish", "page", "<p>iguanawppage: I write about small software.</p>", ""),
        wp_item(6, "photo.jpg", "nell", "inherit", "attachment", "", ""),
        wp_item(7, "Old", "nell", "trash", "post", "<p>gone</p>", ""),
    ];
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<rss version=\"2.0\" xmlns:excerpt=\"http://wordpress.org/export/1.2/excerpt/\" \
         xmlns:content=\"http://purl.org/rss/1.0/modules/content/\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" \
         xmlns:wp=\"http://wordpress.org/export/1.2/\"><channel><title>Nell's blog</title>\
         <wp:author><wp:author_id>1</wp:author_id><wp:author_login><![CDATA[nell]]></wp:author_login><wp:author_display_name><![CDATA[Nell Hart]]></wp:author_display_name></wp:author>\
         <wp:author><wp:author_id>2</wp:author_id><wp:author_login><![CDATA[sam]]></wp:author_login><wp:author_display_name><![CDATA[Sam Other]]></wp:author_display_name></wp:author>\
         {}</channel></rss>",
        items.join("\n")
    );
    std::fs::write(path, xml).unwrap();
}

// ---- Ghost (bare JSON) -----------------------------------------------------------------------

fn ghost_export(path: &Path) {
    let v = serde_json::json!({"db": [{"meta": {"version": "5.0.0"}, "data": {
        "users": [{"id": "u1", "name": "Nell Hart", "slug": "nell"}, {"id": "u2", "name": "Sam Other", "slug": "sam"}],
        "posts": [
            {"id": "p1", "title": "Notes on saying no", "html": "<p>No is a complete sentence for a small company.</p>", "status": "published", "type": "post", "published_at": "2022-06-01T10:00:00.000Z"},
            {"id": "p2", "title": "Sam's view", "html": "<p>marmotghostother thinks otherwise.</p>", "status": "published", "type": "post", "published_at": "2022-06-02T10:00:00.000Z"},
            {"id": "p3", "title": "Later", "html": "<p>dingoghostdraft.</p>", "status": "draft", "type": "post", "published_at": null},
            {"id": "p4", "title": "Contact", "html": "<p>Write to me.</p>", "status": "published", "type": "page", "published_at": "2021-01-01T10:00:00.000Z"}
        ],
        "posts_authors": [
            {"id": "a1", "post_id": "p1", "author_id": "u1", "sort_order": 0},
            {"id": "a2", "post_id": "p2", "author_id": "u2", "sort_order": 0},
            {"id": "a3", "post_id": "p3", "author_id": "u1", "sort_order": 0},
            {"id": "a4", "post_id": "p4", "author_id": "u1", "sort_order": 0}
        ]
    }}]});
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

// ---- the library, read back ----------------------------------------------------------------

fn documents(data: &Path) -> Vec<Document> {
    let store = Store::open(&data.join(twin_core::library::DATABASE_FILE)).unwrap();
    store
        .original_document_ids()
        .unwrap()
        .into_iter()
        .filter_map(|id| store.document(id).unwrap())
        .collect()
}

fn of<'a>(docs: &'a [Document], platform: &str) -> Vec<&'a Document> {
    docs.iter()
        .filter(|d| d.platform.as_deref() == Some(platform))
        .collect()
}

fn kinds(docs: &[&Document]) -> Vec<String> {
    let mut k: Vec<String> = docs.iter().filter_map(|d| d.kind.clone()).collect();
    k.sort();
    k
}

fn import(data: &Path, args: &[&str], paths: &[&PathBuf]) -> std::process::Output {
    twin(data)
        .arg("import")
        .args(args)
        .args(paths)
        .output()
        .unwrap()
}

#[test]
fn six_platform_exports_import_as_the_users_own_writing() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let li = src.path().join("Basic_LinkedInDataExport_12-01-2026.zip");
    linkedin_export(&li, "Say no to the feature, yes to the customer.");
    let x = src.path().join("twitter-2026-12-01-abc.zip");
    x_export(&x);
    let medium = src.path().join("medium-export");
    medium_export(&medium);
    let substack = src.path().join("nell-substack-export.zip");
    substack_export(&substack);
    let wp = src.path().join("nellsblog.WordPress.2026-12-01.xml");
    wordpress_export(&wp);
    let ghost = src.path().join("nell-blog.ghost.2026-12-01.json");
    ghost_export(&ghost);

    // A multi-author WordPress export is refused until the user says who they are, naming
    // the authors; everything else imports (first run, no prior command).
    let out = import(
        data.path(),
        &[],
        &[&li, &x, &medium, &substack, &wp, &ghost],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("Nell Hart (4), Sam Other (1)")
            && stderr.contains("Nell Hart (3), Sam Other (1)")
            && stderr.contains("--author"),
        "{stderr}"
    );
    assert!(stdout.contains("linkedin"), "per-platform lines: {stdout}");

    let out = run_ok(
        twin(data.path())
            .args(["import", "--author", "Nell Hart"])
            .args([&li, &x, &medium, &substack, &wp, &ghost]),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        stdout.contains("left out 1: repost without commentary"),
        "{stdout}"
    );
    assert!(stdout.contains("retweet (someone else's post)"), "{stdout}");
    assert!(stdout.contains("written by another author"), "{stdout}");
    assert!(
        stdout.contains("page (import with --include-pages)"),
        "{stdout}"
    );

    let docs = documents(data.path());
    // LinkedIn: two posts (the repost is not one), a comment, an article.
    let li_docs = of(&docs, "linkedin");
    assert_eq!(
        kinds(&li_docs),
        ["article", "comment", "post", "post"],
        "{li_docs:#?}"
    );
    let price = li_docs.iter().find(|d| d.body.contains("signal")).unwrap();
    assert_eq!(
        price.body,
        "Price is a signal.\n\nCharge more than feels comfortable, then earn it."
    );
    assert_eq!(price.date.as_deref(), Some("2024-03-05"));
    assert_eq!(
        price.url.as_deref(),
        Some("https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A7001")
    );
    let comment = li_docs
        .iter()
        .find(|d| d.kind.as_deref() == Some("comment"))
        .unwrap();
    assert!(
        comment.body.contains("Agreed: \"ship small\" beats"),
        "{}",
        comment.body
    );
    let article = li_docs
        .iter()
        .find(|d| d.kind.as_deref() == Some("article"))
        .unwrap();
    assert_eq!(article.title, "Handing over a codebase");
    assert_eq!(article.date.as_deref(), Some("2023-11-03"));
    assert!(!article.body.contains("Created on") && article.body.contains("Write the map"));

    // X: a post, a thread of three joined in order, a reply, the long post whole, the edit.
    let x_docs = of(&docs, "x");
    assert_eq!(
        kinds(&x_docs),
        ["post", "post", "post", "reply", "thread"],
        "{x_docs:#?}"
    );
    let thread = x_docs
        .iter()
        .find(|d| d.kind.as_deref() == Some("thread"))
        .unwrap();
    assert_eq!(
        thread.body,
        "1/ How to hand over a codebase.\n\n2/ First, delete what nobody uses.\n\n3/ Then write the handover note."
    );
    assert_eq!(
        thread.url.as_deref(),
        Some("https://x.com/nellhart/status/201")
    );
    assert!(x_docs
        .iter()
        .any(|d| d.body.ends_with("Whoever speaks next has decided.")));
    assert!(x_docs
        .iter()
        .any(|d| d.body == "Saying no is a product decision."));
    assert!(!x_docs.iter().any(|d| d.body.contains("desicion")));
    let first = x_docs
        .iter()
        .find(|d| d.body.starts_with("Small teams"))
        .unwrap();
    assert_eq!(
        first.body,
        "Small teams ship & learn faster. Notes: https://nell.dev/pricing"
    );
    assert_eq!(first.date.as_deref(), Some("2019-03-19"));

    // Medium: the story (title not repeated in the body) and a response; the draft left out.
    let m = of(&docs, "medium");
    assert_eq!(kinds(&m), ["article", "comment"], "{m:#?}");
    let story = m
        .iter()
        .find(|d| d.kind.as_deref() == Some("article"))
        .unwrap();
    assert_eq!(story.title, "Why a tiny company should say no");
    assert!(
        !story.body.contains("Why a tiny company should say no"),
        "{}",
        story.body
    );
    assert_eq!(story.date.as_deref(), Some("2023-04-01"));

    // How posts were received, where the export counts it: X likes + reposts (a thread's
    // posts add up), Substack email opens (rows counted; no address kept).
    let store = Store::open(&data.path().join(twin_core::library::DATABASE_FILE)).unwrap();
    let received: std::collections::HashMap<String, i64> = store
        .engagement_by_document()
        .unwrap()
        .into_iter()
        .map(|(id, n)| {
            (
                store
                    .document(id)
                    .unwrap()
                    .unwrap()
                    .path
                    .display()
                    .to_string(),
                n,
            )
        })
        .collect();
    assert_eq!(received.get("x:100"), Some(&15), "{received:?}");
    assert_eq!(received.get("x:201"), Some(&8), "{received:?}");
    assert_eq!(received.get("x:300"), None, "{received:?}");
    assert_eq!(received.get("substack:12345"), Some(&1), "{received:?}");

    // Substack: the published newsletter without its buttons; no draft, no page.
    let s = of(&docs, "substack");
    assert_eq!(kinds(&s), ["newsletter"], "{s:#?}");
    assert!(s[0].body.contains("nobody left") && !s[0].body.contains("Leave a comment"));
    assert_eq!(s[0].title, "The price letter");

    // WordPress: Nell's two posts (Gutenberg and classic); her About page only when asked.
    let w = of(&docs, "wordpress");
    assert_eq!(kinds(&w), ["article", "article"], "{w:#?}");
    let classic = w.iter().find(|d| d.title == "Classic notes").unwrap();
    assert_eq!(
        classic.body,
        "First paragraph of a classic post.\nStill the first.\n\nSecond paragraph."
    );
    assert!(w
        .iter()
        .any(|d| d.body == "Ship small, ship often & listen."));

    // Ghost: Nell's post (the Contact page left out).
    let g = of(&docs, "ghost");
    assert_eq!(kinds(&g), ["article"], "{g:#?}");

    for d in &docs {
        assert!(
            !d.body.contains("t.co/") && !d.body.contains("&amp;"),
            "{d:#?}"
        );
        assert!(!d.body.contains("\"\""), "quote artifacts: {d:#?}");
        assert!(!d
            .body
            .chars()
            .any(|c| ('\u{1D400}'..='\u{1D7FF}').contains(&c)));
        for word in NOT_MINE {
            assert!(!d.body.to_lowercase().contains(word), "{word} in {d:#?}");
        }
    }
    for word in NOT_MINE {
        let hits = json(&run_ok(
            twin(data.path()).args(["--json", "search", "--mode", "bm25", word]),
        ));
        assert!(hits.as_array().unwrap().is_empty(), "{word}: {hits}");
    }

    // Counts per platform and kind, and the filters.
    let status = json(&run_ok(twin(data.path()).args(["--json", "status"])));
    let per = status["library"]["by_platform"].as_array().unwrap();
    let count = |p: &str, k: &str| {
        per.iter()
            .find(|r| r["platform"] == p && r["kind"] == k)
            .map_or(0, |r| r["documents"].as_u64().unwrap())
    };
    assert_eq!(count("x", "thread"), 1, "{status}");
    assert_eq!(count("linkedin", "post"), 2, "{status}");
    let hits = json(&run_ok(twin(data.path()).args([
        "--json",
        "search",
        "--platform",
        "x",
        "--kind",
        "thread",
        "hand over a codebase",
    ])));
    let hits = hits.as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(
        hits.iter().all(|h| h["path"] == "x:201"),
        "only the thread: {hits:?}"
    );

    // Re-import unchanged: nothing new, nothing embedded.
    let again = json(&run_ok(
        twin(data.path())
            .args(["--json", "import"])
            .args([&li, &x, &wp]),
    ));
    assert_eq!(again["added"], 0, "{again}");
    assert_eq!(again["updated"], 0, "{again}");
    assert_eq!(again["chunks_embedded"], 0, "{again}");

    // A newer LinkedIn export: one edited post, one new; only they are embedded.
    let newer = src.path().join("Basic_LinkedInDataExport_12-02-2026.zip");
    linkedin_export(
        &newer,
        "Say no to the feature, yes to the customer. Every time.",
    );
    let mut shares = linkedin_shares("Say no to the feature, yes to the customer. Every time.");
    shares.push_str("2024-07-01 07:00:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A7004,\"A brand new post about handovers.\",,,PUBLIC\n");
    zip(&newer, &[("Shares.csv", &shares)]);
    let r = json(&run_ok(
        twin(data.path()).args(["--json", "import"]).arg(&newer),
    ));
    assert_eq!(r["added"], 1, "{r}");
    assert_eq!(r["updated"], 1, "{r}");
    assert_eq!(r["unchanged"], 1, "{r}");
    assert_eq!(r["chunks_embedded"], 2, "{r}");
    assert_eq!(
        of(&documents(data.path()), "linkedin").len(),
        5,
        "the rest is kept"
    );
}

#[test]
fn damaged_exports_are_named_part_by_part_and_nothing_stored_is_lost() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let good = src.path().join("good.zip");
    linkedin_export(&good, "A post that must survive.");
    run_ok(twin(data.path()).arg("import").arg(&good));
    let before = documents(data.path()).len();

    // A truncated zip.
    let bytes = std::fs::read(&good).unwrap();
    let truncated = src.path().join("truncated.zip");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // A Shares.csv with a missing column.
    let missing = src.path().join("missing-column.zip");
    zip(
        &missing,
        &[("Shares.csv", "Date,ShareLink\n2024-01-01,https://x\n")],
    );
    // tweets.js that is not JSON after its prefix.
    let bad_js = src.path().join("bad-x.zip");
    zip(
        &bad_js,
        &[
            (
                "data/account.js",
                r#"window.YTD.account.part0 = [ { "account": { "accountId": "1" } } ]"#,
            ),
            (
                "data/tweets.js",
                "window.YTD.tweets.part0 = [ { \"tweet\": { \"id_str\": ",
            ),
        ],
    );
    let out = import(data.path(), &[], &[&truncated, &missing, &bad_js]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("truncated.zip") && stderr.contains("not a readable zip"),
        "{stderr}"
    );
    assert!(
        stderr.contains("missing-column.zip: Shares.csv: missing column \"ShareCommentary\""),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("bad-x.zip: data/tweets.js: not valid JSON after the `window.YTD… =` prefix"),
        "{stderr}"
    );
    assert_eq!(
        documents(data.path()).len(),
        before,
        "nothing stored is lost"
    );
    let hits = json(&run_ok(
        twin(data.path()).args(["--json", "search", "--mode", "bm25", "survive"]),
    ));
    assert!(!hits.as_array().unwrap().is_empty());
}
