//! The exact-match response cache: the same request to the same model at the same provider
//! gets the stored answer while it is younger than the TTL. In memory, or on disk to outlive
//! the process (one JSON file per entry).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::provider::Route;
use crate::types::{ChatRequest, ChatResponse};

pub struct ResponseCache {
    ttl: Duration,
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<String, (u64, ChatResponse)>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    key: String,
    stored_at: u64,
    response: ChatResponse,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// FNV-1a: stable across builds, so file names stay valid.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl ResponseCache {
    pub fn in_memory(ttl: Duration) -> Self {
        Self {
            ttl,
            dir: None,
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// Entries are files in `dir` (created when first needed).
    pub fn on_disk(dir: PathBuf, ttl: Duration) -> Self {
        Self {
            ttl,
            dir: Some(dir),
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// The exact-match key: wire format, endpoint, model and the whole request.
    pub fn key(route: &Route, req: &ChatRequest) -> String {
        json!({"kind": route.provider.kind, "base": route.provider.base_url, "model": route.model, "request": req}).to_string()
    }

    fn fresh(&self, stored_at: u64) -> bool {
        now().saturating_sub(stored_at) < self.ttl.as_secs().max(1)
    }

    pub fn get(&self, key: &str) -> Option<ChatResponse> {
        if let Ok(mem) = self.memory.lock()
            && let Some((at, r)) = mem.get(key)
            && self.fresh(*at)
        {
            return Some(r.clone());
        }
        let path = self.dir.as_ref()?.join(format!("{:016x}.json", fnv(key)));
        let entry: Entry = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        (entry.key == key && self.fresh(entry.stored_at)).then_some(entry.response)
    }

    pub fn put(&self, key: &str, response: &ChatResponse) {
        let at = now();
        if let Ok(mut mem) = self.memory.lock() {
            mem.insert(key.to_string(), (at, response.clone()));
        }
        let Some(dir) = &self.dir else { return };
        let entry = Entry {
            key: key.to_string(),
            stored_at: at,
            response: response.clone(),
        };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let path = dir.join(format!("{:016x}.json", fnv(key)));
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec(&entry)?)?;
            std::fs::rename(tmp, path)
        };
        if let Err(e) = write() {
            tracing::warn!(dir = %dir.display(), "cannot write to the response cache: {e}");
        }
    }
}
