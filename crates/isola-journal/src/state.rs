//! The durable `state` namespace of sessions: a tool source wrapped around another, adding the
//! server `state` (`get`, `set`, `delete`, `list`) whose calls the host carries out against the
//! store. Nothing of it lives in the sandbox: a fresh runtime per execution stays the rule.
//!
//! Versions are optimistic and automatic: a `get` remembers the version it saw, and a later
//! `set`/`delete` of that key in the same execution expects it (a key never read is written
//! blindly, unless `ifVersion` is given). A write that finds another version fails with a
//! conflict the script can catch and retry; no update is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use isola_engine::{CallMeta, ToolError, Tools};
use isola_store::{Expect, Store};
use isola_typegen::{POSITIONAL_KEY, ServerSpec, ToolSpec};
use serde_json::{Map, Value, json};

/// The size limits of state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateLimits {
    pub max_key_bytes: u64,
    pub max_value_bytes: u64,
    /// Keys and values of one session together.
    pub max_session_bytes: u64,
}

impl Default for StateLimits {
    fn default() -> Self {
        Self {
            max_key_bytes: 512,
            max_value_bytes: 256 * 1024,
            max_session_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The name of the server (and namespace) of state.
pub const STATE_SERVER: &str = "state";

/// `inner`'s tools plus `state`.
pub struct StateTools {
    inner: Arc<dyn Tools>,
    store: Arc<dyn Store>,
    limits: StateLimits,
    /// Versions read, by execution then key.
    reads: Mutex<HashMap<String, HashMap<String, i64>>>,
}

impl StateTools {
    pub fn new(inner: Arc<dyn Tools>, store: Arc<dyn Store>, limits: StateLimits) -> Self {
        Self {
            inner,
            store,
            limits,
            reads: Mutex::new(HashMap::new()),
        }
    }

    /// Forget what execution `id` read (call when it ends).
    pub fn forget(&self, id: &str) {
        if let Ok(mut r) = self.reads.lock() {
            r.remove(id);
        }
    }

    fn read(&self, exec: &str, key: &str) -> Option<i64> {
        self.reads
            .lock()
            .ok()
            .and_then(|r| r.get(exec).and_then(|m| m.get(key).copied()))
    }

    fn saw(&self, exec: &str, key: &str, version: i64) {
        if let Ok(mut r) = self.reads.lock() {
            if r.len() > 4096 && !r.contains_key(exec) {
                r.clear();
            }
            r.entry(exec.to_string())
                .or_default()
                .insert(key.to_string(), version);
        }
    }

    async fn state_call(
        &self,
        meta: Option<CallMeta<'_>>,
        tool: &str,
        args: &Map<String, Value>,
    ) -> Result<Value, String> {
        let Some((exec, session)) = meta.and_then(|m| m.session.map(|s| (m.execution, s))) else {
            return Err(
                "state needs a session: this execution has none\nhint: isola exec --session NAME"
                    .into(),
            );
        };
        let key = args.get("key").and_then(Value::as_str);
        let key = |what: &str| -> Result<&str, String> {
            let k = key.ok_or_else(|| format!("state.{what} needs a string `key`"))?;
            if k.is_empty() || k.len() as u64 > self.limits.max_key_bytes {
                return Err(format!(
                    "state keys are 1 to {} bytes; this one is {}",
                    self.limits.max_key_bytes,
                    k.len()
                ));
            }
            Ok(k)
        };
        let expect = |k: &str| -> Result<Expect, String> {
            match args.get("ifVersion") {
                Some(Value::Number(n)) => Ok(match n.as_i64() {
                    Some(0) => Expect::Absent,
                    Some(v) if v > 0 => Expect::Version(v),
                    _ => return Err("ifVersion is a version (1, 2, ...) or 0 for absent".into()),
                }),
                Some(Value::Null) | None => Ok(match self.read(exec, k) {
                    Some(0) => Expect::Absent,
                    Some(v) => Expect::Version(v),
                    None => Expect::Any,
                }),
                Some(other) => Err(format!("ifVersion must be a number, not {other}")),
            }
        };
        let err = |e: isola_store::StoreError| e.to_string();
        match tool {
            "get" => {
                let k = key("get")?;
                let item = self.store.state_get(session, k).await.map_err(err)?;
                self.saw(exec, k, item.as_ref().map_or(0, |i| i.version));
                Ok(match item {
                    Some(i) => serde_json::from_str(&i.value).unwrap_or(Value::Null),
                    None => Value::Null,
                })
            }
            "version" => {
                let k = key("version")?;
                let item = self.store.state_get(session, k).await.map_err(err)?;
                let v = item.as_ref().map_or(0, |i| i.version);
                self.saw(exec, k, v);
                Ok(json!(v))
            }
            "set" => {
                let k = key("set")?;
                let value = args.get("value").cloned().unwrap_or(Value::Null);
                let text = value.to_string();
                if text.len() as u64 > self.limits.max_value_bytes {
                    return Err(format!(
                        "the value of state key `{k}` is {} bytes of JSON, more than the limit of {}",
                        text.len(),
                        self.limits.max_value_bytes
                    ));
                }
                let expect = expect(k)?;
                let version = self
                    .store
                    .state_put(
                        session,
                        k,
                        &text,
                        expect,
                        self.limits.max_session_bytes,
                        crate::now_ms(),
                    )
                    .await
                    .map_err(err)?;
                self.saw(exec, k, version);
                Ok(json!({ "version": version }))
            }
            "delete" => {
                let k = key("delete")?;
                let expect = expect(k)?;
                let existed = self
                    .store
                    .state_delete(session, k, expect)
                    .await
                    .map_err(err)?;
                self.saw(exec, k, 0);
                Ok(json!(existed))
            }
            "list" => {
                let prefix = args.get("prefix").and_then(Value::as_str).unwrap_or("");
                let items = self.store.state_list(session, prefix).await.map_err(err)?;
                Ok(Value::Array(
                    items.into_iter().map(|i| Value::String(i.key)).collect(),
                ))
            }
            other => Err(format!("state has no function `{other}`")),
        }
    }
}

fn spec(name: &str, description: &str, schema: Value, read_only: bool) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        title: None,
        description: Some(description.into()),
        input_schema: schema,
        output_schema: None,
        annotations: Some(json!({ "readOnlyHint": read_only })),
    }
}

/// The `state` server as the API lists it. Its functions also take their arguments in order
/// (`state.get(key)`, `state.set(key, value)`), as the issue that made it asked.
pub fn state_server() -> ServerSpec {
    let key = json!({"type": "string", "description": "The key (1 to 512 bytes)."});
    let if_version = json!({"type": "integer", "minimum": 0, "description": "Write only if the key is at this version (0: absent). By default, the version this execution read, if it read the key."});
    ServerSpec {
        name: STATE_SERVER.into(),
        tools: vec![
            spec(
                "get",
                "The value of a key of this session's durable state (JSON), or null.",
                json!({"type": "object", "properties": {"key": key}, "required": ["key"], "additionalProperties": false, POSITIONAL_KEY: ["key"]}),
                true,
            ),
            spec(
                "version",
                "The version of a key (0 when absent): what a later write of this execution expects.",
                json!({"type": "object", "properties": {"key": key}, "required": ["key"], "additionalProperties": false, POSITIONAL_KEY: ["key"]}),
                true,
            ),
            spec(
                "set",
                "Store a JSON value under a key, durably. Fails with a conflict if another execution changed the key since this one read it.",
                json!({"type": "object", "properties": {"key": key, "value": {"description": "Any JSON value."}, "ifVersion": if_version}, "required": ["key", "value"], "additionalProperties": false, POSITIONAL_KEY: ["key", "value"]}),
                false,
            ),
            spec(
                "delete",
                "Delete a key; true if it existed. Conflicts as set does.",
                json!({"type": "object", "properties": {"key": key, "ifVersion": if_version}, "required": ["key"], "additionalProperties": false, POSITIONAL_KEY: ["key"]}),
                false,
            ),
            spec(
                "list",
                "The keys of this session's state that start with prefix (all keys without one), in order.",
                json!({"type": "object", "properties": {"prefix": {"type": "string"}}, "additionalProperties": false, POSITIONAL_KEY: ["prefix"]}),
                true,
            ),
        ],
    }
}

fn as_result(r: Result<Value, String>) -> Value {
    match r {
        Ok(v) => json!({"content": [{"type": "text", "text": v.to_string()}]}),
        Err(e) => json!({"isError": true, "content": [{"type": "text", "text": e}]}),
    }
}

impl Tools for StateTools {
    fn servers(&self) -> Vec<ServerSpec> {
        let mut s = self.inner.servers();
        s.push(state_server());
        s
    }

    fn call<'a>(
        &'a self,
        server: &'a str,
        tool: &'a str,
        args: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        if server == STATE_SERVER {
            return Box::pin(
                async move { Ok(as_result(self.state_call(None, tool, &args).await)) },
            );
        }
        self.inner.call(server, tool, args)
    }

    fn call_with<'a>(
        &'a self,
        meta: CallMeta<'a>,
        server: &'a str,
        tool: &'a str,
        args: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, ToolError>> {
        if server == STATE_SERVER {
            return Box::pin(async move {
                Ok(as_result(self.state_call(Some(meta), tool, &args).await))
            });
        }
        self.inner.call_with(meta, server, tool, args)
    }
}
