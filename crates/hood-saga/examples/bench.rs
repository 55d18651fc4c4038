//! Saga step throughput against a database:
//!
//! ```sh
//! cargo run -p hood-saga --release --example bench -- sqlite:///tmp/bench.db 1000 5 1
//! cargo run -p hood-saga --release --example bench -- postgres://postgres@127.0.0.1/bench 1000 5 2
//! ```
//!
//! Arguments: database URL (migrated first), workflows, steps per
//! workflow, workers.

use std::error::Error;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: bench DATABASE_URL [WORKFLOWS] [STEPS] [WORKERS]")?;
    let mut number = |default: usize| -> Result<usize, Box<dyn Error>> {
        Ok(args
            .next()
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let workflows = number(1000)?;
    let steps = number(5)?;
    let workers = number(1)?;
    let store: std::sync::Arc<dyn hood_store::Store> = hood_store::connect(&url).await?;
    store.migrate().await?;
    let report = hood_saga::bench_step_throughput(store, workflows, steps, workers).await?;
    println!("{report}");
    Ok(())
}
