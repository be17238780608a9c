use cache_core::cached;

#[cached(key = "report:<id>", tags = ["tenant:*"])]
async fn report(id: u64) -> u64 {
    id
}

fn main() {}
