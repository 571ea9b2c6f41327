use super::*;
use crate::store::NewDocument;
use std::path::Path;

fn settings() -> AutotrainSettings {
    AutotrainSettings::default()
}

fn cycle_started(at: i64) -> CycleRecord {
    CycleRecord {
        id: 1,
        status: RunStatus::Done,
        trigger: "threshold".into(),
        phase: "decided".into(),
        started_at: at,
        finished_at: Some(at + 60),
        change: Change::default(),
        params: None,
        dataset_id: None,
        incumbent_id: None,
        incumbent_name: "base".into(),
        candidate_id: None,
        candidate_name: None,
        eval_run_id: None,
        scores: CycleScores::default(),
        promoted: false,
        reason: None,
        error: None,
    }
}

fn change(words: usize, platforms: &[&str]) -> Change {
    Change {
        documents: 1,
        words,
        new_platforms: platforms.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn a_cycle_is_due_on_enough_words_a_new_platform_or_the_schedule() {
    let s = settings();
    let day = 86_400;
    let last = cycle_started(0);
    assert_eq!(due(&s, &change(0, &[]), Some(&last), 30 * day), None);
    assert_eq!(
        due(&s, &change(2_000, &[]), Some(&last), day),
        Some(Trigger::Threshold)
    );
    assert_eq!(due(&s, &change(1_999, &[]), Some(&last), day), None);
    assert_eq!(
        due(&s, &change(50, &["substack"]), Some(&last), day),
        Some(Trigger::Platform)
    );
    assert_eq!(
        due(&s, &change(50, &[]), Some(&last), 7 * day),
        Some(Trigger::Schedule)
    );
    // The first cycle waits for the threshold; the schedule needs an earlier cycle.
    assert_eq!(due(&s, &change(500, &[]), None, 30 * day), None);
    let off = AutotrainSettings {
        enabled: false,
        ..s
    };
    assert_eq!(due(&off, &change(90_000, &[]), Some(&last), 30 * day), None);
}

fn side(name: &str, nll: f64, style: f64, you: f64) -> SideScores {
    SideScores {
        name: name.into(),
        nll: Some(nll),
        style: Some(style),
        sounds_like_you: Some(you),
        drafts: 4,
    }
}

#[test]
fn the_gate_promotes_only_a_candidate_better_by_the_margin_and_no_worse_in_style() {
    let inc = side("voice-1", 3.0, 0.80, 0.70);
    let better = judge(&side("voice-2", 2.85, 0.78, 0.72), &inc, 0.02);
    assert!(better.promote, "{better:?}");
    assert!(better.reason.contains("-5.0%") && better.reason.contains("voice-1"));
    let marginal = judge(&side("voice-2", 2.97, 0.70, 0.80), &inc, 0.02);
    assert!(!marginal.promote);
    assert!(marginal.reason.contains("-1.0%") && marginal.reason.contains("-2.0% or better"));
    let off_style = judge(&side("voice-2", 2.5, 0.90, 0.70), &inc, 0.02);
    assert!(
        !off_style.promote && off_style.reason.contains("style"),
        "{off_style:?}"
    );
    let less_you = judge(&side("voice-2", 2.5, 0.80, 0.60), &inc, 0.02);
    assert!(!less_you.promote && less_you.reason.contains("sound less like you"));
    let broken = judge(&side("voice-2", f64::NAN, 0.5, 0.9), &inc, 0.02);
    assert!(!broken.promote);
    // Scores one side lacks (no drafts) are not compared; the loss always is.
    let no_drafts = SideScores {
        style: None,
        sounds_like_you: None,
        ..side("voice-2", 2.8, 0.0, 0.0)
    };
    assert!(judge(&no_drafts, &inc, 0.02).promote);
    // One draft a side is recorded, not compared: its style swings too much to decide.
    let one = |s: SideScores| SideScores { drafts: 1, ..s };
    let verdict = judge(
        &one(side("voice-2", 2.8, 2.3, 0.2)),
        &one(side("voice-1", 3.0, 1.5, 0.3)),
        0.02,
    );
    assert!(
        verdict.promote && verdict.reason.contains("not compared"),
        "{verdict:?}"
    );
}

fn put(store: &mut Store, source: i64, path: &str, platform: &str, body: &str) {
    let doc = NewDocument::for_test(source, path, Some(platform), body);
    store.put_document(&doc, &[]).unwrap();
}

#[test]
fn new_and_edited_writing_counts_until_a_cycle_marks_it_seen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("twin.db")).unwrap();
    let source = store.add_source(Path::new("/w"), true).unwrap().id;
    put(
        &mut store,
        source,
        "/w/a.md",
        "linkedin",
        "one two three four",
    );
    put(&mut store, source, "/w/b.md", "linkedin", "five six");
    let c = pending_change(&store).unwrap();
    assert_eq!((c.documents, c.words), (2, 6));
    assert!(c.new_platforms.is_empty(), "nothing is new before a cycle");
    store.mark_writing_seen().unwrap();
    assert_eq!(pending_change(&store).unwrap(), Change::default());
    put(&mut store, source, "/w/b.md", "linkedin", "five six seven");
    put(&mut store, source, "/w/c.md", "x", "a thread");
    let c = pending_change(&store).unwrap();
    assert_eq!((c.documents, c.words), (2, 5), "{c:?}");
    assert_eq!(c.new_platforms, vec!["x".to_string()]);
    let s = AutotrainSettings {
        min_words: 3,
        ..settings()
    };
    s.save(&store).unwrap();
    assert_eq!(AutotrainSettings::load(&store).unwrap(), s);
    let st = status(&store, 0).unwrap();
    assert_eq!(st.due, Some(Trigger::Threshold));
    assert!(st.unfinished.is_none() && st.last.is_none());
}
