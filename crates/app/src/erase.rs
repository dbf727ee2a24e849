//! `loupe erase --user U`: asks a running server to erase every recorded content of one user
//! (`DELETE /api/v1/projects/{project}/users/{user}`) and prints the summary; `loupe erase
//! --list` prints the project's audit log of erasures.

use anyhow::{Context, bail};
use api::erasure::{ErasureList, ErasureRecord};
use clap::Args;

use crate::ClientArgs;

pub(crate) const AFTER_HELP: &str = "Examples:
  loupe erase --user alice                         erase user `alice` of project `default`
  loupe erase --user 'cust-1042' --project billing --api-key $LOUPE_API_KEY
  loupe erase --list --project billing              the audit log of erasures

The user id is the one your application sent (`user.id`, `enduser.id`, the gateway's
`x-loupe-user`, ...); when redaction hashed it, the hashed form is erased too. The user's data
keys are destroyed, so their sealed content is unreadable in the store and in every backup of
it; their traces keep their structure (timing, models, tokens, cost). See docs/erasure.md.";

#[derive(Debug, Args)]
pub(crate) struct EraseArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The user id to erase, as the application sent it.
    #[arg(long, required_unless_present = "list")]
    user: Option<String>,
    /// The project the user's records belong to (the API key must be one of its keys).
    #[arg(long, default_value = "default")]
    project: String,
    /// Print the project's audit log of erasures instead of erasing.
    #[arg(long, conflicts_with = "user")]
    list: bool,
}

pub(crate) async fn run(args: EraseArgs) -> anyhow::Result<()> {
    let base = args.client.url.trim_end_matches('/');
    let mut url = reqwest::Url::parse(base)
        .with_context(|| format!("--url {base} is not a URL, e.g. http://127.0.0.1:4318"))?;
    {
        let Ok(mut segments) = url.path_segments_mut() else {
            bail!("--url {base} cannot take a path; give the server's http:// address");
        };
        segments.extend(["api", "v1", "projects", args.project.as_str()]);
        match &args.user {
            Some(user) if !args.list => {
                segments.extend(["users", user.as_str()]);
            }
            _ => {
                segments.push("erasures");
            }
        }
    }
    let http = reqwest::Client::new();
    let request = if args.list { http.get(url) } else { http.delete(url) };
    let request = request.header(api::erasure::ORIGIN_HEADER, "cli");
    let text =
        crate::client::send(&args.client.url, args.client.api_key.as_deref(), request).await?;
    if args.list {
        let list: ErasureList = serde_json::from_str(&text).context("reading the audit log")?;
        if list.erasures.is_empty() {
            println!("no erasures in project {}", args.project);
        }
        for erasure in &list.erasures {
            println!("{}", render(erasure));
        }
    } else {
        let erasure: ErasureRecord = serde_json::from_str(&text).context("reading the summary")?;
        println!("erased: {}", render(&erasure));
    }
    Ok(())
}

fn render(erasure: &ErasureRecord) -> String {
    format!(
        "{} project={} keys destroyed={} traces purged={} spans purged={} by={} keys={}",
        erasure.time,
        erasure.project,
        erasure.keys_destroyed,
        erasure.traces_purged,
        erasure.spans_purged,
        erasure.who,
        if erasure.key_ids.is_empty() { "-".to_owned() } else { erasure.key_ids.join(",") },
    )
}
