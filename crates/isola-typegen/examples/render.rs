//! Renders a captured tool list: `cargo run -p isola-typegen --example render -- fixtures/tools/github.json [--compact]`.

use isola_typegen::{Api, ServerSpec, ToolSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: render FILE.json [--compact]")?;
    let compact = args.next().as_deref() == Some("--compact");
    let tools: Vec<ToolSpec> = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let name = std::path::Path::new(&path)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("server")
        .to_owned();
    let api = Api::build(&[ServerSpec { name, tools }]);
    if compact {
        print!("{}", api.compact(None));
    } else {
        print!("{}", api.declarations(None));
    }
    Ok(())
}
