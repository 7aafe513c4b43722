//! `traj schema`: prints the schema v2 contract, for agents written in other languages.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Print the attribute conventions as JSON instead of Markdown.
    #[arg(long)]
    json: bool,
    /// Print the JSON Schema with this file name (e.g. `session.schema.json`).
    #[arg(long, value_name = "NAME")]
    json_schema: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(name) = args.json_schema {
        let all = traj_schema::json_schema::all();
        let Some((_, text)) = all.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
            anyhow::bail!("no schema named {name:?}; known: {}", names.join(", "));
        };
        print!("{text}");
    } else if args.json {
        print!("{}", traj_schema::keys::attributes_json());
    } else {
        print!("{}", traj_schema::keys::attributes_markdown());
    }
    Ok(ExitCode::SUCCESS)
}
