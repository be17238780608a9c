use cache_core::cached;

struct Repo {
    base: u64,
}

impl Repo {
    // The refresh runs in the background, after this call returns: it cannot borrow `self`.
    #[cached(key = "a:<id>", refresh = 0.8)]
    async fn get(&self, id: u64) -> u64 {
        self.base + id
    }
}

fn main() {}
