//! A draft as a Markdown file with front matter, as static-site generators and editors read it.

use super::Format;

/// `text` drafted on `topic` in `format` as Markdown with YAML front matter (title, platform,
/// `draft: true`, the day it was written, and that Twin wrote it). `now_secs`: Unix time.
pub fn markdown(topic: &str, format: Format, text: &str, now_secs: i64) -> String {
    // A JSON string is a valid YAML scalar, quotes and all, whatever the topic holds.
    let title = serde_json::to_string(topic).unwrap_or_else(|_| "\"\"".into());
    format!(
        "---\ntitle: {title}\nplatform: {}\ndraft: true\ncreated_days_since_epoch: {}\ngenerated_by: Twin\n---\n\n{}\n",
        format.platform(),
        now_secs / 86_400,
        text.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_quotes_the_topic_and_names_the_platform() {
        let md = markdown(
            "Pricing: \"small\" tools",
            Format::Thread,
            "1/ Hi\n\n",
            86_400 * 3,
        );
        assert_eq!(
            md,
            "---\ntitle: \"Pricing: \\\"small\\\" tools\"\nplatform: x\ndraft: true\ncreated_days_since_epoch: 3\ngenerated_by: Twin\n---\n\n1/ Hi\n"
        );
    }
}
