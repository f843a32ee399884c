//! The oracle matrix (`check --matrix`): per family, one row per cell and one column per oracle
//! that family uses, each cell showing the worst verdict of that oracle's instances. A cell name
//! longer than [`NAME_WIDTH`] (crash exploration names a state by its steps) wraps at spaces
//! onto the lines below its row, so the verdict columns stay on screen.

use std::fmt::Write as _;

use crate::cell::CellResult;

/// The widest the first column grows; longer cell names wrap.
pub const NAME_WIDTH: usize = 60;

/// `text` cut at spaces into lines of at most `width` characters (a longer word is cut).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        let used = current.chars().count();
        if used > 0 && used + 1 + word.len() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        while word.len() > width {
            let rest = word.split_off(width);
            lines.push(word.into_iter().collect());
            word = rest;
        }
        current.extend(word);
    }
    lines.push(current);
    lines
}

/// Renders `results` as one table per family.
pub fn render(results: &[CellResult]) -> String {
    let mut families: Vec<&str> = Vec::new();
    for r in results {
        if !families.contains(&r.family.as_str()) {
            families.push(&r.family);
        }
    }
    let mut out = String::new();
    for family in families {
        let rows: Vec<&CellResult> = results.iter().filter(|r| r.family == family).collect();
        let mut oracles: Vec<&str> = Vec::new();
        for verdict in rows.iter().flat_map(|r| &r.verdicts) {
            if !oracles.contains(&verdict.oracle.as_str()) {
                oracles.push(&verdict.oracle);
            }
        }
        let mut header: Vec<String> = vec![family.to_owned()];
        header.extend(oracles.iter().map(|o| (*o).to_owned()));
        let table: Vec<(Vec<String>, Vec<String>)> = rows
            .iter()
            .map(|r| {
                let mut name = wrap(&r.name, NAME_WIDTH);
                let continued = name.split_off(1);
                let mut row = name;
                row.extend(oracles.iter().map(|o| match (&r.observation, r.status_of(o)) {
                    (Err(_), _) => "ERROR".to_owned(),
                    (_, Some(status)) => status.to_owned(),
                    (_, None) => "-".to_owned(),
                }));
                (row, continued)
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                let header = header[c].chars().count().min(if c == 0 { NAME_WIDTH } else { usize::MAX });
                table.iter().map(|(r, _)| r[c].chars().count()).chain([header]).max().unwrap_or(0)
            })
            .collect();
        let mut line = |cells: &[String]| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            let _ = writeln!(out, "{}", padded.join("  ").trim_end());
        };
        line(&header);
        line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
        for (row, continued) in &table {
            line(row);
            for more in continued {
                line(&[format!("  {more}")]);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn unobserved(name: &str) -> CellResult {
        CellResult {
            name: name.to_owned(),
            family: "crash".to_owned(),
            observation: Err("not run".to_owned()),
            verdicts: Vec::new(),
            expected_saves: None,
            wall: Duration::ZERO,
            command: String::new(),
        }
    }

    #[test]
    fn long_names_wrap_below_their_row() {
        let long = "power loss after the program ended (last change: step 6 `write(<state.json>, \"\"..., 8) = 8`); \
                    not on disk: step 2 `openat(AT_FDCWD, \"state.json\", O_WRONLY|O_CREAT|O_TRUNC) = 3`";
        let table = render(&[unobserved("short"), unobserved(long)]);
        assert!(table.lines().all(|l| l.chars().count() <= NAME_WIDTH + 2), "{table}");
        let text: String = table.lines().skip(3).map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
        assert_eq!(text, long, "the wrapped name reads as the whole name:\n{table}");
    }

    #[test]
    fn a_word_longer_than_the_column_is_cut() {
        let word = "x".repeat(NAME_WIDTH * 2 + 5);
        assert_eq!(wrap(&word, NAME_WIDTH).iter().map(String::len).collect::<Vec<_>>(), [60, 60, 5]);
    }
}
