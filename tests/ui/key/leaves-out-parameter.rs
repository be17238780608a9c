use cache_core::cached;

// Every user would be served the first user's profile.
#[cached(key = "profile")]
async fn profile(user_id: u64) -> String {
    format!("profile of {user_id}")
}

fn main() {}
