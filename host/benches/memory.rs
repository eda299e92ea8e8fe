//! Benchmarks of the memory capability, printed as a table (see
//! docs/benchmarks.md): `make bench` runs them after the core benchmarks, or
//! `cargo bench -p darkfactory --bench memory` alone.
//!
//! 1. ingest of a generated corpus of `BENCH_MEMORY_N` exchanges (default
//!    100 000) through the corpus pipeline, from a JSONL file on disk: parse,
//!    quality filter, BM25, de-duplication, Qdrant Edge; then the same file
//!    again (every exchange already stored);
//! 2. search p50/p99 on the embedded backend at that size;
//! 3. the same at `BENCH_MEMORY_BIG` memories (default 1 000 000; 0 skips),
//!    filled through `Memory::store_new` in batches;
//! 4. recall@10 on the labelled set in `tests/data/memory-recall.json`, of
//!    BM25 alone and of hybrid search. Hybrid uses the embeddings endpoint
//!    named by `BENCH_EMBEDDINGS_URL` and `BENCH_EMBEDDINGS_MODEL` (say
//!    Ollama's `all-minilm`), else the trigram stub of the tests, which
//!    shows the fusion works but is no semantic model.
//!
//! The corpus is deterministic: words drawn from a Zipf distribution over a
//! generated vocabulary, with English function words mixed in.

#[path = "support/percentile.rs"]
mod percentile;
use percentile::percentile;
#[path = "../../tests/support/embeddings_stub.rs"]
mod embeddings_stub;
#[path = "support/rng.rs"]
mod rng;

use darkfactory::capabilities::memory::ingest::{IngestOptions, Ingestor};
use darkfactory::capabilities::memory::{
    Access, Embedder, EmbeddingsConfig, Memory, Metadata, Namespace, NewMemory, DEFAULT_MIN_DENSITY,
};
use darkfactory::state::StateStore;
use rng::Rng;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A vocabulary of made-up words and a Zipf sampler over it.
struct Corpus {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

const FUNCTION_WORDS: [&str; 12] = [
    "the", "and", "of", "to", "in", "is", "that", "for", "it", "with", "as", "on",
];

impl Corpus {
    fn new(size: usize, rng: &mut Rng) -> Self {
        const SYLLABLES: [&str; 24] = [
            "ka", "lo", "mir", "tes", "van", "dor", "pel", "qui", "ron", "sa", "tu", "vel", "xan",
            "yor", "zed", "bri", "cal", "dun", "fae", "gor", "hil", "jun", "kep", "lum",
        ];
        let mut words = Vec::with_capacity(size);
        let mut seen = std::collections::HashSet::new();
        while words.len() < size {
            let n = 2 + (rng.next() % 3) as usize;
            let w: String = (0..n)
                .map(|_| SYLLABLES[(rng.next() % SYLLABLES.len() as u64) as usize])
                .collect();
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=size)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect::<Vec<_>>();
        let cumulative = cumulative.iter().map(|c| c / total).collect();
        Corpus { words, cumulative }
    }

    fn word(&self, rng: &mut Rng) -> &str {
        let u = rng.unit();
        let i = self.cumulative.partition_point(|c| *c < u);
        &self.words[i.min(self.words.len() - 1)]
    }

    /// `min` to `min + spread - 1` words.
    fn text(&self, rng: &mut Rng, min: usize, spread: u64) -> String {
        let words = min + (rng.next() % spread) as usize;
        let mut out = String::new();
        for i in 0..words {
            if i > 0 {
                out.push(' ');
            }
            if rng.next().is_multiple_of(3) {
                out.push_str(FUNCTION_WORDS[(rng.next() % 12) as usize]);
            } else {
                out.push_str(self.word(rng));
            }
        }
        out
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write_corpus(path: &Path, corpus: &Corpus, rng: &mut Rng, exchanges: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let start = 1_772_000_000_000u64;
    for i in 0..exchanges {
        let session = format!("s{}", i / 50);
        let question = corpus.text(rng, 12, 20);
        let answer = corpus.text(rng, 100, 200);
        for (role, content, dt) in [("user", question, 0), ("assistant", answer, 1000)] {
            let line = serde_json::json!({
                "role": role, "content": content,
                "timestamp": start + i as u64 * 60_000 + dt, "session_id": session,
            });
            writeln!(out, "{line}").unwrap();
        }
    }
    out.flush().unwrap();
    // Finished long ago, so its last exchange is read too.
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
}

async fn search_latency(memory: &Memory, corpus: &Corpus, rng: &mut Rng, label: &str) {
    let queries: Vec<String> = (0..1000).map(|_| corpus.text(rng, 2, 4)).collect();
    // Warm the caches.
    for q in queries.iter().take(100) {
        let _ = memory
            .search(&Access::Operator, q, "all", 10, Metadata::new())
            .await;
    }
    let mut samples = Vec::with_capacity(queries.len());
    let mut hits = 0;
    for q in &queries {
        let t = Instant::now();
        let found = memory
            .search(&Access::Operator, q, "all", 10, Metadata::new())
            .await
            .unwrap();
        samples.push(t.elapsed());
        hits += found.len();
    }
    // The same with a namespace filter, as skills search.
    let mut filtered = Vec::with_capacity(queries.len());
    for q in &queries {
        let t = Instant::now();
        memory
            .search(&Access::Operator, q, "org", 10, Metadata::new())
            .await
            .unwrap();
        filtered.push(t.elapsed());
    }
    samples.sort();
    filtered.sort();
    println!(
        "| {label} | all | {} | {} | {:.1} |",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        hits as f64 / queries.len() as f64
    );
    println!(
        "| {label} | org | {} | {} | |",
        ms(percentile(&filtered, 0.5)),
        ms(percentile(&filtered, 0.99)),
    );
}

/// Recall@10 over the labelled set: for each query, the share of its
/// relevant documents found in the top 10, averaged.
async fn recall(memory_dir: &Path, embedder: Option<Embedder>, label: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/memory-recall.json");
    let set: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let memory = Memory::open_embedded(memory_dir, embedder).unwrap();
    let mut ids = std::collections::HashMap::new();
    for doc in set["documents"].as_array().unwrap() {
        let stored = memory
            .store(
                &Access::Operator,
                doc["text"].as_str().unwrap(),
                "org",
                Metadata::new(),
                "bench",
            )
            .await
            .unwrap();
        ids.insert(stored.id, doc["id"].as_str().unwrap().to_string());
    }
    let queries = set["queries"].as_array().unwrap();
    let mut total = 0.0;
    for q in queries {
        let relevant: Vec<&str> = q["relevant"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let hits = memory
            .search(
                &Access::Operator,
                q["query"].as_str().unwrap(),
                "all",
                10,
                Metadata::new(),
            )
            .await
            .unwrap();
        let found = hits
            .iter()
            .filter(|h| relevant.contains(&ids[&h.record.id].as_str()))
            .count();
        total += found as f64 / relevant.len() as f64;
    }
    println!(
        "| {label} | {} documents, {} queries | {:.3} |",
        ids.len(),
        queries.len(),
        total / queries.len() as f64
    );
}

fn main() {
    let n = env_usize("BENCH_MEMORY_N", 100_000);
    let big = env_usize("BENCH_MEMORY_BIG", 1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let corpus = Corpus::new(20_000, &mut rng);
    println!("# darkfactory memory benchmarks");
    println!(
        "machine: {} cores; corpus: {n} exchanges; big: {big} memories",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    rt.block_on(async {
        let file = dir.path().join("corpus.jsonl");
        let t = Instant::now();
        write_corpus(&file, &corpus, &mut rng, n);
        let size = std::fs::metadata(&file).unwrap().len();
        println!(
            "\ncorpus written: {:.0} MB in {:.1} s",
            size as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );

        let memory = Arc::new(Memory::open_embedded(&dir.path().join("memory"), None).unwrap());
        let state = Arc::new(StateStore::open(&dir.path().join("state.db")).unwrap());
        let ingestor = Ingestor::new(memory.clone(), state);
        let options = IngestOptions {
            namespace: Namespace::Org,
            min_density: DEFAULT_MIN_DENSITY,
            agent: None,
        };
        println!("\n## 1. Ingest ({n} exchanges, one JSONL file, Qdrant Edge)");
        println!("| run | exchanges | stored | duplicates | filtered | seconds | exchanges/s |");
        println!("|---|---|---|---|---|---|---|");
        // The second run starts from the top (a fresh watermark store), so
        // every exchange is read again and found already stored.
        let fresh = Ingestor::new(
            memory.clone(),
            Arc::new(StateStore::open(&dir.path().join("state2.db")).unwrap()),
        );
        for (label, run) in [("first", &ingestor), ("again (all stored)", &fresh)] {
            let t = Instant::now();
            let r = run.ingest_path(&file, &options, &|_, _| {}).await.unwrap();
            let s = t.elapsed().as_secs_f64();
            println!(
                "| {label} | {} | {} | {} | {} | {s:.1} | {:.0} |",
                r.exchanges,
                r.stored,
                r.duplicates,
                r.too_short + r.low_density,
                r.exchanges as f64 / s
            );
        }

        println!("\n## 2–3. Search (embedded backend, limit 10, 1 000 queries of 2–5 words)");
        println!("| memories | scope | p50 | p99 | hits per query |");
        println!("|---|---|---|---|---|");
        let count = memory.counts().await.unwrap().total;
        search_latency(&memory, &corpus, &mut rng, &format!("{count}")).await;

        if big > count as usize {
            let t = Instant::now();
            let mut added = 0usize;
            let target = big - count as usize;
            while added < target {
                let batch: Vec<NewMemory> = (0..1000.min(target - added))
                    .map(|i| {
                        let text = corpus.text(&mut rng, 60, 120);
                        NewMemory::new(
                            &format!("{text} #{}", added + i),
                            Namespace::Agent(format!("a{}", (added + i) % 50)),
                            Metadata::new(),
                            0,
                            "bench",
                        )
                        .unwrap()
                    })
                    .collect();
                added += batch.len();
                memory.store_new(batch).await.unwrap();
            }
            let fill = t.elapsed().as_secs_f64();
            let t = Instant::now();
            memory.optimize().await.unwrap();
            println!(
                "\n(optimized {:.1} s after the fill)",
                t.elapsed().as_secs_f64()
            );
            let count = memory.counts().await.unwrap().total;
            search_latency(&memory, &corpus, &mut rng, &format!("{count}")).await;
            println!(
                "\n(filled {added} memories through `Memory::store_new` in {fill:.0} s: {:.0}/s)",
                added as f64 / fill
            );
        }

        println!("\n## 4. Recall@10 on tests/data/memory-recall.json");
        println!("| retrieval | set | recall@10 |");
        println!("|---|---|---|");
        recall(&dir.path().join("recall-bm25"), None, "BM25").await;
        let (url, model) = match (
            std::env::var("BENCH_EMBEDDINGS_URL"),
            std::env::var("BENCH_EMBEDDINGS_MODEL"),
        ) {
            (Ok(url), Ok(model)) => (url, model),
            _ => (
                embeddings_stub::start(256).await.url,
                "trigram-stub".to_string(),
            ),
        };
        let embedder = Embedder::connect(EmbeddingsConfig {
            url,
            model: model.clone(),
            api_key: std::env::var("BENCH_EMBEDDINGS_KEY").ok(),
            timeout: Duration::from_secs(60),
        })
        .await
        .unwrap();
        let label = format!("BM25 + dense ({model}), RRF");
        recall(&dir.path().join("recall-hybrid"), Some(embedder), &label).await;
    });
}
