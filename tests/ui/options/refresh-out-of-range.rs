use cache_core::cached;

#[cached(key = "a:<id>", refresh = 1.5)]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
