use cache_core::invalidates;

#[invalidates("user:<id>*")]
async fn update(id: u64) {
    let _ = id;
}

fn main() {}
