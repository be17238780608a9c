use cache_core::{cached, ttl_presets};

ttl_presets! {
    pub COMPANY = "6h";
}

#[cached(ttl = COMPNY, key = "company:<id>")]
async fn company(id: u64) -> u64 {
    id
}

fn main() {}
