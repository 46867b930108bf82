//! The benchmark's tasks. Each writes its data files, and gives the prompt, the scripted model
//! answers for code mode (one script, then the answer) and for tools mode (one tool call per
//! round trip, each using what the previous ones returned, then the same answer), and a check
//! of the end state.
//!
//! The data is generated (a fixed-seed LCG), so every run sees the same files, and the tools
//! mode's arguments, computed here, are exactly what a model reading the results would send.

use std::fmt::Write as _;
use std::path::Path;

use isola_llm_mock::Step;
use serde_json::{Map, Value, json};

/// Checks the files (or graph) a run left behind; `Err` says what is wrong.
pub type Check = Box<dyn Fn(&Path) -> Result<(), String> + Send + Sync>;

pub struct Prepared {
    pub prompt: String,
    pub code: Vec<Step>,
    pub tools: Vec<Step>,
    pub check: Check,
}

pub struct Task {
    pub name: &'static str,
    /// Tool calls the task needs in tools mode.
    pub calls: usize,
    pub prepare: fn(&Path) -> std::io::Result<Prepared>,
}

pub const TASKS: &[Task] = &[
    Task {
        name: "todo-report",
        calls: 3,
        prepare: todo_report,
    },
    Task {
        name: "sales-summary",
        calls: 3,
        prepare: sales_summary,
    },
    Task {
        name: "team-graph",
        calls: 4,
        prepare: team_graph,
    },
    Task {
        name: "largest-log",
        calls: 3,
        prepare: largest_log,
    },
    Task {
        name: "ini-migration",
        calls: 5,
        prepare: ini_migration,
    },
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "the",
    "release",
    "cache",
    "latency",
    "review",
    "customer",
    "migration",
    "schema",
    "deploy",
    "budget",
    "index",
    "meeting",
    "design",
    "rollout",
    "metrics",
    "query",
    "owner",
    "backlog",
    "incident",
    "draft",
    "support",
    "tests",
    "quarter",
    "sprint",
    "config",
    "service",
    "alerts",
    "pipeline",
    "vendor",
    "contract",
    "storage",
    "report",
];

fn sentence(rng: &mut Rng, words: u64) -> String {
    let mut s: Vec<&str> = (0..words).map(|_| rng.pick(WORDS)).collect();
    let first = s[0].to_string();
    let mut cap = first[..1].to_uppercase();
    cap.push_str(&first[1..]);
    s[0] = "";
    format!("{cap}{}.", s.join(" "))
}

fn code_steps(code: String, answer: &str) -> Vec<Step> {
    vec![
        Step::call("execute", json!({"code": code})),
        Step::text(answer),
    ]
}

fn call(name: &str, args: Value) -> Step {
    Step::call(name, args)
}

// ---------------------------------------------------------------------------------------------

fn todo_report(data: &Path) -> std::io::Result<Prepared> {
    let d = data.display().to_string();
    let mut rng = Rng(7);
    std::fs::create_dir_all(data.join("notes"))?;
    let mut expected = Vec::new();
    let mut paths = Vec::new();
    for n in 1..=12 {
        let name = format!("note-{n:02}.md");
        let mut text = format!("# Notes {n}\n\n");
        for _ in 0..60 {
            let line = if rng.below(10) == 0 {
                format!(
                    "- TODO: {} the {} {}",
                    rng.pick(&["fix", "check", "update", "remove", "write"]),
                    rng.pick(WORDS),
                    rng.pick(WORDS)
                )
            } else {
                let words = 8 + rng.below(8);
                sentence(&mut rng, words)
            };
            if line.contains("TODO:") {
                expected.push(format!("{name}: {}", line.trim()));
            }
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(data.join("notes").join(&name), text)?;
        paths.push(format!("{d}/notes/{name}"));
    }
    let report = format!("{}\n", expected.join("\n"));
    let answer = format!(
        "I found {} TODO items in the 12 notes and wrote them to {d}/todo.txt. The first ones: {}.",
        expected.len(),
        expected
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    let code = r#"const dir = "@DATA@/notes";
const found = await fs.searchFiles({ path: dir, pattern: "*.md" });
const paths = found.content.split("\n").filter((p) => p.endsWith(".md")).sort();
const files = await Promise.all(paths.map((path) => fs.readTextFile({ path })));
const todos: string[] = [];
files.forEach((file, i) => {
  const name = paths[i].split("/").pop();
  for (const line of file.content.split("\n")) {
    if (line.includes("TODO:")) todos.push(`${name}: ${line.trim()}`);
  }
});
await fs.writeFile({ path: "@DATA@/todo.txt", content: todos.join("\n") + "\n" });
return { count: todos.length, first: todos.slice(0, 3) };"#
        .replace("@DATA@", &d);
    let tools = vec![
        call(
            "fs__search_files",
            json!({"path": format!("{d}/notes"), "pattern": "*.md"}),
        ),
        call("fs__read_multiple_files", json!({"paths": paths})),
        call(
            "fs__write_file",
            json!({"path": format!("{d}/todo.txt"), "content": report}),
        ),
        Step::text(&answer),
    ];
    let check = move |data: &Path| {
        let got =
            std::fs::read_to_string(data.join("todo.txt")).map_err(|e| format!("todo.txt: {e}"))?;
        if got == report {
            Ok(())
        } else {
            Err(format!("todo.txt differs:\n{got}"))
        }
    };
    Ok(Prepared {
        prompt: format!(
            "Collect every TODO line from the markdown notes in {d}/notes and write them, one per line prefixed by the note's file name, to {d}/todo.txt. How many are there?"
        ),
        code: code_steps(code, &answer),
        tools,
        check: Box::new(check),
    })
}

// ---------------------------------------------------------------------------------------------

fn sales_summary(data: &Path) -> std::io::Result<Prepared> {
    let d = data.display().to_string();
    let mut rng = Rng(11);
    let regions = ["north", "south", "east", "west", "central"];
    let products = [
        ("widget", 12),
        ("gadget", 30),
        ("gizmo", 7),
        ("doohickey", 55),
        ("sprocket", 3),
        ("flange", 19),
    ];
    let mut csv = String::from("date,region,product,units,amount\n");
    let mut totals: Vec<(String, u64)> = Vec::new();
    let rows = 1000;
    for i in 0..rows {
        let region = regions[rng.below(5) as usize];
        let (product, price) = products[rng.below(6) as usize];
        let units = 1 + rng.below(20);
        let amount = units * price;
        let _ = writeln!(
            csv,
            "2026-02-{:02},{region},{product},{units},{amount}",
            1 + i % 28
        );
        match totals.iter_mut().find(|(r, _)| r == region) {
            Some((_, t)) => *t += amount,
            None => totals.push((region.to_string(), amount)),
        }
    }
    std::fs::write(data.join("sales.csv"), &csv)?;
    let summary: Map<String, Value> = totals.iter().map(|(r, t)| (r.clone(), json!(t))).collect();
    let summary = Value::Object(summary);
    let summary_text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    let answer = format!(
        "Total sales by region over {rows} rows: {}. I wrote them to {d}/summary.json and read the file back to confirm.",
        totals
            .iter()
            .map(|(r, t)| format!("{r} ${t}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let code = r#"const csv = (await fs.readTextFile({ path: "@DATA@/sales.csv" })).content;
const rows = csv.trim().split("\n").slice(1);
const totals: Record<string, number> = {};
for (const row of rows) {
  const [, region, , , amount] = row.split(",");
  totals[region] = (totals[region] ?? 0) + Number(amount);
}
await fs.writeFile({ path: "@DATA@/summary.json", content: JSON.stringify(totals, null, 2) });
const back = JSON.parse((await fs.readTextFile({ path: "@DATA@/summary.json" })).content);
return { rows: rows.length, totals: back };"#
        .replace("@DATA@", &d);
    let tools = vec![
        call(
            "fs__read_text_file",
            json!({"path": format!("{d}/sales.csv")}),
        ),
        call(
            "fs__write_file",
            json!({"path": format!("{d}/summary.json"), "content": summary_text}),
        ),
        call(
            "fs__read_text_file",
            json!({"path": format!("{d}/summary.json")}),
        ),
        Step::text(&answer),
    ];
    let check = move |data: &Path| {
        let text = std::fs::read_to_string(data.join("summary.json"))
            .map_err(|e| format!("summary.json: {e}"))?;
        let got: Value = serde_json::from_str(&text).map_err(|e| format!("summary.json: {e}"))?;
        if got == summary {
            Ok(())
        } else {
            Err(format!("summary.json differs: {got}"))
        }
    };
    Ok(Prepared {
        prompt: format!(
            "Compute the total sales amount per region from {d}/sales.csv, write the totals as a JSON object to {d}/summary.json, then read that file back to confirm it."
        ),
        code: code_steps(code, &answer),
        tools,
        check: Box::new(check),
    })
}

// ---------------------------------------------------------------------------------------------

fn team_graph(data: &Path) -> std::io::Result<Prepared> {
    let d = data.display().to_string();
    let mut rng = Rng(3);
    const NAMES: &[&str] = &[
        "Avery", "Blake", "Casey", "Drew", "Finley", "Gray", "Harper", "Indigo", "Jules", "Lane",
        "Morgan", "Noel", "Oakley", "Parker", "Quinn", "Reese", "Skyler", "Tatum", "Umber", "Vale",
        "Wren", "Xan", "Yael", "Zion", "Arden", "Briar", "Cleo", "Dallas", "Ellis", "Frankie",
        "Hollis", "Jamie", "Kendall", "Logan", "Marlow",
    ];
    let mut people: Vec<(&str, &str, Option<&str>)> = vec![
        ("Kai", "ceo", None),
        ("Dana", "engineering manager", Some("Kai")),
        ("Emery", "design manager", Some("Kai")),
        ("Rowan", "sales manager", Some("Kai")),
        ("Sage", "operations manager", Some("Kai")),
    ];
    let teams = [
        ("Dana", "engineer"),
        ("Emery", "designer"),
        ("Rowan", "account executive"),
        ("Sage", "operations analyst"),
    ];
    for (i, name) in NAMES.iter().enumerate() {
        let (manager, role) = teams[i % teams.len()];
        people.push((name, role, Some(manager)));
    }
    let total = people.len();
    let team: Vec<Value> = people
        .iter()
        .map(|(name, role, manager)| {
            let words = 18 + rng.below(10);
            json!({"name": name, "role": role, "email": format!("{}@example.com", name.to_lowercase()), "manager": manager,
                   "bio": sentence(&mut rng, words)})
        })
        .collect();
    std::fs::write(
        data.join("team.json"),
        serde_json::to_string_pretty(&team).unwrap_or_default(),
    )?;
    let entities: Vec<Value> = people
        .iter()
        .map(|(name, role, _)| json!({"name": name, "entityType": role, "observations": [format!("{}@example.com", name.to_lowercase())]}))
        .collect();
    let relations: Vec<Value> = people
        .iter()
        .filter_map(|(name, _, manager)| {
            manager.map(|m| json!({"from": name, "to": m, "relationType": "reports_to"}))
        })
        .collect();
    let reports: Vec<&str> = people
        .iter()
        .filter(|(_, _, m)| *m == Some("Dana"))
        .map(|(n, _, _)| *n)
        .collect();
    let answer = format!(
        "I loaded the {total} people into the knowledge graph with their reporting lines. Reporting to Dana: {}.",
        reports.join(", ")
    );
    let code = r#"type Person = { name: string; role: string; email: string; manager: string | null };
const team: Person[] = JSON.parse((await fs.readTextFile({ path: "@DATA@/team.json" })).content);
await memory.createEntities({
  entities: team.map((p) => ({ name: p.name, entityType: p.role, observations: [p.email] })),
});
await memory.createRelations({
  relations: team.filter((p) => p.manager).map((p) => ({ from: p.name, to: p.manager!, relationType: "reports_to" })),
});
const dana = await memory.openNodes({ names: ["Dana"] });
return dana.relations.filter((r) => r.to === "Dana" && r.relationType === "reports_to").map((r) => r.from);"#
        .replace("@DATA@", &d);
    let tools = vec![
        call(
            "fs__read_text_file",
            json!({"path": format!("{d}/team.json")}),
        ),
        call("memory__create_entities", json!({"entities": entities})),
        call("memory__create_relations", json!({"relations": relations})),
        call("memory__open_nodes", json!({"names": ["Dana"]})),
        Step::text(&answer),
    ];
    let check = move |data: &Path| {
        let path = data
            .parent()
            .map(|p| p.join("memory.jsonl"))
            .unwrap_or_default();
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let count = |kind: &str| {
            text.lines()
                .filter(|l| l.contains(&format!("\"type\":\"{kind}\"")))
                .count()
        };
        match (count("entity"), count("relation")) {
            (e, r) if e == total && r == total - 1 => Ok(()),
            (e, r) => Err(format!(
                "the graph has {e} entities and {r} relations, not {total} and {}",
                total - 1
            )),
        }
    };
    Ok(Prepared {
        prompt: format!(
            "Load the team in {d}/team.json into the knowledge graph: one entity per person (type: their role, observation: their email) and a reports_to relation to their manager. Then tell me who reports to Dana."
        ),
        code: code_steps(code, &answer),
        tools,
        check: Box::new(check),
    })
}

// ---------------------------------------------------------------------------------------------

fn largest_log(data: &Path) -> std::io::Result<Prepared> {
    let d = data.display().to_string();
    let mut rng = Rng(5);
    std::fs::create_dir_all(data.join("logs"))?;
    let services = [
        ("api", 360),
        ("auth", 180),
        ("billing", 780),
        ("search", 540),
        ("mailer", 270),
        ("worker", 450),
    ];
    let mut largest = (String::new(), String::new(), 0usize);
    for (service, lines) in services {
        let mut text = String::new();
        for i in 0..lines {
            let level = match rng.below(12) {
                0 => "ERROR",
                1 | 2 => "WARN",
                _ => "INFO",
            };
            let words = 5 + rng.below(6);
            let _ = writeln!(
                text,
                "2026-03-01T{:02}:{:02}:{:02}Z {level} {service}: {}",
                10 + i / 3600,
                i / 60 % 60,
                i % 60,
                sentence(&mut rng, words)
            );
        }
        if text.len() > largest.2 {
            largest = (format!("{service}.log"), text.clone(), text.len());
        }
        std::fs::write(data.join("logs").join(format!("{service}.log")), text)?;
    }
    let (name, text, _) = largest;
    let errors: Vec<&str> = text.split('\n').filter(|l| l.contains(" ERROR ")).collect();
    let report = format!("{}\n", errors.join("\n"));
    let answer = format!(
        "The largest log is {name} ({} lines). It has {} ERROR lines; the first is \"{}\". I wrote them all to {d}/errors.txt.",
        text.trim().split('\n').count(),
        errors.len(),
        errors.first().copied().unwrap_or("")
    );
    let code = r#"const listing = (await fs.listDirectoryWithSizes({ path: "@DATA@/logs", sortBy: "size" })).content;
const name = listing.split("\n").find((l) => l.startsWith("[FILE]"))!.slice(6).trim().split(/\s+/)[0];
const text = (await fs.readTextFile({ path: `@DATA@/logs/${name}` })).content;
const errors = text.split("\n").filter((l) => l.includes(" ERROR "));
await fs.writeFile({ path: "@DATA@/errors.txt", content: errors.join("\n") + "\n" });
return { file: name, lines: text.trim().split("\n").length, errors: errors.length, first: errors[0] };"#
        .replace("@DATA@", &d);
    let tools = vec![
        call(
            "fs__list_directory_with_sizes",
            json!({"path": format!("{d}/logs"), "sortBy": "size"}),
        ),
        call(
            "fs__read_text_file",
            json!({"path": format!("{d}/logs/{name}")}),
        ),
        call(
            "fs__write_file",
            json!({"path": format!("{d}/errors.txt"), "content": report}),
        ),
        Step::text(&answer),
    ];
    let check = move |data: &Path| {
        let got = std::fs::read_to_string(data.join("errors.txt"))
            .map_err(|e| format!("errors.txt: {e}"))?;
        if got == report {
            Ok(())
        } else {
            Err(format!("errors.txt differs:\n{got}"))
        }
    };
    Ok(Prepared {
        prompt: format!(
            "Find the largest log file in {d}/logs, copy its ERROR lines to {d}/errors.txt, and tell me how many there are and which is the first."
        ),
        code: code_steps(code, &answer),
        tools,
        check: Box::new(check),
    })
}

// ---------------------------------------------------------------------------------------------

fn ini_migration(data: &Path) -> std::io::Result<Prepared> {
    let d = data.display().to_string();
    let mut rng = Rng(13);
    const SECTIONS: &[&str] = &[
        "server",
        "database",
        "cache",
        "auth",
        "logging",
        "features",
        "queue",
        "mail",
        "storage",
        "search",
        "metrics",
        "tracing",
        "rate_limit",
        "cors",
        "session",
        "uploads",
        "payments",
        "webhooks",
        "i18n",
        "cdn",
        "backup",
        "scheduler",
        "notifications",
        "analytics",
        "sso",
        "audit",
        "exports",
        "imports",
        "billing",
        "support",
    ];
    const KEYS: &[&str] = &[
        "enabled",
        "host",
        "port",
        "timeout",
        "retries",
        "pool",
        "ttl",
        "level",
        "format",
        "region",
        "bucket",
        "endpoint",
        "secret_ref",
        "batch_size",
        "interval",
        "max_items",
        "mode",
        "replicas",
        "queue",
        "owner",
    ];
    let sections: Vec<(&str, Vec<&str>)> = SECTIONS
        .iter()
        .map(|section| {
            let n = 5 + rng.below(4) as usize;
            let start = rng.below(KEYS.len() as u64) as usize;
            (
                *section,
                (0..n).map(|i| KEYS[(start + i * 3) % KEYS.len()]).collect(),
            )
        })
        .collect();
    let mut ini =
        String::from("; Application settings\n; generated for the isola agent benchmark\n\n");
    let mut config = Map::new();
    for (section, keys) in &sections {
        let _ = writeln!(ini, "[{section}]");
        let mut values = Map::new();
        for key in keys {
            let value = match rng.below(3) {
                0 => (1 + rng.below(5000)).to_string(),
                1 => rng.pick(&["true", "false", "auto"]).to_string(),
                _ => format!("{}-{}", rng.pick(WORDS), rng.pick(WORDS)),
            };
            let _ = writeln!(ini, "{key} = {value}");
            values.insert(key.to_string(), Value::String(value));
        }
        ini.push('\n');
        config.insert(section.to_string(), Value::Object(values));
    }
    std::fs::write(data.join("app.ini"), &ini)?;
    let config = Value::Object(config);
    let json_text = serde_json::to_string_pretty(&config).unwrap_or_default();
    let answer = format!(
        "I converted {d}/app.ini to {d}/app.json ({} sections: {}), moved the original to {d}/old/app.ini, and the directory now holds app.json and old/.",
        sections.len(),
        sections
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let code = r##"const ini = (await fs.readTextFile({ path: "@DATA@/app.ini" })).content;
const config: Record<string, Record<string, string>> = {};
let section = "";
for (const raw of ini.split("\n")) {
  const line = raw.trim();
  if (!line || line.startsWith(";") || line.startsWith("#")) continue;
  const header = line.match(/^\[(.+)\]$/);
  if (header) {
    section = header[1];
    config[section] = {};
    continue;
  }
  const eq = line.indexOf("=");
  config[section][line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
}
await fs.writeFile({ path: "@DATA@/app.json", content: JSON.stringify(config, null, 2) });
await fs.createDirectory({ path: "@DATA@/old" });
await fs.moveFile({ source: "@DATA@/app.ini", destination: "@DATA@/old/app.ini" });
const listing = (await fs.listDirectory({ path: "@DATA@" })).content;
return { sections: Object.keys(config), listing };"##
        .replace("@DATA@", &d);
    let tools = vec![
        call(
            "fs__read_text_file",
            json!({"path": format!("{d}/app.ini")}),
        ),
        call(
            "fs__write_file",
            json!({"path": format!("{d}/app.json"), "content": json_text}),
        ),
        call("fs__create_directory", json!({"path": format!("{d}/old")})),
        call(
            "fs__move_file",
            json!({"source": format!("{d}/app.ini"), "destination": format!("{d}/old/app.ini")}),
        ),
        call("fs__list_directory", json!({"path": d})),
        Step::text(&answer),
    ];
    let check = move |data: &Path| {
        let text =
            std::fs::read_to_string(data.join("app.json")).map_err(|e| format!("app.json: {e}"))?;
        let got: Value = serde_json::from_str(&text).map_err(|e| format!("app.json: {e}"))?;
        if got != config {
            return Err(format!("app.json differs: {got}"));
        }
        if !data.join("old/app.ini").exists() || data.join("app.ini").exists() {
            return Err("app.ini was not moved to old/".into());
        }
        Ok(())
    };
    Ok(Prepared {
        prompt: format!(
            "Convert {d}/app.ini to JSON at {d}/app.json (one object per section), then move app.ini into a new directory {d}/old and list {d}."
        ),
        code: code_steps(code, &answer),
        tools,
        check: Box::new(check),
    })
}
