//! `isola tokens`: `isola serve`'s tokens kept in the store, beside those of the config. The
//! store keeps each secret's hash only; the secret is printed once, when it is made. Every
//! node on the store takes a change within seconds (`isola_http::tokens::REFRESH`).

use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::Subcommand;
use isola_server::http::Role;
use serde_json::json;

use crate::commands::print;
use crate::error::user_input;
use crate::journal::store_for_reading;

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Make a token: its secret is printed once (keep it; the store has only its hash).
    Add {
        name: String,
        /// viewer (reads), operator (also runs scripts and decides approvals), admin (also
        /// tokens).
        #[arg(long)]
        role: String,
        #[arg(long)]
        json: bool,
    },
    /// The tokens in the store (not the config's): names, roles, who made them.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: every node refuses it within seconds.
    Revoke { name: String },
}

pub async fn tokens(
    config: Option<&std::path::Path>,
    flag: Option<&str>,
    command: TokensCommand,
) -> Result<ExitCode> {
    let store = store_for_reading(config, flag).await?;
    match command {
        TokensCommand::Add { name, role, json } => {
            if !isola_http::tokens::valid_name(&name) {
                return Err(user_input(anyhow!(
                    "`{name}` is not a token name: 1 to 64 letters, digits, `.`, `_` or `-`"
                )));
            }
            let role = Role::parse(&role).ok_or_else(|| {
                user_input(anyhow!("no role `{role}`: one of viewer, operator, admin"))
            })?;
            let by = format!("cli:{}", crate::govern::user());
            let (row, secret) =
                isola_http::tokens::make(&name, role, &by, isola_journal::now_ms())?;
            if !store.token_add(&row).await? {
                return Err(user_input(anyhow!(
                    "a token named `{name}` is kept already\nhint: isola tokens revoke {name}, then add it again"
                )));
            }
            if json {
                print(&format!(
                    "{}\n",
                    json!({"name": name, "role": role.as_str(), "token": secret})
                ))?;
            } else {
                eprintln!(
                    "isola: token `{name}` ({}) made; its secret, shown this once:",
                    role.as_str()
                );
                print(&format!("{secret}\n"))?;
            }
        }
        TokensCommand::List { json } => {
            let rows = store.tokens().await?;
            if json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|r| json!({"name": r.name, "role": r.role, "createdMs": r.created_ms, "createdBy": r.created_by}))
                    .collect();
                print(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?;
            } else {
                let text: String = rows
                    .iter()
                    .map(|r| format!("{}  {}  made by {}\n", r.name, r.role, r.created_by))
                    .collect();
                print(&crate::term::neutralize(&text))?;
            }
        }
        TokensCommand::Revoke { name } => {
            if !store.token_remove(&name).await? {
                return Err(user_input(anyhow!(
                    "no token `{name}` in the store (the config's tokens are changed in the config)"
                )));
            }
            print(&format!("revoked {name}\n"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
