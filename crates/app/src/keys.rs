//! `loupe keys create|list|revoke`: API keys stored hashed in the data dir's store. A running
//! server sees new keys at once and stops accepting revoked ones within seconds.

use anyhow::{Context, bail};
use model::ProjectId;

use crate::KeysCommand;

pub(crate) async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { data, project, name } => {
            let project = ProjectId::new(&project).map_err(anyhow::Error::msg)?;
            let config = crate::load_config(&data)?;
            let store = crate::serve::open_store(&config).await?;
            let (key, record) =
                auth::new_key(project, &name, now_ns()).context("creating a key")?;
            store.put_api_key(&record).await.context("saving the key")?;
            eprintln!(
                "created key {} for project {} (shown once; only its SHA-256 is stored):",
                record.id, record.project
            );
            println!("{key}");
            if !config.auth.require_key {
                eprintln!(
                    "note: requests without a key still go to the `default` project; set \
                     [auth] require_key = true in loupe.toml to refuse them"
                );
            }
        }
        KeysCommand::List { data, project } => {
            let project = ProjectId::new(&project).map_err(anyhow::Error::msg)?;
            let config = crate::load_config(&data)?;
            let store = crate::serve::open_store(&config).await?;
            let keys = store.list_api_keys(&project).await.context("listing keys")?;
            if keys.is_empty() {
                println!("(no keys for project {project})");
            }
            for key in keys {
                println!(
                    "{}  {}…  {}  created {}",
                    key.id,
                    key.prefix,
                    if key.name.is_empty() { "-" } else { &key.name },
                    api::time::format_rfc3339(key.created_ns).get(..19).unwrap_or("")
                );
            }
        }
        KeysCommand::Revoke { data, project, id } => {
            let project = ProjectId::new(&project).map_err(anyhow::Error::msg)?;
            let config = crate::load_config(&data)?;
            let store = crate::serve::open_store(&config).await?;
            if !store.delete_api_key(&project, &id).await.context("revoking the key")? {
                bail!("project {project} has no key {id:?} (see `loupe keys list`)");
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
