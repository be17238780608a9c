use cache_core::cached;

struct User {
    id: u64,
}

#[cached(key = "user:<user.idd>")]
async fn profile(user: &User) -> u64 {
    user.id
}

fn main() {}
