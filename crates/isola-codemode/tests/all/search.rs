//! Search quality: fixed queries over the captured real tool lists, each with the function a
//! model would want; every one must rank in the top 3.

use isola_codemode::search::SearchIndex;
use isola_typegen::Api;

use crate::support::{ALL, fixture_servers};

/// (query, server filter, expected function).
const CASES: &[(&str, Option<&str>, &str)] = &[
    ("create an issue", None, "github.createIssue"),
    ("open a pull request", None, "github.createPullRequest"),
    ("merge a pull request", None, "github.mergePullRequest"),
    ("comment on an issue", None, "github.addIssueComment"),
    (
        "review a pull request",
        None,
        "github.createPullRequestReview",
    ),
    ("search code across repositories", None, "github.searchCode"),
    ("fork a repository", None, "github.forkRepository"),
    (
        "read file contents as text",
        None,
        "filesystem.readTextFile",
    ),
    (
        "list files in a directory",
        None,
        "filesystem.listDirectory",
    ),
    ("move or rename a file", None, "filesystem.moveFile"),
    (
        "file metadata size and permissions",
        None,
        "filesystem.getFileInfo",
    ),
    ("write text to a file", None, "filesystem.writeFile"),
    ("edit lines in a file", None, "filesystem.editFile"),
    ("current time in a timezone", None, "time.getCurrentTime"),
    ("convert time between timezones", None, "time.convertTime"),
    ("add two numbers", None, "everything.getSum"),
    ("echo a message", None, "everything.echo"),
    ("diff of staged changes", None, "git.gitDiffStaged"),
    ("commit history log", None, "git.gitLog"),
    ("switch to another branch", None, "git.gitCheckout"),
    ("create a branch", Some("git"), "git.gitCreateBranch"),
    ("create a branch", Some("github"), "github.createBranch"),
    (
        "delete entities from the knowledge graph",
        None,
        "memory.deleteEntities",
    ),
    (
        "add observations to an entity",
        None,
        "memory.addObservations",
    ),
    ("search notion pages by title", None, "notion.apiPostSearch"),
    (
        "get a page as markdown",
        None,
        "notion.apiRetrievePageMarkdown",
    ),
    (
        "append blocks to a page",
        None,
        "notion.apiPatchBlockChildren",
    ),
    ("github.createIssue", None, "github.createIssue"),
    ("read_text_file", None, "filesystem.readTextFile"),
];

#[test]
fn every_query_finds_its_function_in_the_top_3() {
    let api = Api::build(&fixture_servers(ALL));
    let index = SearchIndex::build(&api);
    let (mut at1, mut at3) = (0, 0);
    let mut misses = Vec::new();
    for (query, server, expected) in CASES {
        let hits = index.search(query, *server, 3);
        let names: Vec<&str> = hits.iter().map(|h| h.name.as_str()).collect();
        assert!(
            api.namespaces.iter().any(|ns| ns
                .functions
                .iter()
                .any(|f| format!("{}.{}", ns.ident, f.ident) == *expected)),
            "{expected} is not in the API"
        );
        match names.iter().position(|n| n == expected) {
            Some(0) => {
                at1 += 1;
                at3 += 1;
            }
            Some(_) => {
                at3 += 1;
                eprintln!("not first: {query:?} → {names:?}");
            }
            None => misses.push(format!(
                "{query:?} ({server:?}): expected {expected}, got {names:?}"
            )),
        }
    }
    let n = CASES.len();
    eprintln!("search quality over {n} queries: recall@1 {at1}/{n}, recall@3 {at3}/{n}");
    assert!(
        misses.is_empty(),
        "not in the top 3:\n{}",
        misses.join("\n")
    );
}

#[test]
fn the_server_filter_and_empty_queries() {
    let api = Api::build(&fixture_servers(&["time", "git"]));
    let index = SearchIndex::build(&api);
    assert_eq!(index.len(), 14);
    let all: Vec<String> = index
        .search("", Some("time"), 10)
        .into_iter()
        .map(|h| h.name)
        .collect();
    assert_eq!(all, ["time.getCurrentTime", "time.convertTime"]);
    assert!(index.search("zebra unicorn", None, 10).is_empty());
    assert!(
        index
            .search("time", Some("git"), 10)
            .iter()
            .all(|h| h.name.starts_with("git."))
    );
    assert!(index.has_namespace("git") && !index.has_namespace("github"));
}
