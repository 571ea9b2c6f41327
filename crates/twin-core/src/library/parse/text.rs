//! Plain text: paragraphs separated by blank lines; single line breaks are kept, because in
//! social posts a line break is part of the writer's rhythm.

use super::{paragraphs, ParsedDoc};

/// Parse plain text.
pub fn parse(text: &str) -> ParsedDoc {
    ParsedDoc {
        blocks: paragraphs(text),
        ..Default::default()
    }
}
