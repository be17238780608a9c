use cache_core::cached;

#[cached(tll = "short")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
