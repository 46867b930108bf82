//! Print the JavaScript for a TypeScript script: `cargo run -p isola-transpile --example transpile -- agent.ts`
//! (reads stdin when no file is given).

use std::io::Read as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (name, source) = match std::env::args().nth(1) {
        Some(path) => (path.clone(), std::fs::read_to_string(&path)?),
        None => {
            let mut source = String::new();
            std::io::stdin().read_to_string(&mut source)?;
            ("stdin.ts".to_owned(), source)
        }
    };
    match isola_transpile::transpile(&source, &name) {
        Ok(out) => println!("{}", out.js),
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    }
    Ok(())
}
