//! One problem found while loading a policy set, schema or entities file, located at
//! `file:line:col` and rendered like a compiler error (snippet, underline, message, help).
//!
//! Cedar's own errors implement [`miette::Diagnostic`] with spans into the text they parsed,
//! but they do not know which file that text came from. [`Problem::from_diagnostic`] joins
//! the two, so every error the loader reports names its file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};

/// A located error in one input file.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line and column of the offending text, when the problem has a location.
    pub location: Option<(usize, usize)>,
    /// What is wrong, in one line.
    pub message: String,
    /// A hint on how to fix it, when there is one.
    pub help: Option<String>,
    snippet: Option<Snippet>,
}

#[derive(Clone)]
struct Snippet {
    source: NamedSource<Arc<str>>,
    offset: usize,
    len: usize,
}

impl fmt::Debug for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Snippet({}..+{})", self.offset, self.len)
    }
}

impl Problem {
    /// A problem with the file as a whole (unreadable, missing, empty…).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            location: None,
            message: message.into(),
            help: None,
            snippet: None,
        }
    }

    /// A problem at byte `offset` (spanning `len` bytes) of `source`, the text of `file`.
    pub fn at(
        file: &Path,
        source: &Arc<str>,
        offset: usize,
        len: usize,
        message: impl Into<String>,
    ) -> Self {
        let offset = offset.min(source.len());
        Self {
            file: file.to_path_buf(),
            location: Some(line_col(source, offset)),
            message: message.into(),
            help: None,
            snippet: Some(Snippet {
                source: NamedSource::new(file.display().to_string(), Arc::clone(source)),
                offset,
                len,
            }),
        }
    }

    /// Converts a Cedar diagnostic whose spans index into `source`, the text of `file`.
    pub fn from_diagnostic(file: &Path, source: &Arc<str>, diagnostic: &dyn Diagnostic) -> Self {
        let message = diagnostic.to_string();
        let span = diagnostic.labels().and_then(|labels| {
            let labels: Vec<LabeledSpan> = labels.collect();
            labels
                .iter()
                .find(|l| l.primary())
                .or_else(|| labels.first())
                .map(|l| (l.offset(), l.len()))
        });
        let mut problem = match span {
            Some((offset, len)) => Self::at(file, source, offset, len, message),
            None => Self::whole_file(file, message),
        };
        problem.help = diagnostic.help().map(|h| h.to_string());
        problem
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The compiler-style rendering: `file:line:col`, the snippet with the offending text
    /// underlined, the message and the help.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let mut out = String::new();
        let rendered = GraphicalReportHandler::new_themed(theme)
            .with_context_lines(1)
            .render_report(&mut out, &Rendered(self));
        if rendered.is_err() {
            // The handler only fails on a broken `fmt::Write`; fall back to the one-liner.
            out = self.to_string();
        }
        out
    }
}

/// `file:line:col: message`, the form editors and CI logs link to.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for Problem {}

/// A problem as miette renders it: the headline is the bare message, since the snippet's
/// header already says `file:line:col` (or `file: message` without a snippet).
struct Rendered<'a>(&'a Problem);

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.snippet {
            Some(_) => f.write_str(&self.0.message),
            None => fmt::Display::fmt(self.0, f),
        }
    }
}

impl std::error::Error for Rendered<'_> {}

impl Diagnostic for Rendered<'_> {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0
            .snippet
            .as_ref()
            .map(|s| &s.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.0.snippet.as_ref().map(|s| {
            Box::new(std::iter::once(LabeledSpan::new_primary_with_span(
                None,
                (s.offset, s.len),
            ))) as Box<dyn Iterator<Item = LabeledSpan>>
        })
    }
}

/// 1-based line and column (in characters) of byte `offset` in `source`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
