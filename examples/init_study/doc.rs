//! Writing the study's numbers into `initialization.md`, between markers,
//! so the hand-written analysis around them survives every rerun.

use std::path::Path;

/// A generated block of the document: `<!-- init_study:NAME:begin -->` …
/// `<!-- init_study:NAME:end -->`.
pub struct Section {
    pub name: &'static str,
    pub markdown: String,
}

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- init_study:{name}:begin -->"),
        format!("<!-- init_study:{name}:end -->"),
    )
}

/// Replaces each section's block in `text`, appending the blocks that have
/// no markers yet.
pub fn fill(text: &str, sections: &[Section]) -> String {
    let mut out = text.to_string();
    for s in sections {
        let (begin, end) = markers(s.name);
        let block = format!("{begin}\n{}\n{end}", s.markdown.trim_end());
        match (out.find(&begin), out.find(&end)) {
            (Some(b), Some(e)) if b < e => out.replace_range(b..e + end.len(), &block),
            _ => {
                if !out.ends_with("\n\n") {
                    out.push('\n');
                }
                out.push_str(&block);
                out.push('\n');
            }
        }
    }
    out
}

/// Rewrites (or creates) the document at `path`.
pub fn write(path: &Path, sections: &[Section]) -> Result<(), String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# Initialization study (generated tables)\n\n".to_string()
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    std::fs::write(path, fill(&text, sections)).map_err(|e| format!("{}: {e}", path.display()))
}

/// A Markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!(
        "|{}\n",
        header.iter().map(|_| " --- |").collect::<String>()
    ));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}
