use cache_core::cached;

#[cached(key = "rate:<from>%<to>")]
async fn rate(from: u32, to: u32) -> u32 {
    to - from
}

fn main() {}
