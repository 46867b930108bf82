//! Tokens kept in the store (`isola tokens`, and `/v1/tokens` for admins): the store holds
//! each secret's hash only; a node reloads them every [`REFRESH`], so a token added or revoked
//! anywhere counts on every node within that.

use std::sync::Arc;
use std::time::Duration;

use isola_server::http::{Role, StoredToken, StoredTokens};
use isola_store::{Store, StoreError, TokenRow};

/// How often a node reloads the store's tokens.
pub const REFRESH: Duration = Duration::from_secs(2);

/// Load the store's tokens into `into` (a row with an unknown role is left out).
pub async fn load(store: &dyn Store, into: &StoredTokens) -> Result<(), StoreError> {
    let rows = store.tokens().await?;
    into.replace(
        rows.iter()
            .filter_map(|r| {
                Some(StoredToken {
                    name: r.name.clone(),
                    hash: r.hash.clone(),
                    role: Role::parse(&r.role)?,
                })
            })
            .collect(),
    );
    Ok(())
}

/// Reload every [`REFRESH`] until dropped (abort the task).
pub async fn refresh(store: Arc<dyn Store>, into: Arc<StoredTokens>) {
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        tick.tick().await;
        if let Err(e) = load(&*store, &into).await {
            tracing::warn!("could not reload the store's tokens: {e}");
        }
    }
}

/// A new token `name` of `role`, made by `by`: its row (to keep) and its secret (to show once).
pub fn make(name: &str, role: Role, by: &str, now_ms: i64) -> std::io::Result<(TokenRow, String)> {
    let secret = isola_server::http::new_token_secret()?;
    let row = TokenRow {
        name: name.to_string(),
        hash: isola_server::http::token_hash(&secret),
        role: role.as_str().to_string(),
        created_ms: now_ms,
        created_by: by.to_string(),
    };
    Ok((row, secret))
}

/// A token's name: 1 to 64 letters, digits, `.`, `_` or `-` (as in `isola.tokens`).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
