#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The config file: errors (one table), expansion, defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use isola_config::{ConfigError, IsolaSettings, ServerConfig, load_config, parse_config_with_env};

mod fuzz;

const FILE: &str = "/cfg/isola.json";

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("s3cret".to_owned()),
        "HOME_DIR" => Some("/home/u".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn parse(json: &str) -> Result<isola_config::Config, ConfigError> {
    parse_config_with_env(json, Path::new(FILE), &env)
}

/// `json` is rejected with a message naming the file and containing `expect`.
fn check(json: &str, expect: &str) {
    let error = match parse(json) {
        Ok(config) => panic!("accepted {json}\n=> {config:?}"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains(expect),
        "for {json}\nexpected the message to contain:\n  {expect}\ngot:\n  {error}"
    );
    assert!(
        error.contains(FILE),
        "the message does not name the file: {error}"
    );
}

#[test]
fn errors_name_file_key_and_expectation() {
    let cases: &[(&str, &str)] = &[
        // Shape.
        ("[]", "top level: expected an object, found an array"),
        ("{}", "no `mcpServers` key"),
        (
            r#"{"mcpServers": []}"#,
            "mcpServers: expected an object mapping server names to server entries, found an array",
        ),
        (
            r#"{"mcpServers": {"fs": "npx"}}"#,
            "mcpServers.fs: expected an object (a server entry), found a string",
        ),
        (
            r#"{"mcpServers": {"": {"command": "x"}}}"#,
            "a server name may not be empty",
        ),
        // Types, with key paths.
        (
            r#"{"mcpServers": {"fs": {"command": "x", "args": "a"}}}"#,
            "mcpServers.fs.args: expected an array of strings, found a string",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "x", "args": ["a", 1]}}}"#,
            "mcpServers.fs.args[1]: expected a string, found a number",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": ["x"]}}}"#,
            "mcpServers.fs.command: expected a string, found an array",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "x", "env": []}}}"#,
            "mcpServers.fs.env: expected an object of strings, found an array",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "x", "env": {"A": 1}}}}"#,
            "mcpServers.fs.env.A: expected a string, found a number",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "x", "cwd": false}}}"#,
            "mcpServers.fs.cwd: expected a string, found a boolean",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "x", "disabled": "yes"}}}"#,
            "mcpServers.fs.disabled: expected a boolean, found a string",
        ),
        (
            r#"{"mcpServers": {"web": {"url": "http://h/mcp", "headers": {"X": null}}}}"#,
            "mcpServers.web.headers.X: expected a string, found null",
        ),
        (
            r#"{"mcpServers": {"my.server": {"command": 1}}}"#,
            r#"mcpServers["my.server"].command: expected a string, found a number"#,
        ),
        // Unknown keys list the expected ones.
        (
            r#"{"mcpServers": {"fs": {"comand": "x"}}}"#,
            "mcpServers.fs: unknown key `comand`\nhint: expected one of: command, args, env, cwd, inheritEnv, url, headers, type, disabled",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "x", "timeout": 5}}}"#,
            "mcpServers.fs: unknown key `timeout`",
        ),
        (
            r#"{"mcpServers": {"fs": {"disabled": true, "comand": "x"}}}"#,
            "unknown key `comand`",
        ),
        // Transport choice.
        (
            r#"{"mcpServers": {"fs": {}}}"#,
            "mcpServers.fs: the server has neither `command` nor `url`",
        ),
        (
            r#"{"mcpServers": {"fs": {"args": ["a"]}}}"#,
            "neither `command` nor `url`",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "x", "url": "http://h"}}}"#,
            "mcpServers.fs: the server has both `command` and `url`",
        ),
        (
            r#"{"mcpServers": {"old": {"type": "sse", "url": "http://h/sse"}}}"#,
            "mcpServers.old.type: the SSE transport is not supported\nhint: use the server's Streamable HTTP endpoint",
        ),
        (
            r#"{"mcpServers": {"ws": {"type": "websocket", "url": "ws://h"}}}"#,
            r#"mcpServers.ws.type: unknown transport type "websocket""#,
        ),
        (
            r#"{"mcpServers": {"web": {"type": "http"}}}"#,
            r#"mcpServers.web: `"type": "http"` needs `url`"#,
        ),
        (
            r#"{"mcpServers": {"fs": {"type": "stdio", "url": "http://h"}}}"#,
            "mcpServers.fs: `url` does not apply to stdio servers",
        ),
        (
            r#"{"mcpServers": {"web": {"url": "http://h", "args": []}}}"#,
            "mcpServers.web: `args` does not apply to HTTP servers",
        ),
        (
            r#"{"mcpServers": {"web": {"type": "streamable-http", "url": "http://h", "env": {}}}}"#,
            "`env` does not apply to HTTP servers",
        ),
        // Values.
        (
            r#"{"mcpServers": {"fs": {"command": " "}}}"#,
            "mcpServers.fs.command: the command is empty",
        ),
        (
            r#"{"mcpServers": {"web": {"url": "ftp://h/mcp"}}}"#,
            r#"mcpServers.web.url: "ftp://h/mcp" is not an http:// or https:// URL"#,
        ),
        (
            r#"{"mcpServers": {"web": {"url": "http://h", "headers": {"Bad Name": "v"}}}}"#,
            r#"mcpServers.web.headers["Bad Name"]: "Bad Name" is not a valid HTTP header name"#,
        ),
        (
            r#"{"mcpServers": {"web": {"url": "http://h", "headers": {"Accept": "x"}}}}"#,
            "mcpServers.web.headers.Accept: the Accept header is set by the MCP transport itself",
        ),
        (
            r#"{"mcpServers": {"web": {"url": "http://h", "headers": {"X": "a\nb"}}}}"#,
            "mcpServers.web.headers.X: the header value contains a control or non-ASCII character",
        ),
        // Variables.
        (
            r#"{"mcpServers": {"github": {"command": "x", "env": {"GITHUB_TOKEN": "${GITHUB_TOKEN}"}}}}"#,
            "mcpServers.github.env.GITHUB_TOKEN: environment variable `GITHUB_TOKEN` is not set\nhint: set GITHUB_TOKEN in the environment isola runs in, or give a default: ${GITHUB_TOKEN:-default}",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "${NOPE}/bin/x"}}}"#,
            "mcpServers.fs.command: environment variable `NOPE` is not set",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "x", "args": ["--root", "${NOPE}"]}}}"#,
            "mcpServers.fs.args[1]: environment variable `NOPE` is not set",
        ),
        (
            r#"{"mcpServers": {"web": {"url": "https://h/mcp", "headers": {"Authorization": "Bearer ${NOPE}"}}}}"#,
            "mcpServers.web.headers.Authorization: environment variable `NOPE` is not set",
        ),
        (
            r#"{"mcpServers": {"web": {"url": "${NOPE}"}}}"#,
            "mcpServers.web.url: environment variable `NOPE` is not set",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "x", "cwd": "${NOPE}"}}}"#,
            "mcpServers.fs.cwd: environment variable `NOPE` is not set",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "x", "args": ["${1X}"]}}}"#,
            "mcpServers.fs.args[0]: bad variable reference in \"${1X}\": `1X` is not a variable name",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "x", "args": ["${TOKEN"]}}}"#,
            "bad variable reference in \"${TOKEN\": `${` is not closed by `}`",
        ),
        (
            r#"{"mcpServers": {"fs": {"command": "x", "args": ["${}"]}}}"#,
            "`` is not a variable name",
        ),
        // The isola section.
        (
            r#"{"mcpServers": {}, "isola": []}"#,
            "isola: expected an object, found an array",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"workerz": 2}}"#,
            "isola: unknown key `workerz`\nhint: expected one of: limits, workers, maxWorkers, maxScriptBytes, callTimeoutMs, startupTimeoutMs, requireHardening, agent",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"limits": {"memoryMB": 3}}}"#,
            "isola.limits: unknown field `memoryMB`",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"limits": {"deadlineMs": "5"}}}"#,
            "isola.limits: invalid type: string \"5\", expected u64",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"limits": 5}}"#,
            "isola.limits: expected an object, found a number",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"callTimeoutMs": "5"}}"#,
            "isola.callTimeoutMs: expected a non-negative integer, found a string",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"startupTimeoutMs": 1.5}}"#,
            "isola.startupTimeoutMs: expected a non-negative integer, found a number",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"callTimeoutMs": -1}}"#,
            "isola.callTimeoutMs: expected a non-negative integer, found a number",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"workers": 100000}}"#,
            "isola.workers: 100000 is out of range: workers takes 0 to 256 workers",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"workers": 8, "maxWorkers": 4}}"#,
            "isola.workers: 8 workers kept warm is more than maxWorkers (4)",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"callTimeoutMs": 0}}"#,
            "isola.callTimeoutMs: 0 is out of range: callTimeoutMs takes 1 to 86400000 ms",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"limits": {"deadlineMs": 0}}}"#,
            "isola.limits.deadlineMs: 0 is out of range: deadlineMs takes 1 to 86400000 ms",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"limits": {"memoryBytes": 1}}}"#,
            "isola.limits.memoryBytes: 1 is out of range: memoryBytes takes 4194304 to 8589934592 bytes",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"limits": {"stackBytes": 0}}}"#,
            "isola.limits.stackBytes: 0 is out of range",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"limits": {"maxConcurrency": 0}}}"#,
            "isola.limits.maxConcurrency: 0 is out of range: maxConcurrency takes 1 to 256 calls",
        ),
        (
            r#"{"mcpServers": {}, "isola": {"maxScriptBytes": 1}}"#,
            "isola.maxScriptBytes: 1 is out of range",
        ),
    ];
    for (json, expect) in cases {
        check(json, expect);
    }
}

#[test]
fn invalid_json_names_line_and_column() {
    check(
        "{\n  \"mcpServers\": {\n    \"fs\": {\"command\": \"x\",}\n  }\n}",
        "/cfg/isola.json:3:27: invalid JSON: trailing comma",
    );
    check(
        "",
        "/cfg/isola.json:1:0: invalid JSON: EOF while parsing a value",
    );
    check(
        "{\"mcpServers\": {}} x",
        "/cfg/isola.json:1:20: invalid JSON: trailing characters",
    );
}

#[test]
fn full_config() {
    let json = r#"{
      "globalShortcut": "Ctrl+Space",
      "mcpServers": {
        "zeta": {
          "command": "${HOME_DIR}/bin/server",
          "args": ["--home=${HOME_DIR}", "${EMPTY:-fallback}", "${UNSET:-dflt}", "${EMPTY}", "a $b {c} $"],
          "env": {"API_KEY": "${TOKEN}", "PLAIN": "v"},
          "cwd": "work/${UNSET:-dir}"
        },
        "alpha": {"type": "http", "url": "https://example.com/${UNSET:-mcp}",
                  "headers": {"Authorization": "Bearer ${TOKEN}"}},
        "typed": {"type": "stdio", "command": "npx", "args": ["-y", "pkg with space"]},
        "off": {"disabled": true, "command": "x", "env": {"T": "${NOT_SET_AT_ALL}"}},
        "explicitly-on": {"disabled": false, "url": "http://localhost:1/mcp"}
      },
      "isola": {"workers": 3, "callTimeoutMs": 1500, "limits": {"deadlineMs": 5000}}
    }"#;
    let config = parse(json).unwrap();
    assert_eq!(config.path, PathBuf::from(FILE));
    let names: Vec<&str> = config.servers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["zeta", "alpha", "typed", "explicitly-on"],
        "file order"
    );
    assert_eq!(config.disabled, ["off"]);

    assert_eq!(
        config.server("zeta").unwrap(),
        &ServerConfig::Stdio {
            command: "/home/u/bin/server".into(),
            args: vec![
                "--home=/home/u".into(),
                "fallback".into(),
                "dflt".into(),
                String::new(),
                "a $b {c} $".into()
            ],
            env: BTreeMap::from([
                ("API_KEY".into(), "s3cret".into()),
                ("PLAIN".into(), "v".into())
            ]),
            cwd: Some(PathBuf::from("/cfg/work/dir")),
            inherit_env: false,
        }
    );
    assert_eq!(
        config.server("alpha").unwrap(),
        &ServerConfig::Http {
            url: "https://example.com/mcp".into(),
            headers: BTreeMap::from([("Authorization".into(), "Bearer s3cret".into())]),
        }
    );
    let typed = config.server("typed").unwrap();
    assert_eq!(typed.describe(), "stdio: npx -y 'pkg with space'");
    assert_eq!(
        config.server("alpha").unwrap().describe(),
        "http: https://example.com/mcp"
    );

    let settings = &config.settings;
    assert_eq!(settings.workers, Some(3));
    assert_eq!(settings.call_timeout_ms, 1500);
    assert_eq!(settings.startup_timeout_ms, 30_000, "default");
    assert_eq!(settings.limits.deadline_ms, 5000);
    assert_eq!(
        settings.limits.max_tool_calls,
        isola_protocol::Limits::default().max_tool_calls
    );

    // Secrets stay out of Debug output.
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(debug.contains("API_KEY"), "{debug}");
}

#[test]
fn defaults() {
    let config = parse(r#"{"mcpServers": {"a": {"command": "x"}}}"#).unwrap();
    assert_eq!(config.settings, IsolaSettings::default());
    assert_eq!(config.settings.call_timeout_ms, 60_000);
    assert_eq!(config.settings.startup_timeout_ms, 30_000);
    assert_eq!(config.settings.workers, None);
    assert_eq!(
        config.servers,
        [(
            "a".to_owned(),
            ServerConfig::Stdio {
                command: "x".into(),
                args: vec![],
                env: BTreeMap::new(),
                cwd: None,
                inherit_env: false,
            }
        )]
    );
    let config = parse(r#"{"mcpServers": {"a": {"command": "x", "inheritEnv": true}}}"#).unwrap();
    assert!(matches!(
        config.server("a"),
        Some(ServerConfig::Stdio {
            inherit_env: true,
            ..
        })
    ));
    check(
        r#"{"mcpServers": {"a": {"command": "x", "inheritEnv": "yes"}}}"#,
        "mcpServers.a.inheritEnv: expected a boolean, found a string",
    );
    check(
        r#"{"mcpServers": {"a": {"url": "http://x/mcp", "inheritEnv": true}}}"#,
        "`inheritEnv` does not apply to HTTP servers",
    );
    // An absolute cwd stays as it is.
    let config = parse(r#"{"mcpServers": {"a": {"command": "x", "cwd": "/srv"}}}"#).unwrap();
    let Some(ServerConfig::Stdio { cwd, .. }) = config.server("a") else {
        panic!()
    };
    assert_eq!(cwd.as_deref(), Some(Path::new("/srv")));
}

#[test]
fn settings_serde_rejects_unknown_fields() {
    let error = serde_json::from_str::<IsolaSettings>(r#"{"callTimeoutMs": 5, "bogus": 1}"#)
        .unwrap_err()
        .to_string();
    assert!(error.contains("bogus"), "{error}");
    let settings: IsolaSettings = serde_json::from_str(r#"{"callTimeoutMs": 5}"#).unwrap();
    assert_eq!(settings.call_timeout_ms, 5);
    assert_eq!(settings.startup_timeout_ms, 30_000);
}

#[test]
fn load_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("isola.json");
    let error = load_config(&missing).unwrap_err();
    assert!(matches!(error, ConfigError::NotFound { .. }));
    let message = error.to_string();
    for part in [
        missing.display().to_string().as_str(),
        "hint: pass `--config PATH`",
        "create isola.json",
        "\"mcpServers\"",
    ] {
        assert!(message.contains(part), "missing {part:?} in:\n{message}");
    }

    std::fs::write(
        &missing,
        r#"{"mcpServers": {"a": {"command": "x", "cwd": "sub"}}}"#,
    )
    .unwrap();
    let config = load_config(&missing).unwrap();
    assert_eq!(config.path, missing);
    let Some(ServerConfig::Stdio { cwd, .. }) = config.server("a") else {
        panic!()
    };
    assert_eq!(cwd.as_deref(), Some(dir.path().join("sub").as_path()));

    std::fs::write(&missing, "{").unwrap();
    let message = load_config(&missing).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}:1:1: invalid JSON", missing.display())),
        "{message}"
    );
}

#[test]
fn required_hardening_names_known_layers() {
    let config =
        parse(r#"{"mcpServers": {}, "isola": {"requireHardening": ["seccomp"]}}"#).unwrap();
    assert_eq!(config.settings.require_hardening, ["seccomp"]);
    let config = parse(
        r#"{"mcpServers": {}, "isola": {"requireHardening": ["net_ns", "mount_ns", "pid_ns"]}}"#,
    )
    .unwrap();
    assert_eq!(
        config.settings.require_hardening,
        ["net_ns", "mount_ns", "pid_ns"]
    );
    check(
        r#"{"mcpServers": {}, "isola": {"requireHardening": ["selinux"]}}"#,
        "isola.requireHardening[0]: no hardening layer `selinux`\nhint: the layers are user_ns, mount_ns, net_ns, ipc_ns, uts_ns, pid_ns, no_new_privs, rlimits, seccomp",
    );
    check(
        r#"{"mcpServers": {}, "isola": {"requireHardening": "seccomp"}}"#,
        "isola.requireHardening: expected an array of layer names, found a string",
    );
}

/// Every variable in the registry is in ARCHITECTURE.md's table, with what it does.
#[test]
fn every_environment_variable_is_documented() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ARCHITECTURE.md"),
    )
    .unwrap();
    for v in isola_config::env::VARS {
        let row = format!("| `{}` | {} | {} |", v.name, v.read_by, v.what);
        assert!(
            doc.contains(&row),
            "ARCHITECTURE.md (Configuration) lacks the row:\n{row}"
        );
    }
}

#[test]
fn a_server_defined_twice_is_an_error_and_a_bom_is_fine() {
    check(
        r#"{"mcpServers": {"fs": {"command": "a"},
                           "fs": {"command": "b"}}}"#,
        ":2:31: invalid JSON: the key `fs` appears twice in one object",
    );
    let config = parse("\u{feff}{\"mcpServers\": {\"a\": {\"command\": \"x\"}}}").unwrap();
    assert_eq!(config.servers.len(), 1);
}

/// `isola.effects` overrides tools' annotations; `isola.policy` names files relative to the
/// config; both refuse what they cannot mean, by key.
#[test]
fn effects_policy_and_approvals() {
    let config = parse(
        r#"{"mcpServers": {}, "isola": {
            "effects": {"fs": {"write_file": "destructive", "*": {"effect": "read", "idempotent": true}}},
            "policy": {"files": ["policy/main.rego"], "data": {"dirs": ["/srv"]}, "timeLimitMs": 20},
            "approvals": {"timeoutMs": 60000}
        }}"#,
    )
    .unwrap();
    let fs = &config.settings.effects["fs"];
    assert_eq!(fs["write_file"].effect.as_deref(), Some("destructive"));
    assert_eq!(fs["*"].idempotent, Some(true));
    let mut hints = serde_json::Map::new();
    hints.insert("readOnlyHint".into(), serde_json::Value::Bool(true));
    fs["write_file"].apply(&mut hints);
    assert_eq!(
        hints["readOnlyHint"], false,
        "the config wins over the server"
    );
    assert_eq!(hints["destructiveHint"], true);
    let policy = &config.settings.policy;
    assert_eq!(
        policy.files,
        [Path::new(FILE).parent().unwrap().join("policy/main.rego")]
    );
    assert_eq!(policy.time_limit_ms, 20);
    assert_eq!(config.settings.approvals.timeout_ms, 60_000);

    check(
        r#"{"mcpServers": {}, "isola": {"effects": {"fs": {"rm": "delete"}}}}"#,
        "isola.effects.fs.rm: `delete` is not an effect class\nhint: use one of read, write, destructive",
    );
    check(
        r#"{"mcpServers": {}, "isola": {"effects": {"fs": {"rm": {"effect": "read", "safe": true}}}}}"#,
        "isola.effects.fs.rm: unknown key `safe`",
    );
    check(
        r#"{"mcpServers": {}, "isola": {"effects": {"fs": {"rm": {"idempotent": "yes"}}}}}"#,
        "isola.effects.fs.rm.idempotent: expected a boolean, found a string",
    );
    check(
        r#"{"mcpServers": {}, "isola": {"effects": {"fs": {"rm": 3}}}}"#,
        "isola.effects.fs.rm: expected an effect class",
    );
    check(
        r#"{"mcpServers": {}, "isola": {"policy": {"files": "a.rego"}}}"#,
        "isola.policy.files: expected an array of file paths, found a string",
    );
    check(
        r#"{"mcpServers": {}, "isola": {"policy": {"timeLimitMs": 0}}}"#,
        "isola.policy.timeLimitMs: 0 is out of range",
    );
    check(
        r#"{"mcpServers": {}, "isola": {"approvals": {"timeout": 5}}}"#,
        "isola.approvals: unknown key `timeout`",
    );
}

#[test]
fn serve_tokens_have_names_secrets_and_roles() {
    let config = parse(
        r#"{"mcpServers": {}, "isola": {"tokens": {
            "ci-bot": {"token": "${TOKEN}-0123456789abcdef", "role": "operator"},
            "watcher": {"token": "fedcba9876543210", "role": "viewer"}
        }}}"#,
    )
    .unwrap();
    let tokens = &config.settings.tokens;
    assert_eq!(tokens["ci-bot"].token, "s3cret-0123456789abcdef");
    assert_eq!(tokens["ci-bot"].role, "operator");
    assert_eq!(tokens["watcher"].role, "viewer");
    let shown = format!(
        "{:?} {}",
        tokens["watcher"],
        serde_json::to_string(&config.settings).unwrap()
    );
    assert!(
        !shown.contains("fedcba9876543210"),
        "a secret is printed: {shown}"
    );

    check(
        r#"{"mcpServers": {}, "isola": {"tokens": {"a": {"token": "short", "role": "viewer"}}}}"#,
        "isola.tokens.a.token: the token is 5 bytes; at least 16 are needed",
    );
    check(
        r#"{"mcpServers": {}, "isola": {"tokens": {"a": {"token": "0123456789abcdef", "role": "root"}}}}"#,
        "isola.tokens.a.role: no role `root`: one of viewer, operator, admin",
    );
    check(
        r#"{"mcpServers": {}, "isola": {"tokens": {"a": {"token": "0123456789abcdef", "role": "viewer"}, "b": {"token": "0123456789abcdef", "role": "admin"}}}}"#,
        "isola.tokens.b.token: the same secret as token `a`",
    );
    check(
        r#"{"mcpServers": {}, "isola": {"tokens": {"a b": {"token": "0123456789abcdef", "role": "viewer"}}}}"#,
        "a token's name is 1 to 64 letters",
    );
    check(
        r#"{"mcpServers": {}, "isola": {"tokens": {"a": {"role": "viewer"}}}}"#,
        "isola.tokens.a: `token` is missing",
    );
    check(
        r#"{"mcpServers": {}, "isola": {"tokens": {"a": {"token": "0123456789abcdef", "role": "viewer", "x": 1}}}}"#,
        "isola.tokens.a: unknown key `x`",
    );
}
