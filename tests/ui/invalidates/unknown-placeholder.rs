use cache_core::invalidates;

#[invalidates("user:<user_id>:*")]
async fn update(id: u64) {
    let _ = id;
}

fn main() {}
