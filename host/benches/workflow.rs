//! Benchmarks of the workflow compiler, printed as a table (see
//! docs/benchmarks.md): `make bench` runs them, or
//! `cargo bench -p darkfactory --bench workflow` alone.
//!
//! 1. compiling a generated 50-step workflow (`BENCH_WORKFLOW_STEPS`) from
//!    its source to a component: parse, check, emit (goal: under 50 ms), and
//!    checking alone (what an editor would run on every keystroke);
//! 2. what hot loading it costs in the host besides: Cranelift's compile of
//!    the component (uncached) and linking it against the host's imports.

#[path = "support/percentile.rs"]
mod percentile;

use darkfactory::runtime::{Runtime, RuntimeConfig};
use darkfactory::workflow;
use percentile::percentile;
use std::time::{Duration, Instant};

/// A workflow of `steps` top-level statements of every kind: variables,
/// arithmetic, templates, conditions, loops, built-ins and capability calls.
fn generate(steps: usize) -> String {
    let mut body = String::new();
    for i in 0..steps {
        let line = match i % 8 {
            0 => format!("let v{i} = {i} * 3 + len(\"step {i}\")"),
            1 => format!("let s{i} = \"step {{v{}}} of {steps}\"", i - 1),
            2 => format!("let cards{i} = board.cards(filter: {{ list: \"Blocked\", in_list_longer_than: v{} * 60 }})", i - 2),
            3 => format!(
                "let n{i} = 0\nfor card in cards{} {{\n  if card.comments > 2 and not contains(card.labels, \"quiet\") {{\n    n{i} = n{i} + 1\n  }}\n}}",
                i - 1
            ),
            4 => format!("if n{} > 0 {{\n  log.info(\"{{n{}}} busy cards: {{s{}}}\")\n}} else {{\n  log.debug(\"none\")\n}}", i - 1, i - 1, i - 3),
            5 => format!("let agents{i} = fleet.agents()"),
            6 => format!("let up{i} = []\nfor a in agents{} {{\n  if a.status == \"up\" {{\n    up{i} = up{i} + [a.name]\n  }}\n}}", i - 1),
            _ => format!("let summary{i} = {{ up: len(up{}), busy: n{}, names: join(sort(up{}), \", \") }}", i - 1, i - 4, i - 1),
        };
        body.push_str(&line);
        body.push('\n');
    }
    body.push_str("return { done: true }\n");
    format!(
        "+++\nname = \"bench\"\ndescription = \"A generated workflow of {steps} steps.\"\n\n[capabilities]\nboard_read = [\"Blocked\"]\nfleet = \"read\"\n+++\n\n## Steps\n\n```workflow\n{body}```\n"
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed()
        })
        .collect();
    samples.sort();
    samples
}

#[tokio::main]
async fn main() {
    let steps: usize = std::env::var("BENCH_WORKFLOW_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let source = generate(steps);
    let first = workflow::compile(&source, None).unwrap_or_else(|e| match e {
        workflow::CompileError::Invalid(d) => panic!("{}", d.render("bench.workflow.md", &source)),
        other => panic!("{other}"),
    });
    let statements = source.lines().count();
    println!(
        "workflow compiler: {steps} top-level steps ({statements} lines, {} bytes of source)",
        source.len()
    );
    println!("{:<44} {:>10} {:>10} {:>10}", "", "p50", "p99", "mean");
    let runs = 200;
    for (what, samples) in [
        (
            "compile: source to component (goal < 50 ms)",
            time(runs, || {
                workflow::compile(&source, None).map(|c| c.component.len())
            }),
        ),
        (
            "check only: parse, names, types, grants",
            time(runs, || workflow::check(&source, None).diagnostics.0.len()),
        ),
    ] {
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        println!(
            "{what:<44} {:>10} {:>10} {:>10}",
            ms(percentile(&samples, 0.5)),
            ms(percentile(&samples, 0.99)),
            ms(mean)
        );
    }
    println!(
        "component: {} bytes, sha256 {}…",
        first.component.len(),
        &first.sha256[..16]
    );

    let runtime = Runtime::new(
        RuntimeConfig::default(),
        &darkfactory::capabilities::add_to_linker,
    )
    .unwrap();
    let started = Instant::now();
    let component = runtime.compile(&first.component).unwrap();
    let cranelift = started.elapsed();
    let started = Instant::now();
    runtime.prepare(&component).unwrap();
    let link = started.elapsed();
    println!(
        "hot load in the host: Cranelift {}, link {}",
        ms(cranelift),
        ms(link)
    );
}
