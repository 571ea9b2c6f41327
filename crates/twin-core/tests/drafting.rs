//! The drafting pipeline on the real default models (SmolLM2-135M-Instruct for generation,
//! all-MiniLM-L6-v2 for retrieval) over the sample writing: a draft in every format with
//! citations on topic, grammar-constrained steps that always parse, cancellation within
//! 200 ms, KV-cache reuse, chat templates, and clear errors for damaged model files.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use twin_core::draft::{self, DraftRequest, Format, Templates};
use twin_core::engine::{
    ChatMessage, ChatModel, ChatModelConfig, FinishReason, GenerateRequest, Sampling,
};
use twin_core::prompt::format::{x_length, X_POST_LIMIT};
use twin_core::prompt::grammar::{self, Expansion, SelfQuery};
use twin_core::{CancelToken, Library};

use common::smollm2;

fn model() -> &'static ChatModel {
    static MODEL: OnceLock<ChatModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        ChatModel::load(
            &smollm2(),
            &ChatModelConfig {
                context_tokens: 4096,
                ..Default::default()
            },
        )
        .expect("load SmolLM2")
    })
}

/// The sample writing imported once into a library shared by the tests of this binary.
fn library() -> &'static Mutex<Library> {
    static LIB: OnceLock<(tempfile::TempDir, Mutex<Library>)> = OnceLock::new();
    &LIB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let lib = common::sample_library(dir.path());
        (dir, Mutex::new(lib))
    })
    .1
}

fn lock_library() -> std::sync::MutexGuard<'static, Library> {
    library().lock().unwrap_or_else(|e| e.into_inner())
}

/// Words whose presence shows a chunk is on the topic.
fn on_topic(text: &str, stems: &[&str]) -> bool {
    let lower = text.to_lowercase();
    stems.iter().any(|s| lower.contains(s))
}

/// The `field` of every item of the trace detail's `list` (step names, template names).
fn trace_names<'a>(detail: &'a serde_json::Value, list: &str, field: &str) -> Vec<&'a str> {
    detail[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[field].as_str().unwrap())
        .collect()
}

#[test]
fn drafts_in_every_format_cite_real_chunks_on_topic() {
    let cases: [(Format, &str, &[&str], bool); 4] = [
        (
            Format::Linkedin,
            "How to price a small software product",
            &["pric", "charg", "cheap"],
            false,
        ),
        (
            Format::Thread,
            "An X thread on why small pull requests ship faster",
            &["pull request", "pr", "small batch", "review"],
            true,
        ),
        (
            Format::Article,
            "Maintenance is the product",
            &["mainten", "repair", "upkeep"],
            true,
        ),
        (
            Format::Newsletter,
            "Rest, on-call and sustainable pace",
            &["rest", "on-call", "on call", "tired", "sleep"],
            true,
        ),
    ];
    let mut library = lock_library();
    for (format, topic, stems, draft_only) in cases {
        let mut request = DraftRequest::new(topic, format);
        request.draft_only = draft_only;
        // The full chain, named; the rest take the model profile's default (the full chain for
        // this 135M model, which `draft_only` stops after the draft).
        if !draft_only {
            request.chain = Some(draft::Chain::Full);
        }
        request.author = "Nell".into();
        // A 135M model's profile skips query expansion; asked for, it runs and is traced.
        request.expansions = Some(3);
        let mut streamed = String::new();
        let mut steps = Vec::new();
        let mut previews = Vec::new();
        let d = draft::draft(
            &mut library,
            model(),
            &request,
            &CancelToken::new(),
            &mut |e| match e {
                draft::DraftEvent::Text { text, .. } => streamed.push_str(&text),
                draft::DraftEvent::Step { name } => steps.push(name),
                draft::DraftEvent::Preview { text } => previews.push(text),
                draft::DraftEvent::Context { .. } => {}
            },
        )
        .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        println!(
            "\n=== {format:?}: {topic} ({} words, steps {steps:?})\n{}\n",
            d.words, d.text
        );
        for c in &d.citations {
            println!(
                "  [{}] {} › {} ({:.4})",
                c.n, c.title, c.heading_path, c.score
            );
        }
        for w in &d.warnings {
            println!("  warning: {w}");
        }
        println!("  timings: {:?}", d.timings);

        assert!(!streamed.is_empty(), "{format:?}: nothing was streamed");
        // The shaped text shown while drafting ends as the draft itself.
        assert_eq!(
            previews.last(),
            Some(&d.text),
            "{format:?}: {} previews",
            previews.len()
        );
        let length = format.length();
        assert!(
            d.words <= length.max_words && d.words * 10 >= length.min_words * 7,
            "{format:?}: {} words, target {:?}",
            d.words,
            length
        );
        // Citations are real chunks of the library, and the best ones are on the topic.
        assert!(
            d.citations.len() >= 3,
            "{format:?}: {} citations",
            d.citations.len()
        );
        let ids: Vec<i64> = d.citations.iter().map(|c| c.chunk_id).collect();
        let stored = library.store().chunk_hits(&ids).unwrap();
        assert_eq!(
            stored.len(),
            ids.len(),
            "{format:?}: a citation points to no chunk"
        );
        let top3_on_topic = stored
            .iter()
            .take(3)
            .filter(|h| on_topic(&h.text, stems))
            .count();
        assert!(
            top3_on_topic >= 2,
            "{format:?}: top citations off topic: {:?}",
            stored.iter().take(3).map(|h| &h.title).collect::<Vec<_>>()
        );
        // Every paragraph links to its nearest sources, which are citations of this draft.
        for p in &d.paragraphs {
            assert!(
                !p.sources.is_empty(),
                "{format:?}: paragraph without a source: {}",
                p.text
            );
            for (n, _) in &p.sources {
                assert!(*n >= 1 && *n <= d.citations.len());
            }
        }
        if format == Format::Thread {
            assert!(d.posts.len() >= 2, "{:?}", d.posts);
            for p in &d.posts {
                assert!(x_length(p) <= X_POST_LIMIT, "post over 280: {p}");
            }
        }
        if format == Format::Article {
            assert!(
                d.text.starts_with("# ") && d.text.matches("\n## ").count() == 3,
                "{}",
                d.text
            );
        }
        // The trace holds the prompts' versions, the retrieved chunks, the model and timings.
        let trace = library.store().trace(d.trace_id).unwrap().unwrap();
        assert_eq!(trace.status, twin_core::store::RunStatus::Done);
        assert_eq!(trace.output, d.text);
        assert!(trace.model.contains("SmolLM2"), "{}", trace.model);
        let detail = &trace.detail;
        let templates = trace_names(detail, "templates", "name");
        assert!(
            templates.contains(&"system") && templates.contains(&"expand"),
            "{templates:?}"
        );
        assert_eq!(
            detail["citations"].as_array().unwrap().len(),
            d.citations.len()
        );
        assert!(detail["timings"]["retrieval_ms"].as_f64().unwrap() > 0.0);
        assert!(detail["timings"]["first_token_ms"].as_f64().unwrap() > 0.0);
        assert!(detail["timings"]["tokens_per_second"].as_f64().unwrap() > 0.0);
        // The self-query runs only for a topic that names a platform or a year: for any other,
        // no filter it could find would be kept.
        let names = trace_names(detail, "steps", "name");
        assert_eq!(
            names[0] == "self_query",
            topic.contains(" X "),
            "{format:?}: {names:?}"
        );
        // Every draft is checked and the checks are stored with its trace.
        assert!(d.health.checks.len() >= 7, "{:?}", d.health);
        assert_eq!(
            detail["health"]["publishable"].as_bool(),
            Some(d.health.publishable)
        );
        println!("  health: {}", d.health.summary());
        // The small model's profile is the full chain; `draft_only` stops after the draft. A
        // text that fails its checks is written again (the same step, at most twice more).
        let writing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| *n != "self_query")
            .collect();
        // Retries take turns in the full chain: revise again, then a new draft from the plan.
        let (expected, retried): (&[&str], &[&str]) = if draft_only {
            (&["expand", "outline", "draft"], &["draft", "draft"])
        } else {
            (
                &["expand", "outline", "draft", "critique", "revise"],
                &["revise", "draft"],
            )
        };
        let in_parts = format == Format::Newsletter && writing.get(2) == Some(&"section");
        if in_parts {
            // A newsletter follows its outline's points, one part each (retried part by part).
            assert!(
                writing.starts_with(&["expand", "outline"])
                    && writing[2..].iter().all(|n| *n == "section")
                    && writing.len() >= 4,
                "{format:?}: {writing:?}"
            );
        } else if format != Format::Article {
            let extra = &writing[expected.len().min(writing.len())..];
            assert!(
                writing.starts_with(expected) && extra.len() <= 2 && retried.starts_with(extra),
                "{format:?}: {writing:?}"
            );
            assert_eq!(detail["retries"].as_u64().unwrap() as usize, extra.len());
        }
        if !draft_only {
            // The writing steps share the system prompt, so later ones reuse the KV cache.
            let reused = detail["steps"][4]["stats"]["reused_tokens"]
                .as_u64()
                .unwrap();
            assert!(reused > 100, "revise reused only {reused} tokens");
        }
    }
}

#[test]
fn grammar_constrained_steps_parse_in_20_of_20_runs() {
    // Holding the library serialises this with the drafting test, whose KV-cache assertions
    // need the shared model to itself.
    let _library = lock_library();
    let templates = Templates::load(None).unwrap();
    let platforms: Vec<String> = ["linkedin", "x", "blog", "newsletter"]
        .map(String::from)
        .to_vec();
    let topics = [
        "pricing for freelancers",
        "a LinkedIn post about code review",
        "my 2024 threads on estimates",
        "what woodworking taught me about software",
        "on-call without burnout",
        "mentoring junior developers",
        "writing documentation nobody reads",
        "saying no to clients in 2025",
        "technical debt as glue",
        "🪵 jigs, tools & small batches — why?",
    ];
    let mut parsed = 0;
    for topic in topics {
        let q: SelfQuery = twin_core::prompt::structured::step(
            model(),
            &templates,
            "self_query",
            "self_query",
            minijinja::context! { topic => topic, platforms => platforms },
            grammar::self_query_grammar(&platforms),
            grammar::max_tokens_for(1) + 48,
        )
        .unwrap_or_else(|e| panic!("self-query for {topic:?}: {e}"));
        if let Some(p) = &q.platform {
            assert!(platforms.contains(p), "{p}");
        }
        parsed += 1;
        let e: Expansion = twin_core::prompt::structured::step(
            model(),
            &templates,
            "expand",
            "expand",
            minijinja::context! { topic => topic, n => 3 },
            grammar::expansion_grammar(3),
            grammar::max_tokens_for(3),
        )
        .unwrap_or_else(|e| panic!("expansion for {topic:?}: {e}"));
        assert_eq!(e.queries.len(), 3);
        parsed += 1;
        println!("{topic:?} → {q:?} / {:?}", e.queries);
    }
    assert_eq!(parsed, 20);
}

#[test]
fn cancelling_stops_generation_within_200_ms() {
    let cancel = CancelToken::new();
    let cancelled_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let request = GenerateRequest {
        messages: vec![ChatMessage::user(
            "Write a very long story about a carpenter.",
        )],
        max_tokens: 3000,
        min_tokens: 3000,
        ..Default::default()
    };
    let mut pieces = 0;
    let generation = model()
        .generate(&request, &cancel, &mut |_| {
            pieces += 1;
            if pieces == 5 {
                let cancel = cancel.clone();
                let at = Arc::clone(&cancelled_at);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(100));
                    *at.lock().unwrap() = Some(Instant::now());
                    cancel.cancel();
                });
            }
        })
        .unwrap();
    let stopped = Instant::now();
    let at = cancelled_at.lock().unwrap().expect("cancel was requested");
    let latency = stopped.duration_since(at);
    println!(
        "cancel latency {latency:?} after {} tokens",
        generation.stats.generated_tokens
    );
    assert_eq!(generation.finish, FinishReason::Cancelled);
    assert!(latency < Duration::from_millis(200), "took {latency:?}");
    assert!(generation.stats.generated_tokens < 3000);
}

#[test]
fn cancelling_during_a_long_prompt_stops_within_200_ms_and_the_model_stays_usable() {
    // Its own model, so no other test's request is queued in front of this one.
    let model = ChatModel::load(&smollm2(), &ChatModelConfig::default()).unwrap();
    let long = "Sharp tools, small batches. Measure twice, ship once. ".repeat(120);
    let request = GenerateRequest {
        messages: vec![ChatMessage::system(long), ChatMessage::user("Summarise.")],
        max_tokens: 20,
        ..Default::default()
    };
    let cancel = CancelToken::new();
    let cancelled_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let (c, at) = (cancel.clone(), Arc::clone(&cancelled_at));
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        *at.lock().unwrap() = Some(Instant::now());
        c.cancel();
    });
    let g = model.generate(&request, &cancel, &mut |_| {}).unwrap();
    let latency = cancelled_at
        .lock()
        .unwrap()
        .expect("cancel was requested")
        .elapsed();
    println!("cancel during the prompt: {latency:?}, {:?}", g.stats);
    assert_eq!(g.finish, FinishReason::Cancelled);
    assert_eq!(
        g.stats.generated_tokens, 0,
        "the prompt should still have been running"
    );
    assert!(latency < Duration::from_millis(200), "took {latency:?}");
    // The next request starts from a clean cache and works.
    let ok = model
        .generate(
            &GenerateRequest {
                max_tokens: 5,
                ..request
            },
            &CancelToken::new(),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(ok.stats.reused_tokens, 0);
    assert!(ok.stats.generated_tokens > 0);
}

#[test]
fn shared_prefixes_reuse_the_kv_cache_and_stop_sequences_end_generation() {
    // Its own model: requests from tests running in parallel would evict the shared one's cache.
    let model = ChatModel::load(&smollm2(), &ChatModelConfig::default()).unwrap();
    let model = &model;
    let system = ChatMessage::system(format!(
        "You are a helpful assistant. {}",
        "Keep answers short. ".repeat(40)
    ));
    let ask = |q: &str, stop: Vec<String>| GenerateRequest {
        messages: vec![system.clone(), ChatMessage::user(q)],
        max_tokens: 40,
        sampling: Sampling::greedy(),
        stop,
        ..Default::default()
    };
    let first = model
        .generate(
            &ask("Name a tool.", vec![]),
            &CancelToken::new(),
            &mut |_| {},
        )
        .unwrap();
    let second = model
        .generate(
            &ask("Name a wood.", vec![]),
            &CancelToken::new(),
            &mut |_| {},
        )
        .unwrap();
    println!("first {:?}\nsecond {:?}", first.stats, second.stats);
    // Everything up to the user's question is shared.
    assert!(
        second.stats.reused_tokens > 150
            && second.stats.reused_tokens + 15 >= second.stats.prompt_tokens,
        "{:?}",
        second.stats
    );
    assert!(second.stats.prompt_ms < first.stats.prompt_ms || first.stats.reused_tokens > 0);

    // The same request twice from a clean cache, greedy: identical text. (With a reused prefix
    // the tail is evaluated in a different batch shape, which can change greedy picks.)
    let cold = |q: &str, stop: Vec<String>| {
        model.clear_cache().unwrap();
        model
            .generate(&ask(q, stop), &CancelToken::new(), &mut |_| {})
            .unwrap()
    };
    let a = cold("Name a tool.", vec![]);
    let b = cold("Name a tool.", vec![]);
    assert_eq!(a.text, b.text);
    // With a stop string: cut before it, nothing of it shown.
    let word = a
        .text
        .split_whitespace()
        .nth(1)
        .expect("two words")
        .to_string();
    let stopped = cold("Name a tool.", vec![word.clone()]);
    assert_eq!(stopped.finish, FinishReason::StopSequence);
    assert!(
        !stopped.text.contains(&word) && a.text.starts_with(stopped.text.trim_end()),
        "{:?} vs {:?}",
        stopped.text,
        a.text
    );

    // A length floor keeps the model talking.
    let floor = GenerateRequest {
        min_tokens: 30,
        ..ask("Say OK.", vec![])
    };
    let g = model
        .generate(&floor, &CancelToken::new(), &mut |_| {})
        .unwrap();
    assert!(g.stats.generated_tokens >= 30, "{:?}", g.stats);
    // So does a floor in words (what drafts use: tokens per word vary with the text).
    let floor = GenerateRequest {
        min_words: 40,
        max_tokens: 400,
        ..ask("Say OK.", vec![])
    };
    let g = model
        .generate(&floor, &CancelToken::new(), &mut |_| {})
        .unwrap();
    assert!(g.text.split_whitespace().count() >= 40, "{:?}", g.text);
}

#[test]
fn a_prefilled_prompt_is_sampled_from_at_once_and_writes_what_a_cold_run_writes() {
    // Its own model: requests from tests running in parallel would evict the shared one's cache.
    let model = ChatModel::load(&smollm2(), &ChatModelConfig::default()).unwrap();
    let ask = |q: &str, max_tokens: usize| GenerateRequest {
        messages: vec![
            ChatMessage::system("You are a helpful assistant. Keep answers short."),
            ChatMessage::user(q),
        ],
        max_tokens,
        sampling: Sampling::greedy(),
        ..Default::default()
    };
    let run = |r: &GenerateRequest| model.generate(r, &CancelToken::new(), &mut |_| {}).unwrap();
    model.clear_cache().unwrap();
    let cold = run(&ask("Name three woods.", 30));

    model.clear_cache().unwrap();
    let prefill = run(&ask("Name three woods.", 0));
    assert_eq!(prefill.stats.generated_tokens, 0);
    assert!(prefill.text.is_empty());
    let warm = run(&ask("Name three woods.", 30));
    println!("cold {:?}\nwarm {:?}", cold.stats, warm.stats);
    // Nothing evaluated again, and the logits left by the prefill are a cold run's logits.
    assert_eq!(warm.stats.reused_tokens, warm.stats.prompt_tokens);
    assert_eq!(warm.text, cold.text);

    // The logits belong to that prompt only: after a prefill, another prompt is evaluated from
    // where they differ, and after a generation the same prompt's last token is evaluated again.
    run(&ask("Name three woods.", 0));
    let other = run(&ask("Name three metals.", 30));
    assert!(other.stats.reused_tokens < other.stats.prompt_tokens);
    assert!(other.stats.generated_tokens > 0);
    let again = run(&ask("Name three metals.", 30));
    assert_eq!(again.stats.reused_tokens + 1, again.stats.prompt_tokens);
    assert_eq!(again.text, other.text);
}

#[test]
fn a_fresh_model_starts_from_the_prompt_head_an_earlier_one_kept_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("prompts");
    let load = || {
        ChatModel::load(
            &smollm2(),
            &ChatModelConfig {
                prompt_cache: Some(cache.clone()),
                context_tokens: 2048,
                ..Default::default()
            },
        )
        .unwrap()
    };
    // A head of ~400 tokens (a format's instructions, style card, exemplars) and a request.
    let head = "You are Nell's writing twin. Examples of Nell's posts:\n".to_string()
        + &"I priced the wood and my hours and forgot the sharpening, the ruined boards and the drive to the client. "
            .repeat(16);
    let ask = |topic: &str| GenerateRequest {
        messages: vec![
            ChatMessage::system(head.clone()),
            ChatMessage::user(format!("Plan a post about: {topic}")),
        ],
        max_tokens: 12,
        sampling: Sampling::greedy(),
        cache_prompt: true,
        ..Default::default()
    };
    let run = |m: &ChatModel, r: &GenerateRequest| {
        m.generate(r, &CancelToken::new(), &mut |_| {}).unwrap()
    };

    let first = run(&load(), &ask("pricing"));
    assert_eq!(first.stats.from_disk_tokens, 0);
    let kept: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(kept.len(), 2, "one state file and its token list: {kept:?}");

    // A new model (a new process, as far as the KV cache knows): the head comes from disk.
    let fresh = load();
    let second = run(&fresh, &ask("shipping small"));
    println!("first {:?}\nsecond {:?}", first.stats, second.stats);
    assert!(second.stats.from_disk_tokens > 300, "{:?}", second.stats);
    assert!(second.stats.from_disk_tokens < second.stats.prompt_tokens);
    assert_eq!(second.stats.reused_tokens, second.stats.from_disk_tokens);
    assert!(second.stats.generated_tokens > 0);
    // Started from a kept head, it keeps nothing new: one file per head, not per topic.
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    // The same prompt from disk writes what it wrote when evaluated from scratch.
    let again = run(&load(), &ask("pricing"));
    assert!(again.stats.from_disk_tokens > 300);
    assert_eq!(again.text, first.text);

    // Requests that do not ask for it neither read nor write the cache.
    let plain = run(
        &load(),
        &GenerateRequest {
            cache_prompt: false,
            ..ask("pricing")
        },
    );
    assert_eq!(plain.stats.from_disk_tokens, 0);

    // A damaged file is dropped and the prompt evaluated as usual.
    for entry in std::fs::read_dir(&cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "kv") {
            std::fs::write(&path, b"not a llama.cpp state").unwrap();
        }
    }
    let recovered = run(&load(), &ask("pricing"));
    assert_eq!(recovered.stats.from_disk_tokens, 0);
    assert_eq!(recovered.text, first.text);
}

#[test]
fn a_prepared_draft_starts_from_the_prepared_retrieval_while_it_still_holds() {
    // Its own model, so no test running in parallel evaluates anything between prepare and draft.
    let model = &ChatModel::load(
        &smollm2(),
        &ChatModelConfig {
            context_tokens: 4096,
            ..Default::default()
        },
    )
    .unwrap();
    let mut lib = lock_library();
    let mut request = DraftRequest::new("How to price a small software product", Format::Linkedin);
    request.draft_only = true;
    request.chain = Some(draft::Chain::Outlined);
    // The expansion is one of the steps preparing does ahead (the profile would skip it).
    request.expansions = Some(3);
    request.sampling.seed = 7;
    // Up to the first token of the first step the model writes, the draft (a small model's
    // post plan is the author's own sentences); the trace is stored either way.
    let first_token = |lib: &mut Library, request: &DraftRequest, prepared| {
        let cancel = CancelToken::new();
        let _ = draft::draft_with(lib, model, request, prepared, &cancel, &mut |e| {
            if matches!(&e, draft::DraftEvent::Text { step, .. } if step == "draft") {
                cancel.cancel();
            }
        });
        let trace = lib.store().traces(1).unwrap().remove(0);
        trace.detail
    };

    let prepared = draft::prepare(&mut lib, model, &request, &CancelToken::new()).unwrap();
    assert!(!prepared.citations().is_empty());
    assert!(prepared.matches(&lib, &request).unwrap());
    let detail = first_token(&mut lib, &request, Some(prepared.clone()));
    assert_eq!(detail["prepared"], true);
    let cited: Vec<i64> = detail["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chunk_id"].as_i64().unwrap())
        .collect();
    let prepared_ids: Vec<i64> = prepared.citations().iter().map(|c| c.chunk_id).collect();
    assert_eq!(cited, prepared_ids);
    let names = trace_names(&detail, "steps", "name");
    assert_eq!(names, ["expand", "outline", "draft"]);
    // The plan is three of the author's sentences from the retrieved passages, no model's.
    let plan = &detail["steps"][1];
    assert_eq!(plan["template"], "your sentences on the topic");
    let points: Vec<&str> = plan["output"].as_str().unwrap().lines().collect();
    assert_eq!(points.len(), 3, "{plan}");
    let passages: Vec<String> = lib
        .store()
        .chunk_hits(&prepared_ids)
        .unwrap()
        .into_iter()
        .map(|h| h.text)
        .collect();
    for p in &points {
        let sentence = p.strip_prefix("- ").unwrap();
        assert!(
            passages.iter().any(|t| t.contains(sentence)),
            "{sentence:?} is not from the retrieved passages {passages:?}"
        );
    }
    // The draft's prompt, plan included, was evaluated ahead: its first token needed no
    // evaluation.
    let writing = &detail["steps"][2]["stats"];
    assert_eq!(
        writing["reused_tokens"], writing["prompt_tokens"],
        "{writing}"
    );
    assert!(detail["timings"]["prepared_ahead_ms"].as_f64().unwrap() > 0.0);

    // Another topic, or a write to the library since, and the chain runs in full.
    let other = DraftRequest {
        topic: "Why small pull requests ship faster".into(),
        ..request.clone()
    };
    assert!(!prepared.matches(&lib, &other).unwrap());
    lib.store().set_setting("test.touched", "1").unwrap();
    assert!(!prepared.matches(&lib, &request).unwrap());
    let detail = first_token(&mut lib, &request, Some(prepared));
    assert_eq!(detail["prepared"], false);
    assert_eq!(detail["steps"][0]["name"], "expand");
    assert!(
        detail["steps"][2]["stats"]["reused_tokens"]
            .as_u64()
            .unwrap()
            < detail["steps"][2]["stats"]["prompt_tokens"]
                .as_u64()
                .unwrap()
    );
}

#[test]
fn the_jinja_fallback_renders_the_model_template_like_llama_cpp() {
    let messages = [
        ChatMessage::system("You write like Nell."),
        ChatMessage::user("Draft a post about jigs."),
        ChatMessage::assistant("Jigs are repeatable care."),
        ChatMessage::user("Shorter."),
    ];
    let native = model().render(&messages).unwrap();
    let jinja = model().render_with_jinja(&messages).unwrap();
    assert_eq!(native, jinja);
    assert!(native.ends_with("<|im_start|>assistant\n"), "{native}");
}

#[test]
fn damaged_or_wrong_model_files_give_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated-smollm2.gguf");
    let bytes = std::fs::read(smollm2()).unwrap();
    std::fs::write(&truncated, &bytes[..2 << 20]).unwrap();
    let err = ChatModel::load(&truncated, &ChatModelConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("truncated-smollm2.gguf") && err.contains("truncated"),
        "{err}"
    );

    let garbage = dir.path().join("not-a-model.gguf");
    std::fs::write(&garbage, vec![7u8; 4096]).unwrap();
    let err = ChatModel::load(&garbage, &ChatModelConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not-a-model.gguf"), "{err}");

    let err = ChatModel::load(&common::minilm_gguf(), &ChatModelConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("embedding model"), "{err}");

    let missing = dir.path().join("missing.gguf");
    let err = ChatModel::load(&missing, &ChatModelConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.gguf"), "{err}");
}

#[test]
fn the_style_card_is_computed_from_the_writing_and_editable() {
    let library = lock_library();
    let store = library.store();
    let card = draft::style::card(store).unwrap();
    println!("{}", card.text);
    assert!(!card.edited);
    assert!(card.stats.documents >= 30, "{:?}", card.stats);
    assert!(
        card.text.contains("sentences") && card.text.contains("Recurring phrases"),
        "{}",
        card.text
    );
    draft::style::set_card(store, Some("- Writes like a carpenter.")).unwrap();
    let edited = draft::style::card(store).unwrap();
    assert!(edited.edited && edited.text == "- Writes like a carpenter.");
    assert_eq!(edited.generated, card.generated);
    draft::style::set_card(store, None).unwrap();
    assert_eq!(draft::style::card(store).unwrap().text, card.text);
}
