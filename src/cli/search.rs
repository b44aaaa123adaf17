//! `chatgptd search`: query the memory index from the command line.

use std::io::IsTerminal;
use std::process::ExitCode;

use chatgptd_search::{SearchQuery, SearchService, parse_since};
use clap::{Args, ValueEnum};

use chatgptd_node::config::Config;

const EXAMPLES: &str = r#"Examples:
  chatgptd search "login sso"                         # best matches first, with snippets
  chatgptd search "refund" --kind ticket,enrichment --since 7d
  chatgptd search "" --owner agent:wanderweave --limit 20   # an owner's newest memory
  chatgptd search '"reset password" -spam' --format json

Query syntax: words (any), "phrases", +required, -excluded, tag:x, a AND b, a OR b."#;

/// Arguments of `chatgptd search`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct SearchArgs {
    /// The query (empty lists the newest records that pass the filters)
    pub query: String,
    /// Only records of this owner (agent:<id>, ticket:<source>:<id>, run:<id>)
    #[arg(long)]
    pub owner: Option<String>,
    /// Only records of these kinds (comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<String>,
    /// Only records since: a duration back (7d), an RFC 3339 time, or epoch milliseconds
    #[arg(long)]
    pub since: Option<String>,
    /// Results per page
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Results to skip
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Output format
    #[arg(long, value_enum, default_value_t = SearchFormat::Text)]
    pub format: SearchFormat,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchFormat {
    /// One block per hit; matched terms in bold on a terminal (unless NO_COLOR is set).
    Text,
    /// The results as JSON, as GET /search returns them.
    Json,
}

pub async fn run(config: Config, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let since_ms = args
        .since
        .as_deref()
        .map(|s| parse_since(s, chatgptd_types::now_ms()))
        .transpose()?;
    let query = SearchQuery {
        q: args.query,
        owner: args.owner,
        knowledge: false,
        kinds: args.kind,
        since_ms,
        limit: args.limit,
        offset: args.offset,
    };
    let dir = chatgptd_search::topic_dir(&config.index_root(), &config.indexer.topic);
    let service = SearchService::new(&dir);
    let results = match tokio::task::spawn_blocking(move || service.search(&query)).await? {
        Ok(results) => results,
        Err(chatgptd_search::Error::Syntax { position, message }) => {
            eprintln!("error: query syntax error at position {position}: {message}");
            return Ok(ExitCode::from(2));
        }
        Err(err) => return Err(err.into()),
    };
    match args.format {
        SearchFormat::Json => println!("{}", serde_json::to_string_pretty(&results)?),
        SearchFormat::Text => {
            let bold = color_wanted(std::io::stdout().is_terminal());
            // A capped count is a lower bound: say "1000+" rather than a false exact number.
            let plus = if results.total_is_lower_bound {
                "+"
            } else {
                ""
            };
            println!(
                "{}{plus} match(es) in {} shard(s) under {}",
                results.total,
                results.shards,
                dir.display()
            );
            for (rank, hit) in results.hits.iter().enumerate() {
                let snippet = for_terminal(&hit.snippet, bold);
                println!(
                    "\n{}. [{}] {}  owner={}  score={:.2}  {}",
                    results.offset + rank + 1,
                    hit.kind,
                    hit.id,
                    hit.owner,
                    hit.score,
                    hit.source
                );
                println!("   {snippet}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether to draw in bold: on a terminal, unless `NO_COLOR` is set to anything non-empty
/// (<https://no-color.org>).
fn color_wanted(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A snippet as the index gives it (matches in `<b>`…`</b>`, the rest HTML-escaped) as text
/// for a terminal: matches in ANSI bold when `bold`, plain otherwise, entities decoded.
fn for_terminal(snippet: &str, bold: bool) -> String {
    let (on, off) = if bold {
        ("\x1b[1m", "\x1b[22m")
    } else {
        ("", "")
    };
    let mut out = String::with_capacity(snippet.len());
    let mut rest = snippet;
    while let Some(at) = rest.find('<') {
        out.push_str(&html_escape::decode_html_entities(&rest[..at]));
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("<b>") {
            out.push_str(on);
            rest = after;
        } else if let Some(after) = rest.strip_prefix("</b>") {
            out.push_str(off);
            rest = after;
        } else {
            // Text is escaped, so a bare '<' is not expected; keep it rather than lose text.
            out.push('<');
            rest = &rest[1..];
        }
    }
    out.push_str(&html_escape::decode_html_entities(rest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_lose_their_entities_and_mark_matches_in_bold_only_when_asked() {
        let snippet =
            "the <b>SSO</b> page says &quot;error 500&quot; &amp; &lt;b&gt; &#x27;x&#x27;";
        assert_eq!(
            for_terminal(snippet, false),
            "the SSO page says \"error 500\" & <b> 'x'"
        );
        assert_eq!(
            for_terminal(snippet, true),
            "the \x1b[1mSSO\x1b[22m page says \"error 500\" & <b> 'x'"
        );
        assert_eq!(for_terminal("a < b", false), "a < b");
    }

    #[test]
    fn no_bold_off_a_terminal() {
        assert!(!color_wanted(false));
    }
}
