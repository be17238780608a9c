use cache_core::cached;

#[cached(key = "range:<from><to>")]
async fn range(from: u32, to: u32) -> u32 {
    to - from
}

fn main() {}
