use cache_core::invalidates;

#[invalidates()]
async fn update(id: u64) {
    let _ = id;
}

fn main() {}
